"""What the machine offers: the CPU's model and feature flags, whether it does bf16 in hardware, and the autocast dtype a
forward pass uses on a device for a requested precision."""

from __future__ import annotations

import platform

import torch

NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16", "bf16")  # x86 AMX, x86 AVX512-BF16, Arm BF16 (`Features`)


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
