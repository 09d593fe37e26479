"""What every ``geomprior`` command shares: the parser's error format, option types, progress on stderr, and the
one-line error."""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
from pathlib import Path
from typing import Callable, TypeVar

from geomprior.errors import InputError

T = TypeVar("T")
PROG = "geomprior"
DEVICES = ("auto", "cpu", "cuda")


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors in the project's format."""

    def error(self, message: str):  # type: ignore[override]
        raise InputError(message)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


def _int_at_least(low: int):
    return _at_least(low, int, "integer")


def _float_at_least(low: float):
    return _at_least(low, float, "number")


def _at_least(low, kind, name: str):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a{'n' * (name[0] in 'aeiou')} {name}: {text!r}") from None
        if not (math.isfinite(value) and value >= low):
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value

    parse.__name__ = f"{name} >= {low}"
    return parse


class _Progress:
    """The library's progress callback on stderr: a tqdm bar per stage on a terminal; elsewhere (a log file, a
    pipe, a batch job) one plain line per stage every ``interval`` seconds and where the stage ends."""

    def __init__(self, interval: float = 60.0, clock=None) -> None:
        import time

        self.bar = None
        self.stage: str | None = None
        self.interval = interval
        self.clock = clock or time.monotonic
        self.lines = not sys.stderr.isatty()
        self.last: tuple | None = None  # (step, total, info) of the last call, for the stage's closing line
        self.started = self.printed = 0.0

    def __call__(self, stage: str, step: int, total: int, info: dict) -> None:
        if stage != self.stage:
            self.close()
            self.stage, self.started = stage, self.clock()
            self.printed = self.started
        self.last = (step, total, info)
        if self.lines:
            if self.clock() - self.printed >= self.interval:
                self._line()
            return
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(total=total, desc=stage, file=sys.stderr, dynamic_ncols=True, leave=True)
        bar = self.bar
        if total != bar.total:
            bar.total = total
        bar.n = step
        if info:
            bar.set_postfix(_postfix(info), refresh=False)
        bar.refresh()

    def _line(self) -> None:
        from tqdm import tqdm

        step, total, info = self.last
        self.printed = self.clock()
        meter = tqdm.format_meter(step, total, self.printed - self.started, ncols=0, prefix=self.stage,
                                  postfix=", ".join(f"{k}={v}" for k, v in _postfix(info).items()) or None)
        print(f"{PROG}: {meter}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        elif self.lines and self.last is not None:
            self._line()
        self.last = None


def _postfix(info: dict) -> dict:
    return {k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in info.items()}


@contextlib.contextmanager
def _logging_through_tqdm():
    try:
        from tqdm.contrib.logging import logging_redirect_tqdm
    except ImportError:  # pragma: no cover - old tqdm
        yield
        return
    with logging_redirect_tqdm():
        yield


def _fail(message: str, code: int) -> int:
    line = " ".join(str(message).split()) or "unknown error"
    print(f"{PROG}: error: {line}", file=sys.stderr, flush=True)
    return code


def _is_cuda_error(exc: BaseException) -> bool:
    text = str(exc)
    return "CUDA" in text or "cuda" in text


def with_progress(run: Callable[[_Progress], T]) -> T:
    """``run(progress)`` with progress on stderr (log lines go around the bar), the bar closed however it ends."""
    progress = _Progress()
    try:
        with _logging_through_tqdm():
            return run(progress)
    finally:
        progress.close()


def publish(outputs: dict[str, Path], writers: dict[str, Callable[[Path], None]]) -> None:
    """Write each output of ``outputs`` (name -> checked path) with its writer (name -> a function that writes to a
    path), to temporary files first: all of them appear together, only when every one was written (else none)."""
    from geomprior.io import atomic_path

    with contextlib.ExitStack() as stack:
        for name, path in outputs.items():
            writers[name](stack.enter_context(atomic_path(path)))
