"""Device choice shared by every command: ``auto`` picks CUDA when present; the float type of training passes."""

from __future__ import annotations

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
