"""Device choice shared by every command: ``auto`` picks CUDA when present."""

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
