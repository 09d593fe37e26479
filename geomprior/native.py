"""What open3d and native libraries print, captured: their messages go to Python's stdout and to file descriptors 1
and 2, never to the user's terminal; a failed read or write is named from them."""

from __future__ import annotations

import contextlib
import ctypes
import io
import logging
import os
import re
import sys
import tempfile
from collections.abc import Iterator

logger = logging.getLogger("geomprior.io")

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# Lines open3d / its bundled libraries print when a read or write failed.
_FAILURE = re.compile(
    r"(?:Read|Write) \w+ failed: (?P<a>.*)"
    r"|Unable to load file .*? with ASSIMP: (?P<b>.*)"
    r"|RPly: (?P<c>.*)"
)


@contextlib.contextmanager
def _native_output_captured() -> Iterator[list[str]]:
    """Capture what open3d and native code (RPly, GLFW) print while the block runs.

    Library code never prints, but open3d's messages go to Python's ``sys.stdout`` and those of
    its C libraries to file descriptors 1 and 2.  Both levels are redirected; the captured lines
    (ANSI colours stripped) are put in the yielded list when the block ends and logged at DEBUG
    level.  Output written meanwhile by other threads is captured too.
    """
    lines: list[str] = []
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    py_sink = io.StringIO()
    try:
        saved = [(fd, os.dup(fd)) for fd in (1, 2)]
    except OSError:  # no usable stdout/stderr file descriptors: capture the Python level only
        saved = []
    with tempfile.TemporaryFile() as sink:
        try:
            for fd, _ in saved:
                os.dup2(sink.fileno(), fd)
            with contextlib.redirect_stdout(py_sink), contextlib.redirect_stderr(py_sink):
                yield lines
        finally:
            with contextlib.suppress(Exception):  # flush C stdio buffers into the sink
                ctypes.CDLL(None).fflush(None)
            for fd, copy in saved:
                os.dup2(copy, fd)
                os.close(copy)
            sink.seek(0)
            text = py_sink.getvalue() + sink.read().decode("utf-8", errors="replace")
            text = _ANSI.sub("", text)
            lines[:] = [ln.strip() for ln in text.splitlines() if ln.strip()]
            for ln in lines:
                logger.debug("native: %s", ln)


def _failure_reason(lines: list[str]) -> str | None:
    """The first failure message found in captured open3d output, if any."""
    for ln in lines:
        m = _FAILURE.search(ln)
        if m:
            return (m.group("a") or m.group("b") or m.group("c") or ln).strip().rstrip(".")
    return None


@contextlib.contextmanager
def _o3d_quiet() -> Iterator[list[str]]:
    """open3d at warning verbosity, its output captured (see :func:`_native_output_captured`)."""
    import open3d as o3d

    with o3d.utility.VerbosityContextManager(o3d.utility.VerbosityLevel.Warning):
        with _native_output_captured() as lines:
            yield lines
