"""Command line: ``geomprior reconstruct``, ``geomprior eval``, ``geomprior view`` (:mod:`.surface`) and
``geomprior image ...`` (:mod:`.image`), on the helpers of :mod:`.common`.

Thin: parse, check everything cheap first, call the library, write the outputs.  Every user error
is one line ``geomprior: error: <message>`` on stderr with exit code 2, and no output file is left
behind (all outputs are published together, only when all of them were written).
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Sequence

from geomprior.cli.common import PROG, _fail, _is_cuda_error, _Parser, _Progress  # noqa: F401  (_Progress: API)
from geomprior.cli.image import add_image_parser
from geomprior.cli.surface import add_surface_parsers
from geomprior.errors import InputError


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``geomprior`` command."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="count", default=0,
                        help="log progress details (-vv: debug)")
    parser = _Parser(prog=PROG, description="Deep Geometric Prior: untrained networks as priors "
                                            "for surface reconstruction.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    add_surface_parsers(sub, common)
    add_image_parser(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``geomprior`` command; returns the exit code (0 ok, 2 user error, 130 interrupted)."""
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        args.argv = list(sys.argv[1:] if argv is None else argv)
        level = logging.WARNING - 10 * min(args.verbose, 2)
        logging.basicConfig(level=level, format=f"{PROG}: %(name)s: %(message)s", stream=sys.stderr)
        return args.func(args)
    except KeyboardInterrupt as e:  # a message says how to resume, where the run can be resumed
        print(f"{PROG}: interrupted" + (f"; {e}" if str(e) else ""), file=sys.stderr, flush=True)
        return 130
    except (InputError, OSError, ValueError) as e:
        if isinstance(e, OSError) and e.filename and e.strerror:
            return _fail(f"{e.filename}: {e.strerror}", 2)
        return _fail(str(e) or type(e).__name__, 2)
    except (RuntimeError, AssertionError) as e:
        if _is_cuda_error(e):  # e.g. "Torch not compiled with CUDA enabled", CUDA out of memory
            return _fail(str(e).splitlines()[0] if str(e) else "CUDA error", 2)
        raise


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
