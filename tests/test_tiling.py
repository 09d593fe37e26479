"""geomprior.tiling: tiles partition the scan, halos hold the neighbourhood, tiled ≈ untiled, resume gives the same
mesh, run directories refuse other settings, Ray gives the local result and survives a lost worker."""

from __future__ import annotations

import dataclasses
import json
import os
import sys

import numpy as np
import pytest
from scipy.spatial import cKDTree

pytest.importorskip("open3d")

from geomprior import cli, executors, tiling  # noqa: E402
from geomprior.dgp import DGPConfig, reconstruct  # noqa: E402
from geomprior.errors import InputError  # noqa: E402
from geomprior.io import map_points, read_points, write_points  # noqa: E402
from geomprior.metrics import evaluate  # noqa: E402
from geomprior.patches import cover, load_patch_labels  # noqa: E402
from geomprior.synthetic import noisy_scan, terrain_mesh  # noqa: E402

# a small wavy terrain: 9 tiles of real surface at tile size 0.25; tiny networks, a fixed number of steps
CFG = dataclasses.replace(
    DGPConfig.preset("fast"), radius=0.04, max_points=48, min_points=12, widths=(16, 16), eval_every=5,
    refresh_every=10, max_epochs=40, early_stop="none", consistency_epochs=5, poisson_depth=7,
)
TILE = 0.25


@pytest.fixture(scope="module")
def terrain():
    mesh = terrain_mesh(resolution=60)
    return mesh, noisy_scan(mesh, 2400, 0.005, seed=0)


@pytest.fixture(scope="module")
def untiled(terrain):
    return reconstruct(terrain[1], config=CFG, device="cpu", seed=0)


@pytest.fixture(scope="module")
def tiled_run(terrain, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run") / "full"
    rec = tiling.reconstruct_tiled(terrain[1], None, CFG, tile_size=TILE, device="cpu", seed=0, run_dir=run_dir)
    return rec, run_dir


def mesh_arrays(mesh):
    return np.asarray(mesh.vertices), np.asarray(mesh.triangles)


# --------------------------------------------------------------------------------------------------------------------
# tiles


@pytest.mark.parametrize("how", ["grid", "balanced"])
def test_every_point_in_exactly_one_core(terrain, how):
    pts = terrain[1]
    # points on grid planes and on split planes are where a partition could fail: add some exactly there
    tiles, diag, lo = tiling.make_tiles(pts, CFG, **({"tile_size": TILE} if how == "grid" else {"tile_points": 300}))
    t, d = np.argwhere(np.isfinite(tiles.lo))[0]
    on_plane = pts[:30].copy()
    on_plane[:, d] = tiles.lo[t, d]
    allpts = np.concatenate([pts, on_plane])
    hits = np.stack([tiles.in_core(t, allpts) for t in range(len(tiles))])
    assert (hits.sum(0) == 1).all()
    assert len(tiles) >= 8 and hits[:, :len(pts)].sum(1).min() > 0  # no empty cores
    if how == "balanced":
        assert hits[:, :len(pts)].sum(1).max() <= 300


def test_halo_holds_every_point_near_the_core(terrain):
    """Brute force: every point within the halo width of a core point is in the tile; the default halo is
    (padding + 1) patch radii, enough for the members of every patch centred in the core."""
    pts = terrain[1]
    tiles, diag, _ = tiling.make_tiles(pts, CFG, tile_size=TILE)
    radius = CFG.radius * diag
    assert tiles.halo == pytest.approx((CFG.padding + 1) * radius)
    tree = cKDTree(pts)
    for t in range(len(tiles)):
        core = np.flatnonzero(tiles.in_core(t, pts))
        near = np.unique(np.concatenate(tree.query_ball_point(pts[core], tiles.halo)))
        assert tiles.in_tile(t, pts)[near].all()


def test_tile_patches_are_the_scans_patches(terrain):
    """Covered with the scan's diagonal and voxel grid, a tile gets the whole scan's patches in its core."""
    pts = terrain[1]
    tiles, diag, lo = tiling.make_tiles(pts, CFG, tile_size=TILE)
    kw = dict(radius=CFG.radius, padding=CFG.padding, min_points=CFG.min_points, max_points=CFG.max_points)
    whole = cover(pts, **kw)
    for t in (0, 4):
        sel = tiles.in_tile(t, pts)
        part = cover(pts[sel], **kw, diagonal=diag, origin=lo)
        mine = lambda c: {tuple(x) for x in c[tiles.in_core(t, c)]}  # noqa: E731
        assert mine(part.centers) == mine(whole.centers)


# --------------------------------------------------------------------------------------------------------------------
# tiled reconstruction


def test_one_tile_is_the_untiled_reconstruction(terrain, untiled):
    one = tiling.reconstruct_tiled(terrain[1], None, CFG, device="cpu", seed=0)
    assert len(one.tiles) == 1
    assert np.array_equal(one.points, untiled.points) and np.array_equal(one.normals, untiled.normals)
    for a, b in zip(mesh_arrays(one.mesh), mesh_arrays(untiled.mesh)):
        assert np.array_equal(a, b)


def test_tiled_close_to_untiled(terrain, untiled, tiled_run):
    truth, pts = terrain
    rec, _ = tiled_run
    assert len(rec.tiles) >= 8
    assert rec.history["settings"]["tiling"]["tile_size"] == TILE
    # the tiles keep whole patches: the same number of patches as the untiled fit
    assert sum(t["patches"] for t in rec.history["per_tile"]) == untiled.history["patches"]
    a = evaluate(untiled.mesh, truth, n_samples=30_000)["chamfer_l1"]
    b = evaluate(rec.mesh, truth, n_samples=30_000)["chamfer_l1"]
    noisy = cKDTree(np.asarray(truth.vertices)).query(pts)[0].mean()
    assert b < noisy  # it denoises
    assert abs(b - a) / a < 0.05, (a, b)


def test_patch_labels_file(terrain, tiled_run):
    rec, run_dir = tiled_run
    points, labels = load_patch_labels(run_dir)
    assert points.dtype == np.float32 and labels.dtype == np.int64
    assert np.allclose(points, terrain[1], atol=1e-6)
    n_patches = sum(t["patches"] for t in rec.history["per_tile"])
    assert labels.min() >= 0 and labels.max() == n_patches - 1  # every point in a patch, all patches used
    assert np.array_equal(labels, rec.labels)


def test_resume_after_interruption_gives_the_same_mesh(terrain, tiled_run, tmp_path):
    full, _ = tiled_run
    run_dir = tmp_path / "run"

    def interrupt(stage, step, total, info):
        if stage == "tiles" and step == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        tiling.reconstruct_tiled(terrain[1], None, CFG, tile_size=TILE, device="cpu", seed=0, run_dir=run_dir,
                                 progress=interrupt)
    assert len(list((run_dir / "tiles").glob("*.npz"))) == 4
    assert not (run_dir / "patches.npz").exists()
    seen = []
    rec = tiling.reconstruct_tiled(terrain[1], None, CFG, tile_size=TILE, device="cpu", seed=0, run_dir=run_dir,
                                   resume=True, progress=lambda *a: seen.append(a[:3]))
    assert seen[0] == ("tiles", 4, len(full.tiles))  # the finished tiles were not run again
    assert rec.history["run"] == len(full.tiles) - 4
    for a, b in zip(mesh_arrays(rec.mesh), mesh_arrays(full.mesh)):
        assert np.array_equal(a, b)


def test_run_dir_refuses_other_settings(terrain, tiled_run, tmp_path):
    _, run_dir = tiled_run
    pts = terrain[1]
    with pytest.raises(InputError, match="other settings.*seed: 0 -> 1"):
        tiling.reconstruct_tiled(pts, None, CFG, tile_size=TILE, seed=1, run_dir=run_dir, resume=True)
    with pytest.raises(InputError, match="other settings.*input"):
        tiling.reconstruct_tiled(pts[:-1], None, CFG, tile_size=TILE, run_dir=run_dir, resume=True)
    with pytest.raises(InputError, match="other settings.*tile_size"):
        tiling.reconstruct_tiled(pts, None, CFG, tile_size=0.3, run_dir=run_dir, resume=True)
    with pytest.raises(InputError, match="already holds a run; resume it"):
        tiling.reconstruct_tiled(pts, None, CFG, tile_size=TILE, run_dir=run_dir)
    with pytest.raises(InputError, match="fewer than min_points"):
        tiling.reconstruct_tiled(pts, None, CFG, tile_size=0.001)
    bad = pts.copy()
    bad[5, 1] = np.nan
    with pytest.raises(InputError, match="1 points have NaN"):
        tiling.reconstruct_tiled(bad, None, CFG, tile_size=TILE)
    with pytest.raises(InputError, match="nothing to resume"):
        tiling.reconstruct_tiled(pts, None, CFG, tile_size=TILE, run_dir=tmp_path / "new", resume=True)


def test_flipped_tile_normals_are_made_consistent(terrain, monkeypatch):
    """Tiles orient their estimated normals on their own; a tile that chose the other side is flipped back."""
    pts = terrain[1]
    cfg = dataclasses.replace(CFG, max_epochs=0, consistency=False)
    real = tiling.fit_dense

    def flip_tile_three(points, normals, config, **kw):
        out = real(points, normals, config, **kw)
        if kw["seed"] == tiling.tile_seed(0, 3, 9):
            out.normals, out.input_normals = -out.normals, -out.input_normals
        return out

    monkeypatch.setattr(tiling, "fit_dense", flip_tile_three)
    rec = tiling.reconstruct_tiled(pts, None, cfg, tile_size=TILE, device="cpu", seed=0)
    assert len(rec.tiles) == 9 and rec.history["flipped"] >= 1
    up = np.sign(np.median(rec.normals[:, 2]))
    assert (rec.normals[:, 2] * up > 0).mean() > 0.97


# --------------------------------------------------------------------------------------------------------------------
# Ray


@pytest.fixture(scope="module")
def ray_run(terrain, tmp_path_factory):
    """A tiled run on a local Ray of 2 CPUs in which the worker running tile 2 dies once (mid-task)."""
    ray = pytest.importorskip("ray")
    marker = tmp_path_factory.mktemp("crash") / "crashed"
    old = os.environ.get(executors.CRASH_ONCE_ENV)
    os.environ[executors.CRASH_ONCE_ENV] = f"2:{marker}"
    ray.init(num_cpus=2, include_dashboard=False, runtime_env=executors.runtime_env(), logging_level="ERROR")
    try:
        ex = executors.RayExecutor()
        seen = []
        rec = tiling.reconstruct_tiled(terrain[1], None, CFG, tile_size=TILE, device="cpu", seed=0, executor=ex,
                                       progress=lambda *a: seen.append(a))
        ex.close()
    finally:
        ray.shutdown()
        if old is None:
            os.environ.pop(executors.CRASH_ONCE_ENV, None)
        else:
            os.environ[executors.CRASH_ONCE_ENV] = old
    return rec, seen, marker


def test_ray_gives_the_local_result(tiled_run, ray_run):
    local, _ = tiled_run
    rec, _, _ = ray_run
    assert np.array_equal(rec.points, local.points) and np.array_equal(rec.normals, local.normals)
    assert rec.worker_peak_rss > 0


def test_ray_retries_a_lost_worker(tiled_run, ray_run):
    rec, seen, marker = ray_run
    assert marker.exists()  # the worker of tile 2 did die
    assert rec.history["retried"] >= 1
    assert seen[-3][:3] == ("tiles", 9, 9) and seen[-3][3]["retried"] >= 1
    for a, b in zip(mesh_arrays(rec.mesh), mesh_arrays(tiled_run[0].mesh)):
        assert np.array_equal(a, b)


def test_missing_ray_says_how_to_install(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(InputError, match=r"pip install 'geomprior\[distributed\]'"):
        executors.make_executor("ray")
    path = tmp_path / "scan.ply"
    write_points(path, np.random.default_rng(0).random((100, 3)))
    assert cli.main(["reconstruct", str(path), "-o", str(tmp_path / "m.ply"), "--executor", "ray"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "geomprior[distributed]" in err
    assert os.listdir(tmp_path) == ["scan.ply"]


# --------------------------------------------------------------------------------------------------------------------
# reading large files, command line


def test_map_points_matches_read_points(tmp_path):
    rng = np.random.default_rng(0)
    pts, nrm = rng.normal(size=(500, 3)), rng.normal(size=(500, 3))
    write_points(tmp_path / "a.ply", pts, nrm)
    mp, mn, _ = map_points(tmp_path / "a.ply")
    rp, rn = read_points(tmp_path / "a.ply")
    base = mp
    while base is not None and not isinstance(base, np.memmap):
        base = base.base
    assert isinstance(base, np.memmap) and not mp.flags.writeable  # a read-only view of the file, not a copy
    assert np.array_equal(np.asarray(mp, float), rp) and np.allclose(mn / np.linalg.norm(mn, axis=1)[:, None], rn)
    # float32 with an extra property between the normals and the end, written by hand
    rec = np.zeros(4, dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("intensity", "<u1")])
    for i, k in enumerate("xyz"):
        rec[k] = np.arange(4) + i
    header = ("ply\nformat binary_little_endian 1.0\nelement vertex 4\nproperty float x\nproperty float y\n"
              "property float z\nproperty uchar intensity\nend_header\n").encode()
    (tmp_path / "b.ply").write_bytes(header + rec.tobytes())
    mp, mn, _ = map_points(tmp_path / "b.ply")
    assert mn is None and np.array_equal(mp, read_points(tmp_path / "b.ply")[0])
    (tmp_path / "c.ply").write_bytes(header + rec.tobytes()[:-5])
    with pytest.raises(InputError, match="truncated"):
        map_points(tmp_path / "c.ply")
    rec["y"][1] = np.nan
    (tmp_path / "d.ply").write_bytes(header + rec.tobytes())
    with pytest.raises(InputError, match="1 of 4 points have NaN"):
        map_points(tmp_path / "d.ply")


@pytest.mark.parametrize("args, message", [
    (["--address", "ray://x:1"], "--address needs --executor ray"),
    (["--resume"], "--resume needs --run-dir"),
    (["--tile-size", "0.2", "--tile-points", "100"], "not allowed with argument"),
    (["--tile-size", "0"], "must be a positive number"),
    (["--run-dir", "RUN", "--resume"], "nothing to resume"),
    (["--tile-size", "0.5", "--plot", "PLOT"], "--plot shows one fit"),
])
def test_cli_bad_tiling_options(tmp_path, capsys, args, message):
    path = tmp_path / "scan.ply"
    write_points(path, np.random.default_rng(0).random((100, 3)))
    args = [a.replace("RUN", str(tmp_path / "run")).replace("PLOT", str(tmp_path / "p.png")) for a in args]
    assert cli.main(["reconstruct", str(path), "-o", str(tmp_path / "m.ply"), *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("geomprior: error: ") and message in err, err
    assert not (tmp_path / "m.ply").exists()


def test_cli_interrupt_says_how_to_resume(tmp_path, capsys, monkeypatch):
    path = tmp_path / "scan.ply"
    write_points(path, np.random.default_rng(0).random((100, 3)))

    def interrupted(*args, run_dir, **kwargs):
        (tmp_path / "run" / "tiles").mkdir(parents=True)
        (tmp_path / "run" / "tiles" / "00000.npz").write_bytes(b"")
        raise KeyboardInterrupt

    monkeypatch.setattr(tiling, "reconstruct_tiled", interrupted)
    code = cli.main(["reconstruct", str(path), "-o", str(tmp_path / "m.ply"), "--tile-size", "0.5", "--run-dir",
                     str(tmp_path / "run")])
    assert code == 130
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "1 finished tiles are saved in" in err
    assert err.endswith(f"--tile-size 0.5 --run-dir {tmp_path / 'run'} --resume")
    assert not (tmp_path / "m.ply").exists()


def test_cli_tiled_run(tmp_path, capsys, terrain):
    path = tmp_path / "scan.ply"
    write_points(path, terrain[1][:800])
    code = cli.main(["reconstruct", str(path), "-o", str(tmp_path / "m.ply"), "--preset", "fast", "--radius", "0.08",
                     "--max-epochs", "5", "--no-consistency", "--tile-points", "400", "--run-dir",
                     str(tmp_path / "run"), "--history", str(tmp_path / "h.json"), "--device", "cpu"])
    assert code == 0
    out = capsys.readouterr().out
    assert "tiles" in out and "peak memory:" in out
    history = json.loads((tmp_path / "h.json").read_text())
    assert history["tiles"] >= 2 and (tmp_path / "run" / "patches.npz").is_file()


def test_tiled_runs_set_stray_clusters_aside_and_report_like_untiled_ones(terrain, tiled_run):
    rng = np.random.default_rng(0)
    _, points = terrain
    far = points.max(0) + [3.0, 0, 0]
    strays = far + rng.normal(scale=0.005, size=(20, 3))  # under 1 % of 2,420 points, far off
    rec = tiling.reconstruct_tiled(np.concatenate([points, strays]), None, CFG, tile_size=TILE, device="cpu", seed=0)
    assert rec.history["quality"]["set_aside"] == 20
    assert np.asarray(rec.mesh.vertices)[:, 0].max() < points[:, 0].max() + 0.5  # nothing out to the strays
    assert (rec.labels[-20:] == -1).all() and rec.labels.shape == (len(points) + 20,)
    # the same patches as without the strays (same extent, same tiles), the same report
    base = tiled_run[0]
    assert len(rec.points) == len(base.points)
    assert rec.history["quality"]["coverage"] == pytest.approx(base.history["quality"]["coverage"], abs=0.01)
    assert not rec.history["mesh"][0]["closed"] and base.history["quality"]["boundary_edges"] > 0  # a terrain: open
