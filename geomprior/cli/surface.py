"""``geomprior reconstruct``, ``geomprior eval`` and ``geomprior view``: the surface commands."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from pathlib import Path

from geomprior.cli.common import DEVICES, PROG, _float_at_least, _int_at_least, _positive_float, publish, with_progress
from geomprior.errors import InputError
from geomprior.presets import PRECISIONS, PRESETS

logger = logging.getLogger(__name__)
EXECUTORS = ("local", "ray")


def add_surface_parsers(sub, common: argparse.ArgumentParser) -> None:
    """Add ``reconstruct``, ``eval`` and ``view`` to the ``geomprior`` sub-parsers ``sub``.

    Long: one flat list of every command's options, in the order ``--help`` shows them."""
    rec = sub.add_parser("reconstruct", parents=[common], help="noisy point cloud -> mesh",
                         description="Fit Deep Geometric Prior patches to a noisy point cloud and "
                                     "write a mesh.")
    rec.add_argument("input", metavar="INPUT", help="points: .ply .obj .off .xyz .pts .las .laz (colours of a "
                                                    "PLY or LAS file are carried to the mesh)")
    rec.add_argument("-o", "--output", metavar="OUTPUT", required=True, help="mesh: .ply .obj .off")
    rec.add_argument("--points", metavar="DENSE.ply", help="also write the dense oriented points")
    rec.add_argument("--preset", choices=PRESETS, default="default", help="settings (default: default)")
    rec.add_argument("--device", choices=DEVICES, default="auto",
                     help="auto picks CUDA when available (default: auto)")
    rec.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    rec.add_argument("--radius", type=_positive_float, metavar="FLOAT",
                     help="patch radius, share of the scan's extent: the bounding-box diagonal of the scanned "
                          "surface, without far stray clusters (default: the preset's, smaller on a scan with "
                          "little noise)")
    rec.add_argument("--max-epochs", type=_int_at_least(0), metavar="INT",
                     help="cap on local-fit epochs (default: preset)")
    rec.add_argument("--no-consistency", action="store_true", help="skip the consistency refit")
    rec.add_argument("--keep-outliers", action="store_true",
                     help="fit every input point (default: drop points with too few neighbours to carry a patch)")
    rec.add_argument("--keep-clusters", action="store_true",
                     help="reconstruct small clusters far from the scanned surface too, each as a piece of its own "
                          "(default: set them aside as stray returns)")
    shape = rec.add_mutually_exclusive_group()
    shape.add_argument("--closed", dest="closed", action="store_const", const=True,
                       help="watertight mesh of every object (default: closed where the scan encloses a volume)")
    shape.add_argument("--open", dest="closed", action="store_const", const=False,
                       help="open mesh that ends near the points (default: open where the scan does not enclose a "
                            "volume)")
    rec.add_argument("--thin-parts", nargs="?", const="on", choices=("auto", "on", "off"),
                     help="normals for thin parts (sheets, blades), so that the two sides of a part do not get the "
                          "same orientation (only when the input has no normals): on, off, or auto (default: "
                          "estimate both ways, take the thin-part normals where the two disagree widely)")
    rec.add_argument("--outward", nargs="?", const="on", choices=("auto", "on", "off"),
                     help="turn the estimated normals to face the directions the points are seen from (only when "
                          "the input has no normals): on, off, or auto (default: where the scan encloses a volume); "
                          "helps closed shapes with thin parts such as legs")
    rec.add_argument("--mesh-points", choices=("fitted", "dense"),
                     help="the points the mesh is made from: fitted (default: each scan point moved to the weighted "
                          "mean of the patch predictions matched to it) or dense (every patch's uv grid)")
    rec.add_argument("--edge-filter", type=_int_at_least(0), metavar="INT",
                     help="iterations of the filter that takes the noise left in the mesh out without rounding its "
                          "edges (bilateral filtering of the face normals; default: preset, 0: none)")
    rec.add_argument("--fidelity", type=_float_at_least(0), metavar="FLOAT",
                     help="how the mesh is moved onto the fitted points at last: their offsets averaged over this × "
                          "the patch radius (default: the preset's, 0: not moved)")
    rec.add_argument("--taubin", type=_int_at_least(0), metavar="INT",
                     help="steps of Taubin smoothing on the mesh last, which take out the roughness left at the "
                          "scale of a triangle (default: the preset's, 0: none)")
    rec.add_argument("--loss", choices=("assignment", "sinkhorn"),
                     help="the local fit's loss: assignment (default: squared distance to the matched points) or "
                          "sinkhorn (the Sinkhorn divergence, geomloss; the Earth Mover loss of the design)")
    rec.add_argument("--matching", choices=("exact", "sinkhorn"),
                     help="how predictions are matched to points for the assignment loss and the consistency step: "
                          "exact (default: one-to-one) or sinkhorn (the hardened Sinkhorn plan, geomloss)")
    rec.add_argument("--precision", choices=PRECISIONS,
                     help="float type of the training steps: auto (default: bfloat16 on a CPU that computes it "
                          "natively, else float32), float32 or bfloat16; weights and outputs stay float32")
    rec.add_argument("--history", metavar="RUN.json", help="write the run history as JSON")
    rec.add_argument("--render", metavar="PNG", help="render the mesh and the input points to a PNG")
    rec.add_argument("--plot", metavar="PNG", help="plot the local fit's training and validation loss per "
                                                   "epoch, with the kept (early-stop) epoch marked")
    large = rec.add_argument_group("large scans", "cut the scan into tiles fitted independently (any of these "
                                   "options; none: one fit of the whole scan)")
    size = large.add_mutually_exclusive_group()
    size.add_argument("--tile-size", type=_positive_float, metavar="F",
                      help="tile side, fraction of the bounding-box diagonal (grid of cubes)")
    size.add_argument("--tile-points", type=_int_at_least(1), metavar="N",
                      help="about N points per tile (median splits)")
    large.add_argument("--executor", choices=EXECUTORS, default="local",
                       help="run the tiles in this process or as Ray tasks (default: local)")
    large.add_argument("--address", metavar="A",
                       help="Ray cluster to join (e.g. ray://head:10001); default: start a local Ray")
    large.add_argument("--run-dir", metavar="DIR", help="checkpoint each finished tile in DIR")
    large.add_argument("--resume", action="store_true", help="continue the run in --run-dir")
    rec.set_defaults(func=_cmd_reconstruct)

    ev = sub.add_parser("eval", parents=[common], help="compare a mesh with a reference mesh",
                        description="Chamfer-L1, Hausdorff, normal consistency and F-score, with both "
                                    "meshes scaled by the reference's bounding-box diagonal.")
    ev.add_argument("mesh", metavar="MESH", help="reconstruction: .ply .obj .off .stl")
    ev.add_argument("reference", metavar="REFERENCE", help="ground truth: .ply .obj .off .stl")
    ev.add_argument("--json", action="store_true", help="print one JSON object")
    ev.add_argument("--samples", type=_int_at_least(1), default=100_000, metavar="N",
                    help="surface samples per mesh (default: 100000)")
    ev.add_argument("--seed", type=int, default=0, help="sampling seed (default: 0)")
    ev.add_argument("--fscore-threshold", type=_positive_float, default=0.01, metavar="T",
                    help="F-score distance, fraction of the diagonal (default: 0.01)")
    ev.set_defaults(func=_cmd_eval)

    view = sub.add_parser(
        "view", parents=[common], help="look at meshes, point clouds and patches",
        description="Show meshes (grey) and point clouds (orange) in open3d's viewer window, or render them "
                    "to a PNG from a fixed camera with --screenshot (no display needed).",
        epilog="In the window: drag to rotate, scroll to zoom, N toggles the normals of point clouds that have "
               "them, + and - change the point size, H prints every key, Q closes.")
    view.add_argument("files", nargs="+", metavar="FILE",
                      help="mesh or points: .ply .obj .off .stl .xyz .pts; with --patches also a run folder "
                           "(or its patches.npz)")
    view.add_argument("--screenshot", metavar="PNG",
                      help="no window: render to this PNG (works without a display: starts its own Xvfb)")
    view.add_argument("--patches", action="store_true",
                      help="colour the input points of each run folder by patch (reads RUN_DIR/patches.npz)")
    view.add_argument("--normals", action="store_true",
                      help="draw the normals of point clouds that have them (e.g. reconstruct --points output)")
    view.set_defaults(func=_cmd_view)


# --------------------------------------------------------------------------------------------
# reconstruct


def _cmd_reconstruct(args: argparse.Namespace) -> int:
    """``geomprior reconstruct``: check every input and output, fit (tiled or not), publish the outputs together.

    Long: the three steps read top to bottom, as the README describes them; each is a few lines per option."""
    from geomprior import io

    # 1. everything cheap first, so a long fit is never wasted
    input_path = Path(args.input)
    outputs = {"mesh": io.check_writable(args.output, extensions=io.MESH_WRITE_EXTENSIONS)}
    if args.points:
        outputs["points"] = io.check_writable(args.points, extensions=io.POINT_WRITE_EXTENSIONS)
    if args.history:
        outputs["history"] = io.check_writable(args.history, extensions=(".json",))
    if args.render:
        outputs["render"] = io.check_writable(args.render, extensions=(".png",))
        from geomprior.viz import check_render_available

        check_render_available()
    if args.plot:
        outputs["plot"] = io.check_writable(args.plot, extensions=(".png",))
    seen = {input_path.resolve(): "INPUT"}
    for name, path in outputs.items():
        key = path.resolve()
        if key in seen:
            raise InputError(f"{path}: used both as {seen[key]} and as the {name} output")
        seen[key] = name
    tiled = (args.tile_size is not None or args.tile_points is not None or args.executor != "local"
             or args.run_dir is not None or args.resume)
    if args.address is not None and args.executor != "ray":
        raise InputError("--address needs --executor ray")
    if args.resume and args.run_dir is None:
        raise InputError("--resume needs --run-dir")
    if tiled and args.plot:
        raise InputError("--plot shows one fit; a tiled run has one per tile (their losses are in --history)")
    from geomprior.dgp import DGPConfig, reconstruct
    from geomprior.device import pick_device

    pick_device(args.device)
    # tiled runs read binary PLY through a memory map, tile by tile
    points, normals, colors = (io.map_points if tiled else io.read_scan)(input_path)

    cfg = DGPConfig.preset(args.preset)
    changes = {}
    if args.radius is not None:
        changes.update(radius=args.radius, adapt_radius=False)
    if args.max_epochs is not None:
        changes["max_epochs"] = args.max_epochs
    if args.no_consistency:
        changes["consistency"] = False
    if args.keep_outliers:
        changes["drop_outliers"] = False
    if args.keep_clusters:
        changes["small_clusters"] = "keep"
    if args.closed is not None:
        changes["closed"] = args.closed
    if args.thin_parts is not None:
        changes["thin_parts"] = {"on": True, "off": False}.get(args.thin_parts, "auto")
    if args.outward is not None:
        changes["outward"] = {"on": True, "off": False}.get(args.outward, "auto")
    for name in ("mesh_points", "edge_filter", "fidelity", "taubin", "loss", "matching", "precision"):
        if getattr(args, name) is not None:
            changes[name] = getattr(args, name)
    cfg = dataclasses.replace(cfg, **changes)

    # 2. the fit
    def fit(progress):
        if tiled:
            return _reconstruct_tiled(args, points, normals, colors, cfg, progress)
        return reconstruct(points, normals, config=cfg, colors=colors, device=args.device, seed=args.seed,
                           progress=progress)

    rec = with_progress(fit)

    # 3. outputs, published together
    def render(path):
        import open3d as o3d
        from geomprior.viz import render_png

        cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))
        render_png(path, [rec.mesh, cloud], keep_point_colors=colors is not None)

    def plot(path):
        from geomprior.plots import plot_fit

        local = rec.history["local"]
        plot_fit(path, local, kept=local["best_step"], xlabel="epoch",
                 title=f"{input_path.name}: local fit of {rec.history['patches']} patches: {local['reason']}")

    publish(outputs, {"mesh": lambda path: io.write_mesh(path, rec.mesh),
                      "points": lambda path: io.write_points(path, rec.points, rec.normals),
                      "history": lambda path: io.write_json(path, rec.history), "render": render, "plot": plot})

    print(rec.summary)
    print(*_report(rec.history["quality"]), sep="\n")
    for name, path in outputs.items():
        print(f"{name}: {path}")
    print(_peak_memory(rec))
    return 0


def _report(quality: dict) -> list[str]:
    """The run's ground-truth-free quality report (``metrics.scan_quality``), two lines."""
    facts = [f"{quality['components']} component{'s' if quality['components'] != 1 else ''}",
             "edge-manifold" if quality["edge_manifold"] else "NOT edge-manifold",
             "watertight" if quality["watertight"] else f"open ({quality['boundary_edges']} boundary edges)",
             f"Euler characteristic {quality['euler']}"]
    return [f"quality: coverage {quality['coverage']:.3f} (share of the points within 3 spacings of the mesh), "
            f"invented surface {quality['invented']:.3f} (share of the area beyond 6 spacings from every point), "
            f"{quality['set_aside']} points set aside",
            f"topology: {', '.join(facts)}"]


def _reconstruct_tiled(args: argparse.Namespace, points, normals, colors, cfg, progress):
    """The tiled path of ``reconstruct``; Ctrl-C says how to resume."""
    import shlex

    from geomprior.executors import make_executor
    from geomprior.tiling import reconstruct_tiled

    executor = make_executor(args.executor, address=args.address)
    try:
        return reconstruct_tiled(points, normals, cfg, colors=colors, tile_size=args.tile_size,
                                 tile_points=args.tile_points,
                                 seed=args.seed, device=args.device, executor=executor, run_dir=args.run_dir,
                                 resume=args.resume, progress=progress)
    except KeyboardInterrupt:
        progress.close()
        if args.run_dir is None:
            raise
        saved = len(list((Path(args.run_dir) / "tiles").glob("*.npz")))
        again = [a for a in args.argv if a != "--resume"] + ["--resume"]
        raise KeyboardInterrupt(f"{saved} finished tiles are saved in {args.run_dir}; resume with: "
                                f"{shlex.join([PROG, *again])}") from None
    finally:
        executor.close()


def _peak_memory(rec) -> str:
    """One line: peak resident memory of this process (and of the largest Ray worker of a tiled run)."""
    import resource

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)
    line = f"peak memory: {rss / 2**30:.2f} GiB (this process)"
    worker = getattr(rec, "worker_peak_rss", 0)
    if worker:
        line += f", {worker / 2**30:.2f} GiB (largest Ray worker)"
    return line


# --------------------------------------------------------------------------------------------
# eval


def _cmd_eval(args: argparse.Namespace) -> int:
    from geomprior.io import read_mesh
    from geomprior.metrics import METRIC_KEYS, evaluate

    mesh = read_mesh(args.mesh)
    reference = read_mesh(args.reference)
    result = evaluate(mesh, reference, n_samples=args.samples, seed=args.seed,
                      fscore_threshold=args.fscore_threshold)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{'metric':<20} {'value':>10}")
    for key in METRIC_KEYS:
        print(f"{key:<20} {result[key]:>10.6f}")
    print(f"(both meshes scaled by the reference's bounding-box diagonal; {args.samples} samples "
          f"each, seed {args.seed}; F-score at {args.fscore_threshold:g} of the diagonal)")
    return 0


# --------------------------------------------------------------------------------------------
# view


def _cmd_view(args: argparse.Namespace) -> int:
    import open3d as o3d

    from geomprior import io, viz
    from geomprior.patches import PATCH_LABELS_FILE, load_patch_labels

    # 1. where the picture goes: a PNG (checked first, nothing is read before) or a window
    screenshot = None
    if args.screenshot:
        screenshot = io.check_writable(args.screenshot, extensions=(".png",))
        viz.check_render_available()
    elif not viz.has_display():
        raise InputError("no display to open a window on (DISPLAY is not set): use --screenshot PNG to render "
                         "to a file, or set DISPLAY")
    # 2. what to show
    geometries, labelled = [], 0
    for name in args.files:
        path = Path(name)
        if args.patches and (path.is_dir() or path.suffix.lower() == ".npz"):
            points, labels = load_patch_labels(path)
            geometries.append(viz.labelled_cloud(points, labels))
            labelled += 1
            logger.info("%s: %d points in %d patches, %d in none", path, len(labels),
                        len(set(labels.tolist()) - {-1}), int((labels < 0).sum()))
            continue
        if path.is_dir():
            raise InputError(f"{path}: is a folder; add --patches to see the patches of a run folder "
                             f"(its {PATCH_LABELS_FILE})")
        read = io.read_geometry(path)
        if isinstance(read, o3d.geometry.TriangleMesh):
            geometries.append(read)
            continue
        points, normals, colors = read
        cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))
        if colors is not None:
            cloud.colors = o3d.utility.Vector3dVector(colors)
        if normals is not None:
            cloud.normals = o3d.utility.Vector3dVector(normals)
        elif args.normals:
            logger.warning("%s: the points have no normals to draw", path)
        geometries.append(cloud)
    if args.patches and not labelled:
        raise InputError(f"--patches needs a run folder (with {PATCH_LABELS_FILE}) among the FILEs")
    # 3. show
    options = dict(keep_point_colors=True, show_normals=args.normals)
    if screenshot is not None:
        viz.render_png(screenshot, geometries, **options)
        print(f"screenshot: {screenshot}")
    else:
        viz.show(geometries, title=f"geomprior: {' '.join(args.files)}", **options)
    return 0
