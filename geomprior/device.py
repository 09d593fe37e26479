"""Device choice shared by every command: ``auto`` picks CUDA when present; the float type of training passes;
how the CPU allocator treats the memory a training step frees."""

from __future__ import annotations

import ctypes
import functools
import os
import platform

import torch

from .errors import InputError


def pick_device(device: str | torch.device = "auto") -> torch.device:
    """"auto" -> CUDA when available, else CPU; "cuda" without CUDA raises InputError."""
    device = str(device)
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise InputError(f"unknown device {device!r}; valid: auto, cpu, cuda")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("device cuda requested but this torch has no CUDA device (install a CUDA build of torch)")
    return torch.device(device)


def training_dtype(precision: str, device: torch.device) -> torch.dtype:
    """The float type of a fit's forward and backward passes: "float32", "bfloat16", or "auto": bfloat16 on a CPU
    that computes it natively (AVX-512 BF16 or AMX, as oneDNN reports), else float32 (on CUDA too, until measured).

    Parameters, optimiser state and every output evaluation stay float32; bfloat16 only speeds the matrix products
    of the training steps.
    """
    if precision == "auto":
        native = device.type == "cpu" and torch.backends.mkldnn.is_available() and _cpu_has_bf16()
        return torch.bfloat16 if native else torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16}[precision]


def _cpu_has_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


# glibc mallopt parameters (malloc.h) and the values keep_freed_memory sets
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_LIMIT = 32 << 20  # the largest mmap threshold glibc accepts (half its 64 MB heap size)
_TRIM_LIMIT = 256 << 20


@functools.cache
def keep_freed_memory() -> bool:
    """Let glibc's malloc serve blocks of up to 32 MB from its heap and keep up to 256 MB of freed memory there.

    A CPU training step allocates its activations (tens of MB) and frees them in the backward pass. With glibc's
    adaptive defaults much of that memory goes back to the system every step and comes back as fresh zeroed pages
    on the next, which costs kernel time of the order of the step's own arithmetic. Process-wide, decided once;
    left alone where the user tuned malloc (``MALLOC_*_`` or ``GLIBC_TUNABLES`` in the environment) and off glibc.
    Returns whether the setting is in force.
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    if any(k.startswith("MALLOC_") or k == "GLIBC_TUNABLES" for k in os.environ):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
        return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_LIMIT)) and bool(mallopt(_M_TRIM_THRESHOLD, _TRIM_LIMIT))
    except (OSError, AttributeError):
        return False
