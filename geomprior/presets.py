"""The named settings every configurable part of geomprior offers (``DGPConfig.preset(name)`` and the image
configs' ``preset``): cheaper, the default, and closer to the papers' sizes; and the float types of their training
passes (``precision``, see ``geomprior.device.training_dtype``)."""

from __future__ import annotations

from .errors import InputError

PRESETS = ("fast", "default", "quality")
PRECISIONS = ("auto", "float32", "bfloat16")


def check_preset(name: str) -> None:
    """Raise InputError unless ``name`` is one of ``PRESETS``."""
    if name not in PRESETS:
        raise InputError(f"unknown preset {name!r}; valid: {', '.join(PRESETS)}")


def check_precision(precision: str) -> None:
    """Raise InputError unless ``precision`` is one of ``PRECISIONS``."""
    if precision not in PRECISIONS:
        raise InputError(f"unknown precision {precision!r}; valid: {', '.join(PRECISIONS)}")
