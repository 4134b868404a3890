"""Publishing: the one step that talks to the Hub, run after the stages, with one set of settings and one kind of
error.

The stages compute and save; they never push. The recipes and the pipeline call `create_repos` before any work (so a
wrong token or an unreachable Hub fails before anything runs) and `publish` after the stages. On the main process,
`publish` pushes each output it is given once:
- a model folder (weights, config, tokenizer, the BiLSTM's code, `run_args.json`, `all_results.json`) and its card in
  one commit, with `HfApi.upload_folder(..., delete_patterns="*")`: the repo then mirrors the folder (files the folder
  no longer has are deleted, so a re-push never leaves stale shards);
- a transfer set with `DatasetDict.push_to_hub` (Parquet shards under `data/`, old shards replaced), then its card.
An unchanged file is not uploaded again, and a re-push of an unchanged output makes no commit. Pushing only reads the
outputs.

The settings have the same names everywhere, those of `transformers.TrainingArguments`:
- `push_to_hub`, `hub_model_id` (the student, or a trainer stage's model), `hub_private_repo`, and `hub_token`
  (unset: `HF_TOKEN` or the token of `hf auth login`), which the trainer recipes get from `TrainingArguments`;
- `hub_dataset_id` (the transfer set), which `recipes/augment.py` gets from `TransferSetArguments`;
- `hub_teacher_id` (optional) and `benchmark_report`, which the pipeline adds (`HubArguments`).

A failed push raises `PushError`, one line saying what failed, why, that the local files are intact, and how to retry;
the recipes print it as `prog: error: ...` and exit non-zero.

    python -m distil.push --model_dir outputs/student --hub_model_id me/bilstm-sst2 \\
        --dataset_dir outputs/transfer-set --hub_dataset_id me/sst2-transfer-set

pushes existing outputs (this is what a failed push tells you to run).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from accelerate import PartialState
from accelerate.utils import wait_for_everyone

from distil.cards import load_benchmark, model_card, transfer_set_card
from distil.configs import parse_args, run_recipe
from distil.errors import ConfigError, InputError
from distil.hub import HubArguments, transport_errors

logger = logging.getLogger("distil")

# Not pushed from a model folder: checkpoints, hidden and temporary files, TensorBoard runs, the pickled
# `training_args.bin` (`run_args.json` records the same as JSON), and a local README (the card replaces it).
IGNORE_PATTERNS = ("checkpoint-*", ".*", "*.tmp", "*.tmp-*", "runs", "training_args.bin", "README.md")


class PushError(InputError):
    """A push to the Hub that failed; the message says what, why, and how to retry."""


# ---------------------------------------------------------------- errors


def endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


def describe(error: BaseException) -> str:
    """Why a Hub call failed, in one line, with what to check."""
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    if isinstance(error, OfflineModeIsEnabled):
        return "HF_HUB_OFFLINE is set (unset it to push)"
    if isinstance(error, HfHubHTTPError) and error.response is not None:
        status = error.response.status_code
        message = error.server_message or error.response.reason_phrase or ""
        reason = f"HTTP {status} {' '.join(message.split())}".strip()
        if status in (401, 403):
            reason += " (check the token: HF_TOKEN, `hf auth login` or --hub_token, and its write access)"
        return reason
    name = type(error).__name__
    if "Connect" in name or "Timeout" in name or "Network" in name:
        return f"cannot reach {endpoint()} ({name}; check the network, and HF_ENDPOINT if set)"
    text = " ".join(str(error).split())
    return f"{name}: {text[:300]}" if text else name


@contextlib.contextmanager
def hub_call(what: str, local: str | None, retry: str | None):
    """Turn a failed Hub call into one `PushError` line."""
    try:
        yield
    except (*transport_errors(), OSError, ValueError) as e:
        kept = f" {local} is intact." if local else ""
        hint = f" To retry: {retry}." if retry else ""
        raise PushError(f"push_to_hub: {what} at {endpoint()} failed: {describe(e)}.{kept}{hint}") from e


def retry_command(**dirs_and_ids: str | None) -> str:
    """`python -m distil.push --model_dir ... --hub_model_id ...` for the given folders and repos."""
    args = [a for key, value in dirs_and_ids.items() if value for a in (f"--{key}", str(value))]
    return shlex.join(["python", "-m", "distil.push", *args])


# ---------------------------------------------------------------- pushes


def create_repo(repo_id: str, repo_type: str, *, token=None, private=None, retry: str | None = None) -> str:
    """Create the repo if it does not exist (checks the endpoint and the token); returns its full id."""
    from huggingface_hub import HfApi

    retry = retry or "fix that and run the same command again (it stopped before writing anything)"
    with hub_call(f"creating {repo_type} repo {repo_id}", None, retry):
        return HfApi(token=token).create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True).repo_id


def folder_files(folder: str) -> dict[str, str]:
    """`{path in repo: local path}` of the files to push from a model folder (`IGNORE_PATTERNS` left out)."""
    from fnmatch import fnmatch

    out = {}
    for path in sorted(Path(folder).rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if path.is_file() and not any(fnmatch(part, p) for part in rel.split("/") for p in IGNORE_PATTERNS):
            out[rel] = str(path)
    return out


def push_model(
    model_dir: str,
    repo_id: str,
    *,
    token=None,
    private=None,
    retry: str | None = None,
    **card_info,
) -> str:
    """Push a model folder and its card (`distil.cards.model_card(model_dir, repo_id, **card_info)`) in one commit;
    the repo then holds exactly the folder's files. Returns the commit URL.

    `upload_folder` reads a view of the folder (links to its files, and the card), so nothing is written into it."""
    from huggingface_hub import HfApi

    retry = retry or retry_command(model_dir=model_dir, hub_model_id=repo_id)
    files = folder_files(model_dir)
    if "config.json" not in files:
        raise ConfigError(f"{model_dir}: no config.json; not a saved model folder")
    repo_id = create_repo(repo_id, "model", token=token, private=private, retry=retry)
    card = model_card(model_dir, repo_id, **card_info)
    with tempfile.TemporaryDirectory(prefix="distil-push-") as view:
        for rel, local in files.items():
            os.makedirs(os.path.dirname(os.path.join(view, rel)), exist_ok=True)
            os.symlink(os.path.abspath(local), os.path.join(view, rel))
        Path(view, "README.md").write_text(str(card), encoding="utf-8")
        with hub_call(f"pushing {model_dir} to model repo {repo_id}", model_dir, retry):  # the card is checked too
            commit = HfApi(token=token).upload_folder(
                repo_id=repo_id,
                folder_path=view,
                delete_patterns="*",  # the repo mirrors the folder (`.gitattributes` stays)
                commit_message=f"Upload {Path(model_dir).name}",
            )
    logger.info("Pushed %s to %s", model_dir, commit.commit_url)
    return commit.commit_url


def push_transfer_set(
    dataset_dir: str,
    repo_id: str,
    *,
    token=None,
    private=None,
    retry: str | None = None,
    teacher_id: str | None = None,
) -> str:
    """Push the transfer set written by `build_transfer_set` (Parquet shards, replacing the old ones), then its card
    (keeping the `configs` and `dataset_info` metadata that `DatasetDict.push_to_hub` writes). Returns the repo id."""
    from datasets import load_from_disk
    from huggingface_hub import DatasetCard

    retry = retry or retry_command(dataset_dir=dataset_dir, hub_dataset_id=repo_id)
    splits = load_from_disk(dataset_dir)
    repo_id = create_repo(repo_id, "dataset", token=token, private=private, retry=retry)
    card = transfer_set_card(dataset_dir, repo_id, teacher_id=teacher_id, splits=splits)
    with hub_call(f"pushing {dataset_dir} to dataset repo {repo_id}", dataset_dir, retry):
        card.validate(repo_type="dataset")
        splits.push_to_hub(repo_id, token=token, private=private, commit_message="Upload transfer set")
        pushed = DatasetCard.load(repo_id, repo_type="dataset", token=token)
        for key in ("configs", "dataset_info"):
            if pushed.data.get(key) is not None:
                card.data[key] = pushed.data.get(key)
        card.push_to_hub(repo_id, repo_type="dataset", token=token, commit_message="Dataset card")  # no-op if same
    logger.info("Pushed %s to dataset repo %s", dataset_dir, repo_id)
    return repo_id


# ---------------------------------------------------------------- what the recipes and the pipeline call


def create_repos(hub: HubArguments, *, teacher_dir: str | None = None) -> None:
    """Create the repos of `hub` before any work (main process only), so a wrong token or an unreachable Hub fails
    first. `teacher_dir`: the teacher's local folder (or the one it will be trained into); None when the teacher is
    not local, which `hub_teacher_id` refuses."""
    if not hub.push_to_hub:
        return
    if hub.hub_teacher_id and teacher_dir is None:
        raise ConfigError("hub_teacher_id: the teacher is not a local folder, so there is nothing to push")
    if not PartialState().is_main_process:
        return
    for repo_id, repo_type in (
        (hub.hub_dataset_id, "dataset"),
        (hub.hub_teacher_id, "model"),
        (hub.hub_model_id, "model"),
    ):
        if repo_id:
            create_repo(repo_id, repo_type, token=hub.hub_token, private=hub.hub_private_repo)


def publish(
    hub: HubArguments,
    *,
    model_dir: str | None = None,
    transfer_set_dir: str | None = None,
    teacher_dir: str | None = None,
    results: dict | None = None,
    retry: str | None = None,
) -> None:
    """Push a run's outputs, each once, on the main process: the transfer set (to `hub_dataset_id`), the teacher
    (with `hub_teacher_id`), then the model (to `hub_model_id`: the student, or a trainer stage's model), whose card
    links the other two. `results`: the pipeline's teacher-vs-student evaluation, for the cards. Every process calls
    it; the others wait for the main one."""
    if not hub.push_to_hub:
        return
    if PartialState().is_main_process:
        push_outputs(hub, model_dir, transfer_set_dir, teacher_dir, results, retry)
    wait_for_everyone()


def push_outputs(hub: HubArguments, model_dir, transfer_set_dir, teacher_dir, results, retry) -> None:
    """`publish`'s pushes, on the main process."""
    common = dict(token=hub.hub_token, private=hub.hub_private_repo)
    if transfer_set_dir:
        retry_here = retry or retry_command(dataset_dir=transfer_set_dir, hub_dataset_id=hub.hub_dataset_id)
        push_transfer_set(
            transfer_set_dir, hub.hub_dataset_id, teacher_id=hub.hub_teacher_id, retry=retry_here, **common
        )
    if teacher_dir and hub.hub_teacher_id:
        retry_here = retry or retry_command(model_dir=teacher_dir, hub_model_id=hub.hub_teacher_id)
        push_model(
            teacher_dir, hub.hub_teacher_id, transfer_set_id=hub.hub_dataset_id, results=results, retry=retry_here,
            **common,
        )  # fmt: skip
    if model_dir:
        retry_here = retry or retry_command(model_dir=model_dir, hub_model_id=hub.hub_model_id)
        push_model(
            model_dir,
            hub.hub_model_id,
            teacher_id=hub.hub_teacher_id,
            transfer_set_id=hub.hub_dataset_id if transfer_set_dir else None,
            results=results,
            benchmark=load_benchmark(hub.benchmark_report, model_dir),
            retry=retry_here,
            **common,
        )


def published(stage, stage_args: tuple, **kwargs):
    """A stage recipe's run with publishing around it: create the repos of the stage's push settings
    (`HubArguments.of` its `TrainingArguments` or `TransferSetArguments`), run `stage(*stage_args, **kwargs)`, then
    publish its output folder (a model to `hub_model_id`, a transfer set to `hub_dataset_id`). Returns the stage's
    result."""
    settings = next(args for args in stage_args if hasattr(args, "push_to_hub"))
    hub = HubArguments.of(settings)
    create_repos(hub)
    result = stage(*stage_args, **kwargs)
    output = "model_dir" if hasattr(settings, "hub_model_id") else "transfer_set_dir"
    publish(hub, **{output: settings.output_dir})
    return result


def publish_run(pipe, results: dict) -> None:
    """Publish a pipeline run (`distil.pipeline.PipelineArguments`, after `run_pipeline` returned `results`): the
    transfer set, the teacher with `hub_teacher_id`, and the student."""
    dirs = pipe.stage_dirs()
    publish(
        pipe,
        model_dir=dirs["student"],
        transfer_set_dir=dirs["transfer_set"],
        teacher_dir=pipe.local_teacher(),
        results=results,
        retry="run the same command again (finished stages are skipped: it evaluates and pushes)",
    )


# ---------------------------------------------------------------- python -m distil.push


@dataclass
class PushArguments(HubArguments):
    """`python -m distil.push`: push existing outputs (a model folder, a transfer set, a teacher)."""

    model_dir: str | None = field(default=None, metadata={"help": "A saved model folder, pushed to hub_model_id."})
    dataset_dir: str | None = field(
        default=None,
        metadata={"help": "A transfer set folder (build_transfer_set's output), pushed to hub_dataset_id."},
    )
    teacher_dir: str | None = field(default=None, metadata={"help": "The teacher's folder, pushed to hub_teacher_id."})
    push_to_hub: bool = field(default=True, metadata={"help": "Always on here."})

    def __post_init__(self):
        self.push_to_hub = True
        for folder, repo in (("model_dir", "hub_model_id"), ("dataset_dir", "hub_dataset_id"),
                             ("teacher_dir", "hub_teacher_id")):  # fmt: skip
            path = getattr(self, folder)
            if path is not None:
                if not os.path.isdir(path):
                    raise ConfigError(f"{folder}: {path} is not a folder")
                self.require(repo)
        if not (self.model_dir or self.dataset_dir or self.teacher_dir):
            raise ConfigError("nothing to push: give --model_dir, --dataset_dir and/or --teacher_dir")


def main(args: list[str] | None = None) -> None:
    (push_args,) = parse_args(PushArguments, args=args)
    publish(
        push_args,
        model_dir=push_args.model_dir,
        transfer_set_dir=push_args.dataset_dir,
        teacher_dir=push_args.teacher_dir,
    )


if __name__ == "__main__":
    run_recipe(main, "python -m distil.push")
