"""Shared by the scripts: the noisy scans of the acceptance tests, made from ../shared/data/shapes."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHAPES = REPO.parent / "shared" / "data" / "shapes"


def machine() -> str:
    """One line naming this machine (CPU model, cores, vector units) and the torch build."""
    import os
    import platform

    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from geomprior.device import training_dtype

    # two machines of one model name may differ in what decides the fits' speed: their widest vector unit and
    # whether training steps run in bfloat16 (precision "auto")
    units = torch.backends.cpu.get_cpu_capability()
    if training_dtype("auto", torch.device("cpu")) == torch.bfloat16:
        units += " + bfloat16"
    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ", no GPU"
    return f"{cpu}, {os.cpu_count()} cores ({units}){gpu}, torch {torch.__version__}"


def scan(name: str, *, n_points: int = 20_000, noise: float = 0.005, seed: int = 0):
    """(true mesh, noisy points (N, 3)) for shape ``name`` — no normals.

    name : a mesh of ../shared/data/shapes (bunny00, fandisk) or a synthetic shape (torus, sphere:
           geomprior.synthetic)
    noise: Gaussian noise standard deviation, fraction of the bounding-box diagonal
    """
    from geomprior import synthetic
    from geomprior.io import read_mesh

    made = {"torus": synthetic.torus_mesh, "sphere": synthetic.sphere_mesh}
    mesh = made[name]() if name in made else read_mesh(SHAPES / f"{name}.off")
    return mesh, synthetic.noisy_scan(mesh, n_points, noise, seed)
