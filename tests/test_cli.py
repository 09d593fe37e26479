"""geomprior command line: one-line errors, no partial outputs, eval, and reconstruct with a fake core."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

o3d = pytest.importorskip("open3d")

from geomprior import cli  # noqa: E402
from geomprior.errors import InputError  # noqa: E402
from geomprior.io import read_mesh, read_points, write_mesh, write_points  # noqa: E402
from geomprior.metrics import scan_quality  # noqa: E402
from geomprior.synthetic import noisy_scan, sphere_mesh  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
can_render = bool(os.environ.get("DISPLAY")) or shutil.which("Xvfb") is not None


def run_cli(*args, cwd):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return subprocess.run([sys.executable, "-m", "geomprior", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def assert_one_line_error(proc):
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("geomprior: error: ")


@pytest.fixture
def scan(tmp_path):
    """A small valid input scan in tmp_path."""
    path = tmp_path / "scan.ply"
    write_points(path, noisy_scan(sphere_mesh(resolution=10), 200, 0.005, 0))
    return path


def _bad_inputs(tmp_path):
    (tmp_path / "empty.ply").write_bytes(b"")
    (tmp_path / "garbage.ply").write_bytes(b"\x89\x00\xffgarbage\x01\x02" * 50)
    (tmp_path / "points.abc").write_text("1 2 3\n")
    (tmp_path / "nan.xyz").write_text("0 0 0\n1 2 nan\n1 1 1\n")


@pytest.mark.parametrize(
    "args",
    [
        ["reconstruct", "missing.ply", "-o", "out.ply"],
        ["reconstruct", "empty.ply", "-o", "out.ply"],
        ["reconstruct", "garbage.ply", "-o", "out.ply"],
        ["reconstruct", "points.abc", "-o", "out.ply"],
        ["reconstruct", "nan.xyz", "-o", "out.ply"],
        ["reconstruct", "scan.ply", "-o", "no_such_dir/out.ply"],
        ["reconstruct", "scan.ply", "-o", "out.stl"],
        ["reconstruct", "scan.ply", "-o", "out.ply", "--preset", "bogus"],
        ["reconstruct", "scan.ply", "-o", "out.ply", "--points", "dense.xyz"],
        ["reconstruct", "scan.ply", "-o", "out.ply", "--history", "no_such_dir/run.json"],
        ["reconstruct", "scan.ply", "-o", "scan.ply"],
        ["reconstruct", "scan.ply", "-o", "out.ply", "--radius", "-1"],
        ["reconstruct", "scan.ply", "-o", "out.ply", "--thin-parts", "maybe"],
        ["reconstruct", "scan.ply", "-o", "out.ply", "--edge-filter", "-1"],
        ["reconstruct", "scan.ply", "-o", "out.ply", "--fidelity", "-0.5"],
        ["reconstruct", "scan.ply", "-o", "out.ply", "--taubin", "1.5"],
        ["eval", "missing.ply", "scan.ply"],
    ],
    ids=["missing", "empty", "garbage", "unknown-ext", "nan", "unwritable-output", "output-ext",
         "unknown-preset", "points-ext", "unwritable-history", "output-is-input", "bad-radius",
         "bad-thin-parts", "bad-edge-filter", "bad-fidelity", "bad-taubin", "eval-missing"],
)
def test_reconstruct_bad_input_is_one_line(tmp_path, scan, args):
    _bad_inputs(tmp_path)
    before = sorted(os.listdir(tmp_path))
    scan_bytes = scan.read_bytes()
    proc = run_cli(*args, cwd=tmp_path)
    assert_one_line_error(proc)
    assert proc.stdout == ""
    assert sorted(os.listdir(tmp_path)) == before  # no output, no temporary file
    assert scan.read_bytes() == scan_bytes


def test_device_cuda_without_cuda(tmp_path, scan, capsys):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    assert cli.main(["reconstruct", str(scan), "-o", str(tmp_path / "out.ply"), "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("geomprior: error: ") and "cuda" in err[0].lower()
    assert not (tmp_path / "out.ply").exists()


def test_eval_mesh_against_itself_json(tmp_path):
    write_mesh(tmp_path / "m.ply", sphere_mesh(resolution=30))
    proc = run_cli("eval", "m.ply", "m.ply", "--json", "--samples", "20000", "--seed", "1", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert set(result) == {"chamfer_l1", "hausdorff", "normal_consistency", "fscore"}
    assert result["chamfer_l1"] < 0.005
    assert result["normal_consistency"] > 0.999
    assert result["fscore"] > 0.99  # independent samplings: only the sampling gap remains


def test_eval_table(tmp_path, capsys):
    write_mesh(tmp_path / "m.off", sphere_mesh(resolution=20))
    assert cli.main(["eval", str(tmp_path / "m.off"), str(tmp_path / "m.off"), "--samples", "3000"]) == 0
    out = capsys.readouterr().out
    for key in ("chamfer_l1", "hausdorff", "normal_consistency", "fscore", "diagonal"):
        assert key in out


# --------------------------------------------------------------------------------------------
# reconstruct with a fake core (geomprior.dgp replaced), in process


@dataclasses.dataclass(frozen=True)
class FakeConfig:
    radius: float = 0.05
    adapt_radius: bool = True
    max_epochs: int = 400
    consistency: bool = True
    drop_outliers: bool = True
    thin_parts: object = "auto"
    outward: object = False
    mesh_points: str = "fitted"
    edge_filter: int = 5
    fidelity: float = 1.0
    taubin: int = 2
    loss: str = "assignment"
    matching: str = "exact"
    precision: str = "auto"
    small_clusters: str = "drop"
    closed: object = "auto"
    name: str = "default"

    @classmethod
    def preset(cls, name):
        return cls(name=name)


def _install_fake_core(monkeypatch, reconstruct):
    """Replace geomprior.dgp with a module holding FakeConfig and the given reconstruct."""
    module = types.ModuleType("geomprior.dgp")
    module.DGPConfig = FakeConfig
    module.reconstruct = reconstruct
    monkeypatch.setitem(sys.modules, "geomprior.dgp", module)


@pytest.fixture
def fake_dgp(monkeypatch):
    calls = {}

    def reconstruct(points, normals=None, config=None, *, colors=None, device="auto", seed=0, progress=None):
        calls.update(points=points, normals=normals, config=config, colors=colors, device=device, seed=seed)
        for step in range(3):
            progress("local fit", step + 1, 3, {"loss": 0.5 / (step + 1), "active": 10.0})
        progress("consistency", 1, 1, {"loss": 0.01})
        mesh = sphere_mesh(resolution=12)
        pts = np.asarray(mesh.vertices)
        quality = {**scan_quality(mesh, points, spacing=0.05), "set_aside": 7}
        return types.SimpleNamespace(mesh=mesh, points=pts, normals=pts.copy(),
                                     history={"stop": {"step": 3, "reason": "fake"}, "loss": [0.5, 0.25],
                                              "quality": quality},
                                     summary="fit stopped at step 3 (fake)")

    _install_fake_core(monkeypatch, reconstruct)
    return calls


def test_reconstruct_writes_all_outputs(tmp_path, scan, fake_dgp, capsys):
    out = tmp_path / "mesh.obj"
    args = ["reconstruct", str(scan), "-o", str(out), "--points", str(tmp_path / "dense.ply"),
            "--history", str(tmp_path / "run.json"), "--preset", "fast", "--device", "cpu",
            "--seed", "5", "--radius", "0.1", "--max-epochs", "7", "--no-consistency", "--keep-outliers",
            "--thin-parts"]
    if can_render:
        args += ["--render", str(tmp_path / "mesh.png")]
    assert cli.main(args) == 0
    cfg = fake_dgp["config"]
    assert (cfg.name, cfg.radius, cfg.adapt_radius, cfg.max_epochs, cfg.consistency, cfg.drop_outliers,
            cfg.thin_parts) == ("fast", 0.1, False, 7, False, False, True)  # a radius given is used as it is
    assert fake_dgp["device"] == "cpu" and fake_dgp["seed"] == 5
    assert fake_dgp["points"].shape == (200, 3) and fake_dgp["normals"] is None
    assert len(read_mesh(out).triangles) > 0
    p, n = read_points(tmp_path / "dense.ply")
    assert p.shape == n.shape
    assert json.loads((tmp_path / "run.json").read_text())["stop"]["reason"] == "fake"
    expected = {"scan.ply", "mesh.obj", "dense.ply", "run.json"} | ({"mesh.png"} if can_render else set())
    assert set(os.listdir(tmp_path)) == expected
    out_text = capsys.readouterr().out
    assert "fit stopped at step 3 (fake)" in out_text and str(out) in out_text
    # the quality report: coverage, invented surface, points set aside, then the mesh's topology
    assert "quality: coverage " in out_text and "7 points set aside" in out_text
    assert "topology: 1 component, edge-manifold, watertight, Euler characteristic 2" in out_text
    assert cfg.small_clusters == "drop" and cfg.closed == "auto"


@pytest.mark.parametrize("flags, small, closed", [(["--keep-clusters"], "keep", "auto"), (["--closed"], "drop", True),
                                                  (["--open"], "drop", False)])
def test_reconstruct_cluster_and_shape_flags(tmp_path, scan, fake_dgp, flags, small, closed):
    assert cli.main(["reconstruct", str(scan), "-o", str(tmp_path / "m.ply"), *flags]) == 0
    assert (fake_dgp["config"].small_clusters, fake_dgp["config"].closed) == (small, closed)


def test_closed_and_open_exclude_each_other(tmp_path, scan, fake_dgp, capsys):
    assert cli.main(["reconstruct", str(scan), "-o", str(tmp_path / "m.ply"), "--closed", "--open"]) == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_progress_without_a_terminal_prints_plain_lines(tmp_path, scan, fake_dgp, capsys):
    # stderr is captured (not a terminal): each stage ends with one line, no tqdm bar ("\r")
    assert cli.main(["reconstruct", str(scan), "-o", str(tmp_path / "m.ply")]) == 0
    err = capsys.readouterr().err
    assert "\r" not in err
    lines = [line for line in err.splitlines() if "it/s" in line]
    assert len(lines) == 2 and "local fit" in lines[0] and "3/3" in lines[0] and "loss=0.1667" in lines[0]
    assert "consistency" in lines[1] and "1/1" in lines[1]
    # a long stage also prints every interval: 30 steps one second apart, every 10 s -> 3 lines + the last
    clock = [0.0]
    progress = cli._Progress(interval=10, clock=lambda: clock[0])
    for step in range(1, 31):
        clock[0] = float(step)
        progress("fit", step, 40, {"loss": 1.0 / step})
    progress.close()
    steps = [line.split()[3] for line in capsys.readouterr().err.splitlines()]
    assert steps == ["11/40", "21/40", "30/40"]


def test_reconstruct_defaults_keep_preset(tmp_path, scan, fake_dgp):
    assert cli.main(["reconstruct", str(scan), "-o", str(tmp_path / "m.ply")]) == 0
    assert fake_dgp["config"] == FakeConfig(name="default")
    assert fake_dgp["device"] == "auto" and fake_dgp["seed"] == 0


@pytest.mark.parametrize("name", ["thin_parts", "outward"])
@pytest.mark.parametrize("words, value", [([], True), (["on"], True), (["off"], False), (["auto"], "auto")])
def test_normal_flags(tmp_path, scan, fake_dgp, name, words, value):
    flag = "--" + name.replace("_", "-")
    assert cli.main(["reconstruct", str(scan), "-o", str(tmp_path / "m.ply"), flag, *words]) == 0
    assert getattr(fake_dgp["config"], name) == value


@pytest.mark.parametrize("flag, value", [("--mesh-points", "fitted"), ("--mesh-points", "dense"),
                                         ("--loss", "sinkhorn"), ("--matching", "sinkhorn"),
                                         ("--precision", "float32"), ("--precision", "bfloat16")])
def test_choice_flags(tmp_path, scan, fake_dgp, flag, value):
    assert cli.main(["reconstruct", str(scan), "-o", str(tmp_path / "m.ply"), flag, value]) == 0
    assert getattr(fake_dgp["config"], flag[2:].replace("-", "_")) == value


@pytest.mark.parametrize(("flag", "value"), [("--edge-filter", 0), ("--edge-filter", 3), ("--fidelity", 0.0),
                                             ("--fidelity", 0.25), ("--taubin", 0), ("--taubin", 4)])
def test_mesh_step_flags(tmp_path, scan, fake_dgp, flag, value):
    assert cli.main(["reconstruct", str(scan), "-o", str(tmp_path / "m.ply"), flag, str(value)]) == 0
    assert getattr(fake_dgp["config"], flag[2:].replace("-", "_")) == value


def test_failure_while_writing_publishes_nothing(tmp_path, scan, fake_dgp, monkeypatch, capsys):
    import geomprior.viz

    def broken_render(*args, **kwargs):
        raise InputError("cannot render: broken on purpose")

    monkeypatch.setattr(geomprior.viz, "render_png", broken_render)
    monkeypatch.setattr(geomprior.viz, "check_render_available", lambda: None)
    code = cli.main(["reconstruct", str(scan), "-o", str(tmp_path / "m.ply"), "--points",
                     str(tmp_path / "d.ply"), "--history", str(tmp_path / "h.json"),
                     "--render", str(tmp_path / "m.png")])
    assert code == 2
    err = capsys.readouterr().err  # the fit's progress lines, then the error
    assert err.strip().splitlines()[-1] == "geomprior: error: cannot render: broken on purpose"
    assert "Traceback" not in err and os.listdir(tmp_path) == ["scan.ply"]


def test_core_input_error_is_one_line(tmp_path, scan, monkeypatch, capsys):
    def reconstruct(*args, **kwargs):
        raise InputError("need at least 16 points\nfor one patch")

    _install_fake_core(monkeypatch, reconstruct)
    assert cli.main(["reconstruct", str(scan), "-o", str(tmp_path / "m.ply")]) == 2
    err = capsys.readouterr().err
    assert err == "geomprior: error: need at least 16 points for one patch\n"
    assert os.listdir(tmp_path) == ["scan.ply"]


def test_keyboard_interrupt(tmp_path, scan, monkeypatch, capsys):
    def reconstruct(*args, **kwargs):
        raise KeyboardInterrupt

    _install_fake_core(monkeypatch, reconstruct)
    assert cli.main(["reconstruct", str(scan), "-o", str(tmp_path / "m.ply")]) == 130
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert os.listdir(tmp_path) == ["scan.ply"]


# --------------------------------------------------------------------------------------------
# errors only the real core detects


@pytest.mark.parametrize("case", ["too-few-points", "identical-points", "points-on-a-line", "stray-clusters-only"])
def test_core_detected_bad_input(tmp_path, case, capsys):
    rng = np.random.default_rng(0)
    if case == "too-few-points":
        pts = rng.normal(size=(5, 3))
    elif case == "identical-points":
        pts = np.ones((500, 3))
    elif case == "points-on-a-line":
        pts = np.c_[np.linspace(0, 1, 500), np.zeros(500), np.zeros(500)]
    else:  # specks of 10 points far apart: nothing can carry a patch
        pts = np.concatenate([c + rng.normal(scale=0.01, size=(10, 3)) for c in rng.uniform(size=(20, 3)) * 100])
    np.savetxt(tmp_path / "in.xyz", pts)
    # in process (torch is imported once); the subprocess cases above cover the exit path
    code = cli.main(["reconstruct", str(tmp_path / "in.xyz"), "-o", str(tmp_path / "out.ply"),
                     "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and err.startswith("geomprior: error: ")
    assert os.listdir(tmp_path) == ["in.xyz"]


def test_las_without_laspy_is_one_line(tmp_path, monkeypatch, capsys):
    import builtins

    (tmp_path / "scan.las").write_bytes(b"LASF" + bytes(400))
    real_import = builtins.__import__
    monkeypatch.setattr(builtins, "__import__", lambda name, *a, **k: (_ for _ in ()).throw(ImportError(name))
                        if name.startswith("laspy") else real_import(name, *a, **k))
    assert cli.main(["reconstruct", str(tmp_path / "scan.las"), "-o", str(tmp_path / "m.ply")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"geomprior: error: {tmp_path / 'scan.las'}: reading LAS/LAZ files needs laspy: "
                   "pip install 'geomprior[lidar]'"]


def test_colours_of_the_scan_reach_the_core(tmp_path, fake_dgp):
    import open3d as o3d

    pts = noisy_scan(sphere_mesh(resolution=20), 200, 0.01, seed=0)
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(pts))
    cloud.colors = o3d.utility.Vector3dVector(np.tile([1.0, 0.5, 0.0], (200, 1)))
    o3d.io.write_point_cloud(str(tmp_path / "coloured.ply"), cloud)
    assert cli.main(["reconstruct", str(tmp_path / "coloured.ply"), "-o", str(tmp_path / "m.ply")]) == 0
    np.testing.assert_allclose(fake_dgp["colors"], np.tile([1.0, 0.5, 0.0], (200, 1)), atol=1 / 255)


def test_publish_writes_all_outputs_or_none(tmp_path):
    from geomprior.cli.common import publish

    outputs = {"a": tmp_path / "a.txt", "b": tmp_path / "b.txt"}
    with pytest.raises(RuntimeError, match="disk full"):
        publish(outputs, {"a": lambda p: Path(p).write_text("a"),
                          "b": lambda p: (_ for _ in ()).throw(RuntimeError("disk full"))})
    assert list(tmp_path.iterdir()) == []  # the written one is not published, no temporary file is left
    publish(outputs, {"a": lambda p: Path(p).write_text("a"), "b": lambda p: Path(p).write_text("b")})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.txt"] and outputs["b"].read_text() == "b"
