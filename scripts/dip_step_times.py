"""How long one Deep Image Prior training step takes here, in the memory layouts and float types a CPU can use.

The DIP networks of the default preset (the 32-channel network of each default denoising run, and the 64-channel
one of the other tasks) on a square RGB image; one step as the solver takes it: the input perturbed, the forward
pass (under ``torch.autocast`` for bfloat16), the squared error in float32, the backward pass and Adam. Each
variant is timed twice, interleaved with the others, and the faster time counts. What the solver picks here: the
standard layout, bfloat16 where ``geomprior.device.training_dtype("auto", cpu)`` gives it. The allocator is
set as ``geomprior.fit`` sets it on the CPU (``geomprior.device.keep_freed_memory``).

    python scripts/dip_step_times.py [--size 256] [--steps 10] [--out benchmarks]
    python scripts/dip_step_times.py --quick      # 64², one step: checks that it runs (a test)
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from _bench import header

from geomprior.device import keep_freed_memory, training_dtype
from geomprior.image import tasks
from geomprior.image.dip import DIPConfig, SkipNet, dip_input
from geomprior.io import write_json

VARIANTS = (  # (label, training float type, channels-last)
    ("float32, standard layout", torch.float32, False),
    ("float32, channels-last", torch.float32, True),
    ("bfloat16, standard layout", torch.bfloat16, False),
    ("bfloat16, channels-last", torch.bfloat16, True),
)


def step_seconds(config: DIPConfig, size: int, dtype: torch.dtype, channels_last: bool, steps: int,
                 warmup: int = 2) -> float:
    """Mean wall time of one training step after ``warmup`` steps."""
    torch.manual_seed(0)
    net = SkipNet(3, config)
    z = dip_input(config, (size, size))
    if channels_last:
        net, z = net.to(memory_format=torch.channels_last), z.contiguous(memory_format=torch.channels_last)
    target = torch.rand(1, 3, size, size)
    opt = torch.optim.Adam(net.parameters(), lr=config.lr)
    for i in range(warmup + steps):
        if i == warmup:
            start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
            out = net(z + config.input_noise * torch.randn_like(z))
        loss = ((out.float() - target) ** 2).mean()
        loss.backward()
        opt.step()
    return (time.perf_counter() - start) / steps


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--out", default="benchmarks")
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    tries = 2
    if args.quick:
        args.size, args.steps, tries = 64, 1, 1
    networks = [("default denoising run", tasks.dip_denoise_config("default")),
                ("default", tasks.make_config("dip", "default"))]
    chosen = training_dtype("auto", torch.device("cpu"))
    keep_freed_memory()
    rows = []
    for label, config in networks:
        best = {}
        for _ in range(tries):
            for name, dtype, last in VARIANTS:
                s = step_seconds(config, args.size, dtype, last, args.steps)
                best[name] = min(best.get(name, s), s)
        base = best[VARIANTS[0][0]]
        rows += [{"network": label, "channels": config.channels_down[0], "variant": name, "seconds": best[name],
                  "speedup": base / best[name], "solver": dtype == chosen and not last}
                 for name, dtype, last in VARIANTS]
    lines = [header("Speed of a Deep Image Prior step", f"{args.size}² RGB image, torch threads "
                    f"{torch.get_num_threads()}, mean of {args.steps} steps after 2, the fastest of {tries} tries. "
                    "solver: the variant the image solver runs on this machine.", __file__, argv),
             "| network | variant | ms/step | × float32, standard layout | solver |", "|---|---|---|---|---|"]
    lines += [f"| {r['network']} ({r['channels']} channels) | {r['variant']} | {r['seconds'] * 1e3:.0f} | "
              f"{r['speedup']:.2f} | {'yes' if r['solver'] else ''} |" for r in rows]
    text = "\n".join(lines)
    print(text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = "dip_step_times" + ("_quick" if args.quick else "")
    write_json(str(out / f"{stem}.json"), {"rows": rows, "size": args.size, "steps": args.steps})
    (out / f"{stem}.md").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
