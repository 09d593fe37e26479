"""Early-stopping scores for image priors that need no ground truth (fed to :class:`geomprior.fit.EarlyStopping`).

- :class:`WindowedVariance` ("ES-WMV", Wang et al.): the variance of the last ``window`` outputs. It falls while
  the network fits the signal and rises again when it starts fitting the noise; stop near its minimum.
- held-out measurements and the discrepancy principle are built in :mod:`geomprior.image.tasks`.
"""

from __future__ import annotations

import torch


class WindowedVariance:
    """Running variance of the last ``window`` outputs, per item.

    push(x)  : x (P, ...) the current outputs of P items (P = 1 for one network)
    value()  : (P,) mean over entries of the variance over the window; NaN until the window is full
               (EarlyStopping ignores NaN scores)
    """

    def __init__(self, window: int):
        if window < 2:
            raise ValueError(f"window must be >= 2, got {window}")
        self.window = int(window)
        self.buffer: torch.Tensor | None = None
        self.count = 0

    @torch.no_grad()
    def push(self, x: torch.Tensor) -> None:
        if self.buffer is None:
            self.buffer = x.new_zeros((self.window, *x.shape))
        self.buffer[self.count % self.window] = x.detach()
        self.count += 1

    @torch.no_grad()
    def value(self) -> torch.Tensor:
        if self.buffer is None or self.count < self.window:
            p = 1 if self.buffer is None else self.buffer.shape[1]
            return torch.full((p,), float("nan"))
        buf = self.buffer
        var = ((buf - buf.mean(0, keepdim=True)) ** 2).mean(0)
        return var.reshape(var.shape[0], -1).mean(1).float().cpu()
