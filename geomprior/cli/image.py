"""``geomprior image ...``: fit, denoise, superres, inpaint, compress, decompress, cs (registered by
:mod:`geomprior.cli`).

Thin, like the rest of the command line: check everything cheap first (inputs readable, outputs writable, option
ranges), run the library, print where it stopped and why, publish the outputs together (atomic writes).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from pathlib import Path

from geomprior.cli.common import DEVICES, _int_at_least, _positive_float, publish, with_progress
from geomprior.errors import InputError
from geomprior.image import ENCODINGS, GENERATIVE, STOP_RULES
from geomprior.presets import PRESETS


def _ratio(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (math.isfinite(value) and 0 < value <= 1):
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text!r}")
    return value


def add_image_parser(sub, common: argparse.ArgumentParser) -> None:
    """Add ``image`` and its sub-commands to the ``geomprior`` sub-parsers ``sub``.

    Long: one flat list of every sub-command's options, in the order ``--help`` shows them."""
    image = sub.add_parser("image", help="image restoration with untrained networks",
                           description="Deep Image Prior, Deep Decoder and tiled coordinate MLPs as priors: "
                                       "fit, denoise, super-resolve, inpaint, compress, compressed sensing.")
    tasks = image.add_subparsers(dest="task", metavar="TASK", parser_class=type(image))
    tasks.required = True

    def task(name: str, help: str, methods: tuple[str, ...], default: str, *, reference: bool = True,
             stop: bool = True, sizes: bool = True, presets: tuple[str, ...] = PRESETS):
        p = tasks.add_parser(name, parents=[common], help=help, description=help)
        p.add_argument("input", metavar="INPUT", help="image: .png .jpg .bmp .tif ...")
        p.add_argument("-o", "--output", metavar="OUTPUT", required=True, help="image: .png .jpg .bmp .tif")
        p.add_argument("--method", choices=methods, default=default, help=f"prior (default: {default})")
        if set(methods) & set(GENERATIVE):
            p.add_argument("--generator", metavar="G.pt", help="trained generator file for --method csgm, iagan or "
                                                                "lcm (scripts/train_generator.py makes one)")
        if sizes:
            p.add_argument("--preset", choices=presets, default="default",
                           help="network size: fast, default (CPU-sized) or quality (the reference)"
                                + (", compact (fewer weights than pixel values)" if "compact" in presets else "")
                                + " (default: default)")
            p.add_argument("--channels", type=_int_at_least(1), metavar="K",
                           help="width of every layer (DIP encoder/decoder, DD k, MLP hidden) (default: preset)")
        p.add_argument("--iters", type=_int_at_least(0), metavar="N", help="cap on iterations (default: per task)")
        p.add_argument("--device", choices=DEVICES, default="auto", help="auto picks CUDA when available")
        p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
        p.add_argument("--history", metavar="RUN.json", help="write the run history as JSON")
        p.add_argument("--plot", metavar="PNG", help="plot the training and validation loss per iteration (and "
                                                     "PSNR), the kept iteration marked; also writes the strip "
                                                     "INPUT | RESULT [| REFERENCE] to <PNG stem>_strip.png")
        if reference:
            p.add_argument("--reference", metavar="CLEAN", help="ground-truth image: PSNR in the progress bar and "
                                                                 "at the end (never used to stop)")
        if name not in ("fit", "compress"):
            p.add_argument("--runs", type=_int_at_least(1), metavar="N",
                           help="average the outputs of N independent runs (seeds SEED..SEED+N-1), each stopping "
                                "on its own; costs N times one run (default: 1; denoise without --channels: dip "
                                "as many as the noise level sets, dd 2)")
        if stop:
            p.add_argument("--stop", choices=STOP_RULES, default="auto",
                           help="early stopping without ground truth: heldout pixels, wmv (variance of recent "
                                "outputs), discrepancy (the residual meets the noise level: --sigma, else "
                                "estimated from the image), none; auto: dip and mlp heldout, dd none (dip denoise: "
                                "none, its r2r loss needs no stop; dd denoise without --channels: discrepancy)")
            p.add_argument("--patience", type=_int_at_least(1), metavar="N",
                           help="iterations without improvement before stopping (default: 500 dip, 300 dd and mlp)")
        p.set_defaults(func=_run, image_task=name)
        return p

    p = task("fit", "Represent an image as tiled coordinate networks (an image as a function [0,1]^2 -> RGB).",
             ("mlp",), "mlp", reference=False, presets=(*PRESETS, "compact"))
    p.add_argument("--encoding", choices=ENCODINGS,
                   help="coordinate encoding: relu (plain MLP), fourier (Fourier features), siren (sine "
                        "activations), grid (multiresolution feature grids) (default: preset's, siren)")
    p.add_argument("--fourier", type=_int_at_least(1), metavar="L",
                   help="octaves of the fourier encoding (implies --encoding fourier) (default: 6)")
    p.add_argument("--tile", type=_int_at_least(2), metavar="PX", help="tile side in pixels (default: preset's)")
    p.add_argument("--scale", type=_positive_float, default=1.0, metavar="S",
                   help="write the fitted function rendered at S times the input's size, any S > 0 (default: 1)")
    p.add_argument("--code", metavar="CODE.npz", help="also write the fitted function (geomprior image decompress "
                                                       "renders it, at any --scale; ImageFunction.load in Python)")

    p = task("denoise", "Remove noise from an image.", ("dip", "dd", "mlp", *GENERATIVE), "dip")
    p.add_argument("--sigma", type=_positive_float, metavar="S",
                   help="noise standard deviation on the 0-255 scale, if known (used by dip's r2r loss, "
                        "--stop discrepancy and the Wiener step; estimated from the image otherwise)")
    p.add_argument("--wiener", action=argparse.BooleanOptionalAction, default=True,
                   help="refine the network's output with the empirical Wiener filter it guides (the second step "
                        "of BM3D, the network's output its pilot); --no-wiener returns the network's output "
                        "(default: on)")

    p = task("superres", "Super-resolve an image by an integer factor.", ("dip", "dd", *GENERATIVE), "dip")
    p.add_argument("--factor", type=_int_at_least(2), required=True, metavar="F", help="upsampling factor (2, 4, 8)")
    p.add_argument("--kernel", choices=("lanczos2", "lanczos3", "box"), default="lanczos2",
                   help="downsampler in the loss: lanczos2 (close to PIL's and MATLAB's bicubic shrink), "
                        "lanczos3 (PIL's LANCZOS), box (area averaging) (default: lanczos2)")

    p = task("inpaint", "Fill in the missing pixels of an image.", ("dip", "dd", "mlp", *GENERATIVE), "dip")
    p.add_argument("--mask", required=True, metavar="MASK", help="image of the same size: white = known, "
                                                                "black = missing")
    p.add_argument("--keep-known", action=argparse.BooleanOptionalAction, default=True,
                   help="keep the known pixels exactly and fill only the missing ones, as biharmonic inpainting "
                        "does; --no-keep-known returns the network's output everywhere, for noisy known pixels "
                        "(default: keep)")

    p = task("compress", "Represent an image by the weights of a Deep Decoder.", ("dd",), "dd", reference=False,
             stop=False, sizes=False)
    p.add_argument("--channels", type=_int_at_least(1), default=64, metavar="K", help="channels k (default: 64)")
    p.add_argument("--depth", type=_int_at_least(0), default=5, metavar="D",
                   help="number of x2 upsamplings d (default: 5)")
    p.add_argument("--code", metavar="CODE.npz", help="also write the code: the weights and what rebuilds the "
                                                       "decoder's input (geomprior image decompress reads it)")

    p = tasks.add_parser("decompress", parents=[common], help="Rebuild an image from a code of compress --code "
                                                                "or fit --code.",
                         description="Rebuild an image from a code written by geomprior image compress --code or "
                                     "fit --code.")
    p.add_argument("input", metavar="CODE.npz", help="code file of geomprior image compress --code or fit --code")
    p.add_argument("-o", "--output", metavar="OUTPUT", required=True, help="image: .png .jpg .bmp .tif")
    p.add_argument("--scale", type=_positive_float, default=1.0, metavar="S",
                   help="a fitted function (fit --code): render it at S times its image's size (default: 1)")
    p.add_argument("--device", choices=DEVICES, default="auto", help="auto picks CUDA when available")
    p.set_defaults(func=_decompress)

    p = task("cs", "Compressed sensing: simulate measurements of an image and recover it from them alone.",
             ("dd", "dip", *GENERATIVE), "dd", reference=False)
    p.add_argument("--measurements", type=_ratio, required=True, metavar="R",
                   help="measurements per pixel value, in (0, 1]")
    p.add_argument("--operator", choices=("gaussian", "fourier"), default="gaussian",
                   help="Gaussian random matrix (in blocks) or subsampled Fourier (default: gaussian)")
    p.add_argument("--block", type=_int_at_least(0), default=32, metavar="B",
                   help="Gaussian block size, 0 = one dense matrix (small images only) (default: 32)")


def _run(args: argparse.Namespace) -> int:
    from geomprior import io
    from geomprior.image import io as iio
    from geomprior.image import tasks

    # 1. everything cheap first
    input_path = Path(args.input)
    outputs = _outputs(args, input_path)
    image = iio.read_image(input_path)
    reference = (iio.read_image(args.reference, rgb=image.shape[2] == 3)  # a gray reference for a colour input
                 if getattr(args, "reference", None) else None)
    mask = iio.read_mask(args.mask, image.shape[:2]) if args.image_task == "inpaint" else None
    tasks.pick_device(args.device)
    common = _options(args)

    # 2. the fit
    res = with_progress(lambda progress: _fit(args, image, reference, mask, dict(common, progress=progress)))

    # 3. outputs, published together
    def code(path):
        if res.function is not None:
            res.function.save(path, atomic=False)
        else:
            iio.write_code(path, res.weights, shape=image.shape,
                           config=tasks.compress_config(args.channels, args.depth), seed=args.seed, atomic=False)

    def plot(path):
        from geomprior.plots import plot_fit

        plot_fit(path, res.history, kept=res.best_step, title=f"{input_path.name}: {res.summary}",
                 xlabel="iteration", kept_label="output")

    def strip(path):
        from geomprior.plots import comparison_strip

        panels = [image, res.image] + ([reference] if reference is not None else [])
        comparison_strip(path, panels, size=res.image.shape[:2])

    output = res.function.render(args.scale) if getattr(args, "scale", 1.0) != 1.0 else res.image
    publish(outputs, {"output": lambda path: iio.write_image(path, output, atomic=False), "code": code,
                      "history": lambda path: io.write_json(path, {"command": f"image {args.image_task}",
                                                                   "input": str(input_path), **res.to_json()}),
                      "plot": plot, "strip": strip})
    _report(args.image_task, res, outputs)
    return 0


def _outputs(args: argparse.Namespace, input_path: Path) -> dict[str, Path]:
    """The command's output files by role, checked writable and distinct from its inputs and from each other."""
    from geomprior import io
    from geomprior.image import io as iio

    outputs = {"output": io.check_writable(args.output, extensions=iio.WRITE_EXTENSIONS)}
    if getattr(args, "code", None):
        outputs["code"] = io.check_writable(args.code, extensions=(".npz",))
    if args.history:
        outputs["history"] = io.check_writable(args.history, extensions=(".json",))
    if args.plot:
        from geomprior.plots import strip_path

        outputs["plot"] = io.check_writable(args.plot, extensions=(".png",))
        outputs["strip"] = io.check_writable(strip_path(args.plot), extensions=(".png",))
    seen = {input_path.resolve(): "INPUT"}
    for flag in ("reference", "mask"):
        if getattr(args, flag, None):
            seen.setdefault(Path(getattr(args, flag)).resolve(), f"--{flag}")
    for key, path in outputs.items():
        if path.resolve() in seen:
            raise InputError(f"{path}: used both as {seen[path.resolve()]} and as the {key}")
        seen[path.resolve()] = key
    return outputs


def _options(args: argparse.Namespace) -> dict:
    """The task's options (geomprior.image.SolveOptions fields) from the command line."""
    from geomprior.image import tasks

    common = dict(iters=args.iters, device=args.device, seed=args.seed)
    if getattr(args, "method", None) in GENERATIVE:
        from geomprior.image.generative import load_generator

        if not args.generator:
            raise InputError(f"--method {args.method} needs a trained generator: --generator FILE")
        common["generator"] = load_generator(args.generator)
        del common["iters"]
        return common
    if getattr(args, "stop", None) is not None:
        sigma = args.sigma / 255 if getattr(args, "sigma", None) else None
        common["stop"] = tasks.StopConfig(rule=args.stop, patience=args.patience, sigma=sigma)
    if args.image_task not in ("compress", "fit"):
        if args.runs is not None:
            common["runs"] = args.runs
        if args.channels is None:  # a preset lets the task adapt it (DD's width for exact measurements)
            common["preset"] = args.preset
        else:
            common["config"] = tasks.make_config(args.method, args.preset, channels=args.channels,
                                                 task=args.image_task)
    return common


def _fit(args: argparse.Namespace, image, reference, mask, common: dict):
    """Run the command's task on the image."""
    from geomprior.image import tasks

    name = args.image_task
    if name == "fit":
        changes = {"tile": args.tile, "overlap": args.tile // 4} if args.tile else {}
        if args.encoding or args.fourier:
            changes["encoding"] = args.encoding or "fourier"
        if args.fourier:
            changes["fourier"] = args.fourier
        cfg = dataclasses.replace(tasks.make_config("mlp", args.preset, channels=args.channels), **changes)
        return tasks.fit_image(image, config=cfg, **common)
    if name == "denoise":
        return tasks.denoise(image, method=args.method, reference=reference, wiener=args.wiener, **common)
    if name == "superres":
        return tasks.superresolve(image, args.factor, method=args.method, kernel=args.kernel, reference=reference,
                                  **common)
    if name == "inpaint":
        return tasks.inpaint(image, mask, method=args.method, keep_known=args.keep_known, reference=reference,
                             **common)
    if name == "compress":
        return tasks.compress(image, channels=args.channels, depth=args.depth, **common)
    return tasks.compressed_sensing(image, args.measurements, method=args.method, operator=args.operator,
                                    block=args.block or None, **common)


def _report(name: str, res, outputs: dict[str, Path]) -> None:
    """Where the run stopped, its size, and the files written (stdout)."""
    print(res.summary)
    h, w, c = res.image.shape
    if name == "compress":
        print(f"parameters: {res.parameters} weights for {h}x{w}x{c} = {h * w * c} pixel values "
              f"(compression ratio {res.extra['ratio']:.2f}:1, {res.extra['bits_per_pixel']:.2f} bits per pixel "
              f"at 32-bit weights)")
    elif name == "cs":
        print(f"measurements: {res.extra['measurements']} ({res.extra['operator']}, ratio {res.extra['ratio']:.3f} "
              f"of {h * w * c} pixel values)")
    else:
        print(f"parameters: {res.parameters}")
    for key, path in outputs.items():
        print(f"{key}: {path}")


def _decompress(args: argparse.Namespace) -> int:
    from geomprior import io
    from geomprior.image import io as iio

    code_path = Path(args.input)
    output = io.check_writable(args.output, extensions=iio.WRITE_EXTENSIONS)
    if output.resolve() == code_path.resolve():
        raise InputError(f"{output}: used both as CODE and as the output")
    code = iio.read_code(code_path)
    from geomprior.image import tasks

    device = tasks.pick_device(args.device)
    n = sum(int(a.size) for a in code["weights"].values())
    if code["kind"] == "mlp":
        from geomprior.image.mlp import ImageFunction

        image = ImageFunction.from_code(code, device=device).render(args.scale)
        what = f"{code['config']['encoding']} tiles of {code['config']['tile']} pixels"
    else:
        if args.scale != 1.0:
            raise InputError(f"{code_path}: a Deep Decoder code renders at its own size only (--scale is for fit "
                             "--code)")
        image = tasks.decompress(code["weights"], code["shape"], tasks.DDConfig(**code["config"]), seed=code["seed"],
                                 device=args.device)
        what = f"k = {code['config']['channels']}, d = {code['config']['depth']}, seed {code['seed']}"
    iio.write_image(output, image)
    h, w, c = image.shape
    print(f"decoded a {h}x{w}x{c} image from {n} weights ({what})")
    print(f"output: {output}")
    return 0
