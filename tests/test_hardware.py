"""`distil.hardware`: CPU flags, native bf16, the autocast dtype per device and precision, and launch CPU threads."""

from __future__ import annotations

import os
import platform

import pytest
import torch

import distil.hardware as hardware
from distil.errors import ConfigError
from distil.hardware import launch_cpu_threads, resolve_autocast


@pytest.mark.parametrize(
    ("capability", "flags", "expected"),
    [
        ("AVX2", {"avx2", "fma"}, None),  # AVX2-only EPYC: bf16 is emulated, fp32
        ("AVX512", {"avx512f", "avx512bw"}, None),  # AVX-512 without its bf16 extension
        ("AVX2", {"avx2", "avx512_bf16"}, None),  # flags alone are not enough where torch does not use AVX-512
        ("AVX512", {"avx512f", "avx512_bf16"}, torch.bfloat16),  # e.g. AMD Zen 4
        ("AVX512", {"avx512f", "amx_tile", "amx_bf16"}, torch.bfloat16),  # Intel Sapphire Rapids (AMX)
        ("SVE256", {"sve", "bf16"}, torch.bfloat16),  # Arm Neoverse V1
        ("DEFAULT", {"asimd"}, None),  # Arm without BF16
    ],
)
def test_auto_precision_on_cpu_follows_native_bf16(monkeypatch, capability, flags, expected):
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    monkeypatch.setattr(hardware, "cpu_flags", lambda: set(flags))
    assert hardware.cpu_has_native_bf16() is (expected is not None)
    assert resolve_autocast("cpu", "auto") is expected
    assert resolve_autocast("cpu", "fp32") is None  # asked for, always honoured
    assert resolve_autocast("cpu", "bf16") is torch.bfloat16
    assert resolve_autocast("cpu", "fp16") is torch.float16


def test_auto_precision_on_gpu_is_half(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve_autocast("cuda", "auto") is torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve_autocast("cuda", "auto") is torch.float16


def test_unknown_precision_is_an_error():
    with pytest.raises(ValueError, match="precision"):
        resolve_autocast("cpu", "int8")


def test_cpu_flags_reads_proc_cpuinfo():
    flags = hardware.cpu_flags()
    assert isinstance(flags, set)
    if os.path.isfile("/proc/cpuinfo") and platform.machine() in ("x86_64", "AMD64"):
        assert "sse2" in flags  # every x86-64 CPU has it


ACCELERATE_CPU = {"ACCELERATE_USE_CPU": "True", "ACCELERATE_MIXED_PRECISION": "no", "OMP_NUM_THREADS": "1"}


def test_accelerate_cpu_default_of_one_thread_gets_every_core():
    """`accelerate launch --cpu` without `--num_processes` starts its single process with OMP_NUM_THREADS=1."""
    threads, reason = launch_cpu_threads(ACCELERATE_CPU, cores=2)
    assert threads == 2 and "OMP_NUM_THREADS=1" in reason


@pytest.mark.parametrize(
    "environ",
    [
        {},  # not launched by accelerate: torch's own default
        {
            **ACCELERATE_CPU,
            "OMP_NUM_THREADS": "2",
        },  # the launcher chose (--num_processes 1, configs/accelerate/cpu.yaml)
        {**ACCELERATE_CPU, "WORLD_SIZE": "2"},  # two CPU processes share the cores
        {**ACCELERATE_CPU, "ACCELERATE_USE_CPU": "False"},  # a GPU run
    ],
)
def test_other_launches_keep_their_threads(environ):
    assert launch_cpu_threads(environ, cores=4)[0] is None
    assert launch_cpu_threads(ACCELERATE_CPU, cores=1)[0] is None  # one core: nothing to add


def test_distil_cpu_threads_wins_and_is_checked():
    assert launch_cpu_threads({**ACCELERATE_CPU, "DISTIL_CPU_THREADS": "1"}, cores=8)[0] == 1
    assert launch_cpu_threads({"DISTIL_CPU_THREADS": "3"}, cores=2)[0] == 3
    with pytest.raises(ConfigError, match="DISTIL_CPU_THREADS"):
        launch_cpu_threads({"DISTIL_CPU_THREADS": "zero"}, cores=2)


def test_a_recipe_applies_the_choice_and_the_stages_say_why(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.setattr(hardware, "_threads_reason", None)
    monkeypatch.setattr(hardware, "available_cores", lambda: 2)
    for name, value in ACCELERATE_CPU.items():
        monkeypatch.setenv(name, value)
    for name in (*hardware.LOCAL_PROCESS_COUNT_ENVS, hardware.CPU_THREADS_ENV):
        monkeypatch.delenv(name, raising=False)
    try:
        torch.set_num_threads(1)
        assert hardware.cpu_threads_description() == "1 threads"  # nothing chosen yet: no reason given
        assert hardware.use_launch_cpu_threads() == 2 == torch.get_num_threads()
        assert hardware.cpu_threads_description().startswith("2 threads (accelerate started this single CPU process")
    finally:
        torch.set_num_threads(before)
