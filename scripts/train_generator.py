"""Train the demo generator: a small VAE decoder for 32×32 grayscale digits, written as a geomprior generator file.

Data: scikit-learn's 1,797 bundled 8×8 digits (inside its wheel: nothing is downloaded), scaled to [0, 1] and
upsampled to 32×32 (bilinear). A fixed split (seed 0) holds 300 digits out; they are never trained on, their
indices go into the file's metadata, and ``--samples DIR`` writes the first few of them as PNGs to try the
generator on. A VAE rather than a GAN: it trains in minutes on a CPU without tuning, and its decoder covers the
digits (no mode collapse), which is what CSGM needs.

The decoder maps a spatial latent (16, 4, 4) to a (1, 32, 32) image through three upsampling conv blocks; the
encoder mirrors it. Loss: binary cross-entropy + KL divergence. Adam, lr 1e-3, batches of 64.

    python scripts/train_generator.py -o digits_G.pt [--epochs 60] [--samples digits/] [--seed 0]
    python scripts/train_generator.py -o tiny_G.pt --quick     # seconds: what the tests run
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

LATENT = (16, 4, 4)
SIZE = 32
HELD_OUT = 300


def digits(seed: int = 0) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """All 1,797 digits as (N, 1, 32, 32) float in [0, 1], and the train / held-out indices (a fixed split)."""
    from sklearn.datasets import load_digits

    small = torch.as_tensor(load_digits().images / 16.0, dtype=torch.float32)[:, None]
    images = F.interpolate(small, size=(SIZE, SIZE), mode="bilinear", align_corners=False).clamp(0, 1)
    order = np.random.default_rng(seed).permutation(len(images))
    return images, np.sort(order[HELD_OUT:]), np.sort(order[:HELD_OUT])


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.LeakyReLU(0.2))


class Decoder(nn.Module):
    """(B, 16, 4, 4) latents -> (B, 1, 32, 32) images in [0, 1]."""

    def __init__(self, width: int = 64):
        super().__init__()
        self.net = nn.Sequential(_block(LATENT[0], width), nn.Upsample(scale_factor=2), _block(width, width // 2),
                                 nn.Upsample(scale_factor=2), _block(width // 2, width // 4),
                                 nn.Upsample(scale_factor=2), nn.Conv2d(width // 4, 1, 3, padding=1), nn.Sigmoid())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class Encoder(nn.Module):
    """(B, 1, 32, 32) images -> the mean and log-variance of their (B, 16, 4, 4) latents."""

    def __init__(self, width: int = 64):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(1, width // 4, 3, 2, 1), nn.LeakyReLU(0.2),
                                 nn.Conv2d(width // 4, width // 2, 3, 2, 1), nn.LeakyReLU(0.2),
                                 nn.Conv2d(width // 2, width, 3, 2, 1), nn.LeakyReLU(0.2),
                                 nn.Conv2d(width, 2 * LATENT[0], 1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.net(x).chunk(2, dim=1)


def train(images: torch.Tensor, *, epochs: int, width: int = 64, seed: int = 0, log=print) -> Decoder:
    """Fit a VAE to ``images`` (N, 1, 32, 32); return its decoder."""
    torch.manual_seed(seed)
    enc, dec = Encoder(width), Decoder(width)
    opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=1e-3)
    gen = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        total = 0.0
        for batch in torch.randperm(len(images), generator=gen).split(64):
            x = images[batch]
            mu, logvar = enc(x)
            z = mu + torch.randn(mu.shape, generator=gen) * (0.5 * logvar).exp()
            recon = F.binary_cross_entropy(dec(z), x, reduction="sum")
            kl = -0.5 * (1 + logvar - mu * mu - logvar.exp()).sum()
            loss = (recon + kl) / len(x)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(x)
        if epoch % 10 == 0 or epoch == epochs - 1:
            log(f"epoch {epoch + 1}/{epochs}: loss {total / len(images):.2f}")
    return dec.eval()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-o", "--output", required=True, help="the generator file to write (.pt)")
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--samples", metavar="DIR", help="also write the first 10 held-out digits there as PNGs")
    p.add_argument("--quick", action="store_true", help="2 epochs of a narrow net on 200 digits (a test)")
    args = p.parse_args(argv)

    from geomprior.image import save_generator

    start = time.perf_counter()
    images, train_ids, held = digits(args.seed)
    epochs, width, used = (2, 16, train_ids[:200]) if args.quick else (args.epochs, 64, train_ids)
    dec = train(images[used], epochs=epochs, width=width, seed=args.seed)
    seconds = time.perf_counter() - start
    save_generator(args.output, dec, LATENT, (1, SIZE, SIZE), info={
        "data": "sklearn.datasets.load_digits, /16, bilinear to 32x32", "model": f"VAE decoder, width {width}",
        "epochs": epochs, "seed": args.seed, "held_out": held.tolist(), "train_seconds": round(seconds, 1)})
    print(f"wrote {args.output} ({sum(q.numel() for q in dec.parameters())} weights, {seconds:.0f} s)")
    if args.samples:
        from geomprior.image.io import write_image

        out = Path(args.samples)
        out.mkdir(parents=True, exist_ok=True)
        for i in held[:10]:
            write_image(out / f"digit_{i}.png", images[i, 0, :, :, None].numpy())
        print(f"wrote 10 held-out digits to {out}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
