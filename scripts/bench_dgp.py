"""Speed of the core: one batched local-fit epoch against a per-patch Python loop of the same maths.

Same patches (the bunny scan of the acceptance tests, default preset), same MLPs (the loop holds nn.Sequential
copies of the batched weights), same loss (MSE to exactly matched points), same Adam; the correspondence refresh
(one exact matching per patch) is timed separately and amortised over ``refresh_every`` epochs in the totals.
Also the original DGP width (2→128→256→512→512→3), and variants of the batched step: ``torch.compile`` (on/off)
and, on a GPU, bfloat16 autocast.

    python scripts/bench_dgp.py [--steps 10] [--device cpu|cuda] [--original-patches 24] [--variants]
                                [--out benchmarks/]
    python scripts/bench_dgp.py --quick        # 12 patches, 2 steps: checks that it runs (a test)
"""

from __future__ import annotations

import argparse
import os
import time

import torch
from _bench import header
from _scans import machine, scan
from scipy.optimize import linear_sum_assignment

from geomprior.dgp import PLANAR, DGPConfig, _PatchSurfaces
from geomprior.fit import flush_denormal
from geomprior.io import write_json
from geomprior.patches import cover
from geomprior.synthetic import torus_scan
from geomprior.transport import assign
from geomprior.uv import blue_noise


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def setup(noisy, cfg: DGPConfig, device, n_patches: int | None):
    patches = cover(noisy, radius=cfg.radius, padding=cfg.padding, min_points=cfg.min_points,
                    max_points=cfg.max_points)
    sel = slice(0, n_patches)
    target = torch.from_numpy(patches.to_local(noisy)[sel]).float().to(device)
    mask = torch.from_numpy(patches.mask[sel]).to(device)
    uv = blue_noise(patches.counts[sel], width=mask.shape[1]).to(device)
    surf = _PatchSurfaces(len(target), cfg.widths, True, torch.Generator().manual_seed(0), device)
    return surf, uv, target, mask


@flush_denormal()  # as in geomprior.fit.fit
def batched(surf, uv, target, mask, steps, device, *, compiled=False, bf16=False):
    opt = torch.optim.Adam(surf.mlp.parameters(), lr=1e-3)
    w = mask.float() / mask.sum(1, keepdim=True)
    _sync(device)
    t = time.perf_counter()
    with torch.no_grad():
        idx = assign(surf(uv), target, mask)
    _sync(device)
    t_match = time.perf_counter() - t
    tgt = torch.gather(target, 1, idx[..., None].expand(-1, -1, 3))

    def loss_fn():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            out = surf(uv)
        return (((out.float() - tgt) ** 2).sum(-1) * w).sum()

    if compiled:
        loss_fn = torch.compile(loss_fn)
    for _ in range(2 if compiled else 1):  # compile / warm up (lazy CUDA and library set-up) outside the timing
        opt.zero_grad()
        loss_fn().backward()
    _sync(device)
    t = time.perf_counter()
    for _ in range(steps):
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        opt.step()
    _sync(device)
    return (time.perf_counter() - t) / steps, t_match


@flush_denormal()
def loop(surf, uv, target, mask, steps, device):
    nets = [surf.mlp.network(p).to(device) for p in range(surf.mlp.n)]
    opts = [torch.optim.Adam(n.parameters(), lr=1e-3) for n in nets]
    counts = mask.sum(1).tolist()
    uvs = [uv[p, :c] for p, c in enumerate(counts)]
    pts = [target[p, :c] for p, c in enumerate(counts)]

    def phi(p):
        u = uvs[p]
        return nets[p](u) + torch.cat([PLANAR * (2 * u - 1), torch.zeros_like(u[:, :1])], -1)

    with torch.no_grad():  # warm up outside the timing, as the batched path does
        phi(0)
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


def variant(noisy, label, cfg, device, steps, n_patches=None, **kw) -> dict:
    """The batched step alone with a variant (compiled / bf16) against the plain batched step."""
    plain, _ = batched(*setup(noisy, cfg, device, n_patches), steps, device)
    try:
        tv, _ = batched(*setup(noisy, cfg, device, n_patches), steps, device, **kw)
    except Exception as e:  # e.g. no C++ compiler for torch.compile on this machine
        line = f"| {label} | failed: {type(e).__name__}: {str(e).splitlines()[0][:80]} | | | | | | | |"
        print(line, flush=True)
        return {"label": label, "failed": f"{type(e).__name__}: {e}"[:300], "line": line}
    line = (f"| {label} | | | {list(cfg.widths)} | {tv * 1e3:.1f} | (plain batched {plain * 1e3:.1f}) | "
            f"{plain / tv:.2f}× vs plain | | |")
    print(line, flush=True)
    return {"label": label, "batched_step_s": tv, "plain_batched_step_s": plain, "speedup_vs_plain": plain / tv,
            "line": line}


def compare(noisy, label, cfg, device, steps, n_patches=None) -> dict:
    surf, uv, target, mask = setup(noisy, cfg, device, n_patches)
    tb, mb = batched(surf, uv, target, mask, steps, device)
    surf, uv, target, mask = setup(noisy, cfg, device, n_patches)
    tl, ml = loop(surf, uv, target, mask, steps, device)
    k = cfg.refresh_every
    row = {"label": label, "patches": int(mask.shape[0]), "points_per_patch": float(mask.sum(1).float().mean()),
           "widths": list(cfg.widths), "batched_step_s": tb, "loop_step_s": tl, "batched_match_s": mb,
           "loop_match_s": ml, "step_speedup": tl / tb,
           "epoch_speedup": (tl + ml / k) / (tb + mb / k), "refresh_every": k}
    row["line"] = (f"| {label} | {row['patches']} | {row['points_per_patch']:.0f} | {row['widths']} | "
                   f"{tb * 1e3:.1f} | {tl * 1e3:.1f} | {row['step_speedup']:.1f}× | {mb:.2f} / {ml:.2f} | "
                   f"{row['epoch_speedup']:.1f}× |")
    print(row["line"], flush=True)
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--original-patches", type=int, default=24,
                        help="patches for the original-width comparison (it is ~50× heavier per patch)")
    parser.add_argument("--variants", action="store_true",
                        help="also time torch.compile (and bfloat16 autocast on a GPU) against the plain batched step")
    parser.add_argument("--scan", choices=("bunny", "torus"), default="bunny",
                        help="bunny: the acceptance scan (needs ../shared); torus: 20k analytic samples, 0.5%% noise")
    parser.add_argument("--quick", action="store_true", help="torus, 12 patches, 2 steps: checks that the script runs")
    parser.add_argument("--out", default="benchmarks")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    n_patches = 12 if args.quick else None
    steps = 2 if args.quick else args.steps
    head = ["| setting | patches | points/patch | widths | batched step ms | loop step ms | step speed-up | "
            "matching s batched / loop | epoch speed-up (matching amortised) |", "|---|---|---|---|---|---|---|---|---|"]
    print(f"machine: {machine()}; device {device}; {torch.get_num_threads()} torch thread(s)", *head, sep="\n")
    if args.quick:
        args.scan = "torus"
    noisy = torus_scan(4000 if args.quick else 20_000)[0] if args.scan == "torus" else scan("bunny00")[1]
    cfg = DGPConfig.preset("default")
    rows = [compare(noisy, "default preset", cfg, device, steps, n_patches)]
    orig = DGPConfig(widths=(128, 256, 512, 512))
    rows.append(compare(noisy, "original MLP width", orig, device, max(2, steps // 5),
                        min(args.original_patches, n_patches or args.original_patches)))
    if args.variants:
        rows.append(variant(noisy, "torch.compile", cfg, device, steps, n_patches, compiled=True))
        if device.type == "cuda":
            rows.append(variant(noisy, "bfloat16 autocast", cfg, device, steps, n_patches, bf16=True))
            rows.append(variant(noisy, "bfloat16 autocast, original width", orig, device, steps, n_patches,
                                bf16=True))
    os.makedirs(args.out, exist_ok=True)
    stem = "bench_dgp_quick" if args.quick else "bench_dgp"
    write_json(os.path.join(args.out, f"{stem}.json"), {"machine": machine(), "device": str(device),
                                                        "threads": torch.get_num_threads(), "rows": rows})
    scan_name = (f"analytic torus scan ({len(noisy):,} points, 0.5 % noise)" if args.scan == "torus" else
                 "bunny scan of the acceptance tests (20k points, 0.5 % noise)")
    conventions = (f"Device {device}, {torch.get_num_threads()} torch thread(s); {scan_name}; {steps} timed steps. One step: forward, loss, backward, Adam, for all patches; the loop runs the "
                   "same maths patch by patch with its own nn.Sequential and Adam per patch. Matching: one exact "
                   "assignment per patch, amortised over refresh_every steps in the epoch speed-up.")
    with open(os.path.join(args.out, f"{stem}.md"), "w") as f:
        f.write("\n".join([header("Speed of the core: batched patches vs a per-patch loop", conventions, __file__,
                                  argv), *head, *(r["line"] for r in rows)]) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
