"""The named settings every configurable part of geomprior offers (``DGPConfig.preset(name)`` and the image
configs' ``preset``): cheaper, the default, and closer to the papers' sizes."""

from __future__ import annotations

from .errors import InputError

PRESETS = ("fast", "default", "quality")


def check_preset(name: str) -> None:
    """Raise InputError unless ``name`` is one of ``PRESETS``."""
    if name not in PRESETS:
        raise InputError(f"unknown preset {name!r}; valid: {', '.join(PRESETS)}")
