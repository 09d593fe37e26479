"""geomprior: Deep Geometric Prior, untrained neural networks as priors for surface reconstruction.

Heavy modules (torch, open3d) load on first use: ``geomprior.reconstruct`` and
``geomprior.DGPConfig`` come from :mod:`geomprior.dgp` when first accessed.
"""

from geomprior.errors import InputError

__version__ = "0.1.0"
__all__ = ["DGPConfig", "InputError", "reconstruct", "__version__"]

_LAZY = {"DGPConfig": "geomprior.dgp", "reconstruct": "geomprior.dgp"}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'geomprior' has no attribute {name!r}")
