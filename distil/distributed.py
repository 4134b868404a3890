"""Processes under `accelerate launch`: one `PartialState` for the run, the main process writes, the others wait.

On a machine without an accelerator, processes started together (`WORLD_SIZE > 1`, e.g.
`accelerate launch --multi_gpu --num_processes 2` or `torchrun --nproc_per_node 2`) form a gloo CPU group: the state
is created with `cpu=True` there, which is also what `TrainingArguments` gets (`configs.DistilArgumentParser` makes
`use_cpu` the default when no accelerator exists).
"""

from __future__ import annotations

import contextlib

import torch
from accelerate import PartialState


def accelerator_available() -> bool:
    """A GPU (or other torch accelerator) this process could use."""
    accelerator = getattr(torch, "accelerator", None)
    if accelerator is not None:
        return accelerator.is_available()
    return torch.cuda.is_available()


def process_state() -> PartialState:
    """The run's `PartialState` (created on first use; a CPU-only machine gets a gloo group for several processes)."""
    if PartialState._shared_state:
        return PartialState()
    return PartialState(cpu=not accelerator_available())


def is_main_process() -> bool:
    return process_state().is_main_process


def wait_for_everyone() -> None:
    """Barrier: every process waits here until all have arrived (a no-op in a single process).

    Every process must reach the same barriers in the same order: code that runs on the main process alone must not
    call this (nor `main_process_first`, which holds one), or it pairs with another barrier of the other processes.
    """
    process_state().wait_for_everyone()


@contextlib.contextmanager
def main_process_first():
    """The main process runs the block first (building caches), then the others (reading them)."""
    with process_state().main_process_first():
        yield
