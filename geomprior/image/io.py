"""Reading and writing images and masks as float arrays.

Images are ``(H, W, C) float32`` arrays in [0, 1]: C = 1 for grayscale files, 3 for colour ones (``rgb=True``
repeats gray into three channels); an alpha channel is dropped with a logged warning. Writers are atomic
(:func:`geomprior.io.atomic_path`): a failure leaves no partial file. Every problem with a file is an
:class:`InputError` naming it.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import numpy as np

from geomprior.errors import InputError
from geomprior.io import check_file

log = logging.getLogger(__name__)

READ_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".webp", ".ppm", ".pgm", ".pnm")
"""File types :func:`read_image` accepts (the content is checked, not only the name)."""
WRITE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
"""File types :func:`write_image` writes (8 bits per channel)."""


def _to_float(path: Path, arr: np.ndarray) -> np.ndarray:
    """Integer / bool / float pixels -> float32 in [0, 1]."""
    if arr.dtype == bool:
        return arr.astype(np.float32)
    if np.issubdtype(arr.dtype, np.integer):
        info = np.iinfo(arr.dtype)
        if info.min < 0:
            raise InputError(f"{path}: signed integer pixels ({arr.dtype}) are not supported")
        return (arr.astype(np.float64) / info.max).astype(np.float32)
    if np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float32)
        if not np.isfinite(arr).all():
            raise InputError(f"{path}: image has NaN or infinite pixels")
        lo, hi = float(arr.min()), float(arr.max())
        if lo < 0 or hi > 1:
            log.warning("%s: float pixels span [%g, %g]; clipping to [0, 1]", path, lo, hi)
        return np.clip(arr, 0, 1)
    raise InputError(f"{path}: unsupported pixel type {arr.dtype}")


def _read_raw(path: str | os.PathLike) -> tuple[Path, np.ndarray]:
    path = Path(path)
    check_file(path)
    import imageio.v3 as iio

    try:
        with warnings.catch_warnings():  # imageio's legacy plugins warn while they guess at a garbage file
            warnings.simplefilter("ignore")
            arr = np.asarray(iio.imread(path, index=0))
    except Exception as e:  # imageio raises many types on garbage / unknown formats
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(f"{path}: not a readable image ({first})") from None
    if arr.ndim not in (2, 3) or arr.size == 0:
        raise InputError(f"{path}: not a 2-D image (array of shape {arr.shape})")
    if arr.ndim == 3 and arr.shape[2] not in (1, 2, 3, 4):
        raise InputError(f"{path}: {arr.shape[2]} channels; expected 1 (gray), 2 (gray+alpha), 3 (RGB) or 4 (RGBA)")
    return path, arr


def read_image(path: str | os.PathLike, *, rgb: bool = False) -> np.ndarray:
    """Read an image file as floats.

    rgb : repeat a grayscale image into three channels.

    Returns
    -------
    image : (H, W, C) float32 in [0, 1]
        C = 1 for a grayscale file (3 with ``rgb``), 3 for a colour one; an alpha channel is dropped (with a logged
        warning).

    Raises
    ------
    InputError
        Missing, empty or unreadable file, not an image, unsupported channel count or pixel type.
    """
    path, arr = _read_raw(path)
    img = _to_float(path, arr)
    if img.ndim == 2:
        img = img[:, :, None]
    if img.shape[2] in (2, 4):
        if float(img[:, :, -1].min()) < 1.0:
            log.warning("%s: dropping the alpha channel (transparency is ignored)", path)
        img = img[:, :, :-1]
    if rgb and img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    log.debug("read %dx%d image from %s", img.shape[1], img.shape[0], path)
    return np.ascontiguousarray(img, dtype=np.float32)


def read_mask(path: str | os.PathLike, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Read an inpainting mask: white (> 0.5) = known pixel, black = missing pixel.

    shape : (H, W) the image's size; a mask of another size is an error.

    Returns
    -------
    mask : (H, W) bool, True where the pixel is known.
    """
    path, arr = _read_raw(path)
    m = _to_float(path, arr)
    if m.ndim == 3:
        if m.shape[2] in (2, 4):
            m = m[:, :, :-1]
        m = m.mean(axis=2)
    if shape is not None and tuple(m.shape) != tuple(shape):
        raise InputError(f"{path}: mask is {m.shape[1]}x{m.shape[0]} pixels but the image is "
                         f"{shape[1]}x{shape[0]} (width x height)")
    mask = m > 0.5
    if not mask.any():
        raise InputError(f"{path}: mask marks no pixel as known (white = known, black = missing)")
    return mask


def check_image(image: np.ndarray, name: str = "image") -> np.ndarray:
    """Validate an (H, W, C) float image in [0, 1]; returns it as float32. (H, W) is taken as one channel."""
    img = np.asarray(image)
    if img.ndim == 2:
        img = img[:, :, None]
    if img.ndim != 3 or img.shape[0] < 1 or img.shape[1] < 1 or img.shape[2] < 1:
        raise InputError(f"{name} must be (H, W, C), got shape {np.shape(image)}")
    img = img.astype(np.float32)
    if not np.isfinite(img).all():
        raise InputError(f"{name} has NaN or infinite values")
    return img


def write_image(path: str | os.PathLike, image: np.ndarray, *, atomic: bool = True) -> None:
    """Write an (H, W, C) (C = 1 or 3) or (H, W) float image in [0, 1] as 8-bit.

    Values outside [0, 1] are clipped. ``atomic=False`` writes ``path`` directly (for a caller that already
    writes to a temporary path, e.g. inside :func:`geomprior.io.atomic_path`).
    """
    from geomprior.io import atomic_path, check_writable

    path = check_writable(path, extensions=WRITE_EXTENSIONS)
    img = check_image(image)
    if img.shape[2] not in (1, 3):
        raise InputError(f"{path}: can write 1 or 3 channels, got {img.shape[2]}")
    data = np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)
    if data.shape[2] == 1:
        data = data[:, :, 0]
    import imageio.v3 as iio

    kwargs = {"quality": 95} if path.suffix.lower() in (".jpg", ".jpeg") else {}
    if not atomic:
        iio.imwrite(path, data, **kwargs)
    else:
        with atomic_path(path) as tmp:
            iio.imwrite(tmp, data, **kwargs)
    log.debug("wrote %dx%d image to %s", data.shape[1], data.shape[0], path)


CODE_FORMAT = "geomprior deep decoder code"
"""The ``format`` field of a code file's header (:func:`write_code`), for both kinds of code."""
_ARCHITECTURE = ("channels", "depth", "input_scale", "upsample")
_ARCHITECTURE_LATER = ("input", "norm_before_relu")  # absent from the first code files: DDConfig's defaults


def write_code(path: str | os.PathLike, weights: dict, *, shape: tuple[int, int, int], config, seed: int,
               atomic: bool = True) -> None:
    """Write what rebuilds an image from weights: a Deep Decoder's (:func:`~geomprior.image.tasks.compress`'s
    ``result.weights``, ``config`` a ``DDConfig``, ``seed`` that of the fixed input) or a fitted function's
    (:meth:`~geomprior.image.mlp.ImageFunction.save`, ``config`` an ``MLPConfig``), and the image shape.

    The file is a ``.npz`` holding one float32 array (all weights, in order) and a JSON header, no pickles; its
    size is about 4 bytes per weight. :func:`read_code` reads it back.
    """
    import json

    from geomprior.io import atomic_path, check_writable

    path = check_writable(path, extensions=(".npz",))
    arrays = [np.asarray(w.detach().cpu() if hasattr(w, "detach") else w, dtype=np.float32) for w in weights.values()]
    if hasattr(config, "architecture"):  # MLPConfig
        kind, architecture = "mlp", config.architecture()
    else:
        kind, architecture = "dd", {name: getattr(config, name) for name in _ARCHITECTURE + _ARCHITECTURE_LATER}
    header = {"format": CODE_FORMAT, "version": 1, "kind": kind, "shape": [int(s) for s in shape], "seed": int(seed),
              "config": architecture, "weights": [[name, list(a.shape)] for name, a in zip(weights, arrays)]}
    flat = np.concatenate([a.ravel() for a in arrays]) if arrays else np.zeros(0, np.float32)

    def write(target):
        with open(target, "wb") as f:
            np.savez(f, header=np.frombuffer(json.dumps(header).encode(), np.uint8), weights=flat)

    if not atomic:
        write(path)
    else:
        with atomic_path(path) as tmp:
            write(tmp)
    log.debug("wrote %d weights to %s", flat.size, path)


def read_code(path: str | os.PathLike) -> dict:
    """Read a code file of :func:`write_code`.

    Returns
    -------
    dict with ``kind`` ("dd": a Deep Decoder; "mlp": a fitted function), ``weights`` (name -> float32 array),
    ``shape`` (H, W, C), ``seed`` and ``config`` (the architecture: keyword arguments of ``DDConfig`` or of
    ``MLPConfig``, lists where it has tuples).

    Raises
    ------
    InputError
        Missing or empty file, not a code file, or a damaged one.
    """
    import json
    import zipfile

    path = check_file(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            header = json.loads(np.asarray(npz["header"], dtype=np.uint8).tobytes().decode())
            flat = np.asarray(npz["weights"], dtype=np.float32)
        if not isinstance(header, dict) or header.get("format") != CODE_FORMAT:
            raise ValueError("another format")
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):  # JSON and Unicode errors are ValueErrors
        raise InputError(f"{path}: not a geomprior code file (written by compress or ImageFunction.save)") from None
    if header.get("version") != 1:
        raise InputError(f"{path}: code file version {header.get('version')!r}; this geomprior reads version 1")
    kind = header.get("kind", "dd")  # the first code files were all Deep Decoders
    try:
        sizes = [int(np.prod(shape, dtype=np.int64)) for _, shape in header["weights"]]
        if sum(sizes) != flat.size or kind not in ("dd", "mlp"):
            raise ValueError
        parts = np.split(flat, np.cumsum(sizes)[:-1]) if sizes else []
        weights = {name: part.reshape(shape) for (name, shape), part in zip(header["weights"], parts)}
        h, w, c = (int(s) for s in header["shape"])
        if kind == "mlp":
            config = dict(header["config"])
        else:
            config = {name: header["config"][name] for name in _ARCHITECTURE}
            config.update((name, header["config"][name]) for name in _ARCHITECTURE_LATER if name in header["config"])
        seed = int(header["seed"])
    except (KeyError, TypeError, ValueError):
        raise InputError(f"{path}: damaged code file (its weights do not match its header)") from None
    return {"kind": kind, "weights": weights, "shape": (h, w, c), "seed": seed, "config": config}
