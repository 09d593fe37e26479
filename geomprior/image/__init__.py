"""Untrained networks as image priors: Deep Image Prior, Deep Decoder, and images as functions (tiled MLPs).

Submodules: :mod:`~geomprior.image.io` (read/write images), :mod:`~geomprior.image.operators` (forward
operators A), :mod:`~geomprior.image.dip`, :mod:`~geomprior.image.decoder`, :mod:`~geomprior.image.mlp`
(the priors), :mod:`~geomprior.image.tasks` (denoise, superresolve, inpaint, compress, compressed_sensing,
fit_image, solve), :mod:`~geomprior.image.generative` (trained generators helped by untrained priors: CSGM, IAGAN,
LCM). The names below load on first use, so ``import geomprior.image`` stays fast.
"""

STOP_RULES = ("auto", "heldout", "wmv", "discrepancy", "none")
"""The early-stopping rules of :class:`StopConfig` (here, so that the command line lists them without torch)."""

ENCODINGS = ("relu", "fourier", "siren", "grid")
"""The coordinate encodings of ``MLPConfig.encoding`` (here, so that the command line lists them without torch)."""

GENERATIVE = ("csgm", "iagan", "lcm")
"""The methods that recover an image with a trained generator (:mod:`geomprior.image.generative`)."""

_LAZY = {
    "read_image": "io", "write_image": "io", "read_mask": "io",
    "denoise": "tasks", "superresolve": "tasks", "inpaint": "tasks", "compress": "tasks", "compress_config": "tasks",
    "decompress": "tasks", "estimate_noise": "tasks",
    "compressed_sensing": "tasks", "fit_image": "tasks", "solve": "tasks", "psnr": "tasks",
    "ImageResult": "tasks", "StopConfig": "tasks", "SolveOptions": "tasks",
    "save_generator": "generative", "load_generator": "generative", "invert": "generative",
    "as_generator": "generative", "InvertConfig": "generative", "Generator": "generative", "back_project": "generative",
    "DIPConfig": "dip", "SkipNet": "dip", "DDConfig": "decoder", "DeepDecoder": "decoder",
    "dd_parameter_count": "decoder", "MLPConfig": "mlp", "CoordinateMLP": "mlp", "Tiling": "mlp",
    "ImageFunction": "mlp",
}
__all__ = sorted([*_LAZY, "ENCODINGS", "GENERATIVE", "STOP_RULES"])


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"geomprior.image.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'geomprior.image' has no attribute {name!r}")
