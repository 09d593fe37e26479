"""Networks used as priors. ``BatchedMLP``: P independent MLPs (ReLU or sine) evaluated as one batched matmul."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn


class BatchedMLP(nn.Module):
    """P independent fully connected networks ``in_dim -> widths... -> out_dim``, ReLU or sine activations.

    Parameters are stacked along a leading patch dimension: ``weights[l]`` (P, fan_in, fan_out),
    ``biases[l]`` (P, 1, fan_out). With ``activation="relu"`` each network is initialised like ``nn.Linear``
    (uniform ±1/sqrt(fan_in)); the last layer is scaled by ``last_scale``. With ``activation="sine"`` it is a
    SIREN (Sitzmann et al. 2020): every hidden layer is sin(ω0·(xW + b)), ω0 = ``omega``, weights uniform
    ±1/fan_in in the first layer and ±sqrt(6/fan_in)/ω0 after it, so that pre-activations stay unit-scaled.
    Adam is element-wise, so optimising the stacked parameters with a loss that SUMS per-patch losses is exactly
    per-patch Adam.
    """

    def __init__(
        self,
        n: int,
        in_dim: int,
        out_dim: int,
        widths: Sequence[int],
        *,
        last_scale: float = 1.0,
        activation: str = "relu",
        omega: float = 30.0,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ):
        super().__init__()
        if activation not in ("relu", "sine"):
            raise ValueError(f"activation must be relu or sine, got {activation!r}")
        self.activation, self.omega = activation, float(omega)
        dims = [in_dim, *widths, out_dim]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
            bound = 1.0 / math.sqrt(a)
            scale = last_scale if i == len(dims) - 2 else 1.0
            wbound = bound if activation == "relu" else (1.0 / a if i == 0 else math.sqrt(6.0 / a) / self.omega)
            w = (torch.rand(n, a, b, generator=generator, dtype=dtype) * 2 - 1) * wbound * scale
            bias = (torch.rand(n, 1, b, generator=generator, dtype=dtype) * 2 - 1) * bound * scale
            self.weights.append(nn.Parameter(w.to(device)))
            self.biases.append(nn.Parameter(bias.to(device)))

    @property
    def n(self) -> int:
        """Number of networks P."""
        return self.weights[0].shape[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x : (P, M, in_dim) -> (P, M, out_dim)."""
        if x.dim() != 3 or x.shape[0] != self.n or x.shape[2] != self.weights[0].shape[1]:
            raise ValueError(f"expected input (P={self.n}, M, {self.weights[0].shape[1]}), got {tuple(x.shape)}")
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            x = torch.baddbmm(b, x, w)
            if i < last:  # in place: baddbmm's backward does not need its output
                x = x.relu_() if self.activation == "relu" else torch.sin(self.omega * x)
        return x

    def network(self, i: int) -> nn.Sequential:
        """Network i as a plain ``nn.Sequential`` of ``nn.Linear`` + activation holding copies of its weights."""
        layers: list[nn.Module] = []
        for w, b in zip(self.weights, self.biases):
            lin = nn.Linear(w.shape[1], w.shape[2])
            with torch.no_grad():
                lin.weight.copy_(w[i].T)
                lin.bias.copy_(b[i, 0])
            layers += [lin, nn.ReLU() if self.activation == "relu" else _Sine(self.omega)]
        return nn.Sequential(*layers[:-1])

    def state_rows(self) -> list[torch.Tensor]:
        """Detached copies of all parameters (for keeping each network's best weights)."""
        return [p.detach().clone() for p in self.parameters()]

    @torch.no_grad()
    def load_rows(self, saved: list[torch.Tensor], rows: torch.Tensor | None = None) -> None:
        """Copy saved parameters back; only networks where ``rows`` (P,) bool is True when given."""
        for p, s in zip(self.parameters(), saved):
            if rows is None:
                p.copy_(s)
            else:
                p[rows] = s[rows]


class _Sine(nn.Module):
    """x -> sin(ω0·x), SIREN's activation (for :meth:`BatchedMLP.network`)."""

    def __init__(self, omega: float):
        super().__init__()
        self.omega = omega

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(self.omega * x)
