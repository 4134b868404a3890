"""What the machine offers: the CPU's model and feature flags, whether it does bf16 in hardware, the autocast dtype a
forward pass uses on a device for a requested precision, and the CPU threads a launched process uses."""

from __future__ import annotations

import os
import platform
from collections.abc import Mapping

import torch

from distil.errors import ConfigError

NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16", "bf16")  # x86 AMX, x86 AVX512-BF16, Arm BF16 (`Features`)
CPU_THREADS_ENV = "DISTIL_CPU_THREADS"
# set by launchers that start several processes on one machine (torchrun, accelerate, MPI)
LOCAL_PROCESS_COUNT_ENVS = (
    "LOCAL_WORLD_SIZE",
    "WORLD_SIZE",
    "OMPI_COMM_WORLD_LOCAL_SIZE",
    "MPI_LOCALNRANKS",
    "PMI_SIZE",
)


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (`model name` on x86), else what `platform` knows, else "unknown"."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip().lower() == "model name":
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def cpu_flags() -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo (`flags` on x86, `Features` on Arm); empty where unreadable."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip().lower() in ("flags", "features"):
                    return set(value.split())
    except OSError:
        pass
    return set()


def cpu_has_native_bf16() -> bool:
    """Whether this CPU does bf16 matrix work in hardware (AMX-BF16 or AVX512-BF16 on x86, BF16 on Arm).

    On x86 the flags count only where torch dispatches to its AVX512 kernels (`torch.backends.cpu.
    get_cpu_capability()`); elsewhere bf16 is emulated and slower than fp32 (see results/README.md).
    """
    capability = torch.backends.cpu.get_cpu_capability()
    flags = cpu_flags()
    if capability in ("AVX512", "AMX"):
        return bool(flags & {"amx_bf16", "avx512_bf16"})
    if capability.startswith("SVE") or capability == "DEFAULT":
        return "bf16" in flags  # Arm: the `Features` line
    return False  # AVX2 / NO AVX / VSX / Z VECTOR


def resolve_autocast(device: str | torch.device, precision: str = "auto") -> torch.dtype | None:
    """The autocast dtype (None: fp32). `auto`: bf16 (or fp16 without bf16) on GPU; bf16 on a CPU with native bf16
    (`cpu_has_native_bf16`), fp32 on any other CPU."""
    if precision not in ("auto", "fp32", "bf16", "fp16"):
        raise ValueError(f"precision: expected auto, fp32, bf16 or fp16, got {precision!r}")
    if precision == "fp32":
        return None
    if precision == "auto":
        kind = torch.device(device).type
        if kind == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if kind == "cpu" and cpu_has_native_bf16():
            return torch.bfloat16
        return None
    return torch.bfloat16 if precision == "bf16" else torch.float16


PRECISION_NAMES = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}


def precision_name(autocast_dtype: torch.dtype | None) -> str:
    """`fp32`, `bf16` or `fp16`: the `precision` value that names an autocast dtype (`resolve_autocast`'s result)."""
    return PRECISION_NAMES[autocast_dtype]


def available_cores() -> int:
    """The CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def launch_cpu_threads(environ: Mapping[str, str] | None = None, cores: int | None = None) -> tuple[int | None, str]:
    """The torch threads a recipe's process should use, and why; `(None, reason)` keeps torch's own setting.

    `DISTIL_CPU_THREADS` wins. Otherwise a single CPU process that `accelerate launch` started with
    `OMP_NUM_THREADS=1` gets every core it may run on: `accelerate launch --cpu` without `--num_processes` (or with a
    config that does not say `use_cpu: true`) leaves its one process at 1 thread, half of a 2-core machine. Several
    local processes, a GPU run and any other thread count are left as launched.
    """
    environ = os.environ if environ is None else environ
    cores = available_cores() if cores is None else cores
    requested = environ.get(CPU_THREADS_ENV)
    if requested:
        try:
            threads = int(requested)
        except ValueError:
            threads = 0
        if threads < 1:
            raise ConfigError(f"{CPU_THREADS_ENV}: expected a positive number of threads, got {requested!r}")
        return threads, f"{CPU_THREADS_ENV}={threads}"
    if environ.get("ACCELERATE_USE_CPU", "").lower() not in ("1", "true", "yes"):
        return None, "as started: not a CPU process of accelerate launch"
    if any(int(environ.get(name) or 1) > 1 for name in LOCAL_PROCESS_COUNT_ENVS if environ.get(name, "").isdigit()):
        return None, "as launched: several processes share the machine"
    if environ.get("OMP_NUM_THREADS") != "1" or cores <= 1:
        return None, f"as launched: OMP_NUM_THREADS={environ.get('OMP_NUM_THREADS')}"
    return cores, (
        f"accelerate started this single CPU process with OMP_NUM_THREADS=1; using its {cores} cores "
        f"(set {CPU_THREADS_ENV} to choose)"
    )


_threads_reason: str | None = None  # why `use_launch_cpu_threads` changed torch's thread count, if it did


def use_launch_cpu_threads() -> int:
    """Apply `launch_cpu_threads` to torch (a recipe does, before logging is set up; `cpu_threads_description` says
    what it did); returns the thread count in use."""
    global _threads_reason
    threads, reason = launch_cpu_threads()
    if threads is not None and threads != torch.get_num_threads():
        torch.set_num_threads(threads)
        _threads_reason = reason
    return torch.get_num_threads()


def cpu_threads_description() -> str:
    """torch's CPU threads, and why where `use_launch_cpu_threads` chose them: `2 threads (accelerate started ...)`."""
    threads = torch.get_num_threads()
    return f"{threads} threads" + (f" ({_threads_reason})" if _threads_reason else "")
