"""Speed of the core: one batched local-fit epoch against a per-patch Python loop of the same maths.

Same patches (the bunny scan of the acceptance tests, default preset), same MLPs (the loop holds nn.Sequential
copies of the batched weights), same loss (MSE to exactly matched points), same Adam; the correspondence refresh
(one exact matching per patch) is timed separately and amortised over ``refresh_every`` epochs in the totals.

    python scripts/bench_dgp.py [--steps 10] [--device cpu|cuda] [--original-patches 24] [--out out/]
"""

from __future__ import annotations

import argparse
import os
import time

import torch
from _scans import machine, scan
from scipy.optimize import linear_sum_assignment

from geomprior.dgp import PLANAR, DGPConfig, _PatchSurfaces
from geomprior.io import write_json
from geomprior.patches import cover
from geomprior.transport import assign
from geomprior.uv import blue_noise


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def setup(cfg: DGPConfig, device, n_patches: int | None):
    _, noisy = scan("bunny00")
    patches = cover(noisy, radius=cfg.radius, padding=cfg.padding, min_points=cfg.min_points,
                    max_points=cfg.max_points)
    sel = slice(0, n_patches)
    target = torch.from_numpy(patches.to_local(noisy)[sel]).float().to(device)
    mask = torch.from_numpy(patches.mask[sel]).to(device)
    uv = blue_noise(patches.counts[sel], width=mask.shape[1]).to(device)
    surf = _PatchSurfaces(len(target), cfg.widths, True, torch.Generator().manual_seed(0), device)
    return surf, uv, target, mask


def batched(surf, uv, target, mask, steps, device):
    opt = torch.optim.Adam(surf.mlp.parameters(), lr=1e-3)
    w = mask.float() / mask.sum(1, keepdim=True)
    _sync(device)
    t = time.perf_counter()
    with torch.no_grad():
        idx = assign(surf(uv), target, mask)
    _sync(device)
    t_match = time.perf_counter() - t
    tgt = torch.gather(target, 1, idx[..., None].expand(-1, -1, 3))
    t = time.perf_counter()
    for _ in range(steps):
        opt.zero_grad()
        loss = (((surf(uv) - tgt) ** 2).sum(-1) * w).sum()
        loss.backward()
        opt.step()
    _sync(device)
    return (time.perf_counter() - t) / steps, t_match


def loop(surf, uv, target, mask, steps, device):
    nets = [surf.mlp.network(p).to(device) for p in range(surf.mlp.n)]
    opts = [torch.optim.Adam(n.parameters(), lr=1e-3) for n in nets]
    counts = mask.sum(1).tolist()
    uvs = [uv[p, :c] for p, c in enumerate(counts)]
    pts = [target[p, :c] for p, c in enumerate(counts)]

    def phi(p):
        u = uvs[p]
        return nets[p](u) + torch.cat([PLANAR * (2 * u - 1), torch.zeros_like(u[:, :1])], -1)

    _sync(device)
    t = time.perf_counter()
    tgts = []
    for p in range(len(nets)):
        with torch.no_grad():
            cost = torch.cdist(phi(p), pts[p]) ** 2
        _, cols = linear_sum_assignment(cost.cpu().numpy())
        tgts.append(pts[p][torch.from_numpy(cols).to(device)])
    _sync(device)
    t_match = time.perf_counter() - t
    t = time.perf_counter()
    for _ in range(steps):
        for p in range(len(nets)):
            opts[p].zero_grad()
            loss = ((phi(p) - tgts[p]) ** 2).sum(-1).mean()
            loss.backward()
            opts[p].step()
    _sync(device)
    return (time.perf_counter() - t) / steps, t_match


def compare(label, cfg, device, steps, n_patches=None) -> dict:
    surf, uv, target, mask = setup(cfg, device, n_patches)
    tb, mb = batched(surf, uv, target, mask, steps, device)
    surf, uv, target, mask = setup(cfg, device, n_patches)
    tl, ml = loop(surf, uv, target, mask, steps, device)
    k = cfg.refresh_every
    row = {"label": label, "patches": int(mask.shape[0]), "points_per_patch": float(mask.sum(1).float().mean()),
           "widths": list(cfg.widths), "batched_step_s": tb, "loop_step_s": tl, "batched_match_s": mb,
           "loop_match_s": ml, "step_speedup": tl / tb,
           "epoch_speedup": (tl + ml / k) / (tb + mb / k), "refresh_every": k}
    print(f"| {label} | {row['patches']} | {row['points_per_patch']:.0f} | {row['widths']} | {tb * 1e3:.1f} | "
          f"{tl * 1e3:.1f} | {row['step_speedup']:.1f}× | {mb:.2f} / {ml:.2f} | {row['epoch_speedup']:.1f}× |")
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--original-patches", type=int, default=24,
                        help="patches for the original-width comparison (it is ~50× heavier per patch)")
    parser.add_argument("--out", default="out")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.set_flush_denormal(True)
    print(f"machine: {machine()}; device {device}")
    print("| setting | patches | points/patch | widths | batched step ms | loop step ms | step speed-up | "
          "matching s batched / loop | epoch speed-up (matching amortised) |")
    print("|---|---|---|---|---|---|---|---|---|")
    cfg = DGPConfig.preset("default")
    rows = [compare("default preset", cfg, device, args.steps)]
    orig = DGPConfig(widths=(128, 256, 512, 512))
    rows.append(compare("original MLP width", orig, device, max(2, args.steps // 5), args.original_patches))
    os.makedirs(args.out, exist_ok=True)
    write_json(os.path.join(args.out, "bench_dgp.json"), {"machine": machine(), "device": str(device), "rows": rows})


if __name__ == "__main__":
    main()
