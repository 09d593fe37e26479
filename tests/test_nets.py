"""geomprior.nets.BatchedMLP against its slow reference: a Python loop over plain nn.Sequential networks."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.testing import assert_close

from geomprior.nets import BatchedMLP

P, M, WIDTHS = 5, 7, (16, 8)


def make(seed: int = 0, **kw) -> BatchedMLP:
    return BatchedMLP(P, 2, 3, WIDTHS, generator=torch.Generator().manual_seed(seed), **kw)


def inputs(seed: int = 1) -> torch.Tensor:
    return torch.rand(P, M, 2, generator=torch.Generator().manual_seed(seed))


def test_shapes_and_structure():
    mlp = make()
    assert mlp.n == P
    assert [tuple(w.shape) for w in mlp.weights] == [(P, 2, 16), (P, 16, 8), (P, 8, 3)]
    assert [tuple(b.shape) for b in mlp.biases] == [(P, 1, 16), (P, 1, 8), (P, 1, 3)]
    net = mlp.network(0)
    kinds = [type(m) for m in net]
    assert kinds == [nn.Linear, nn.ReLU, nn.Linear, nn.ReLU, nn.Linear]
    assert mlp(inputs()).shape == (P, M, 3)


def test_init_bounds_and_last_scale():
    mlp = make(last_scale=0.1)
    for i, (w, b) in enumerate(zip(mlp.weights, mlp.biases)):
        bound = w.shape[1] ** -0.5 * (0.1 if i == len(mlp.weights) - 1 else 1.0)
        assert w.abs().max() <= bound and b.abs().max() <= bound
        assert w.abs().max() > 0.5 * bound  # really uniform on ±bound, not collapsed
    # networks differ from each other (independent draws per patch)
    assert not torch.equal(mlp.weights[0][0], mlp.weights[0][1])


def test_sine_layers_follow_siren_initialisation():
    """SIREN: first layer ±1/fan_in, later ones ±sqrt(6/fan_in)/ω0, activations sin(ω0·x)."""
    mlp = make(activation="sine", omega=30.0)
    bounds = [1 / 2, (6 / 16) ** 0.5 / 30, (6 / 8) ** 0.5 / 30]
    for w, bound in zip(mlp.weights, bounds):
        assert w.abs().max() <= bound and w.abs().max() > 0.5 * bound
    assert [type(m).__name__ for m in mlp.network(0)] == ["Linear", "_Sine", "Linear", "_Sine", "Linear"]
    with pytest.raises(ValueError, match="activation"):
        make(activation="tanh")


def test_same_seed_same_weights():
    a, b, c = make(3), make(3), make(4)
    for pa, pb, pc in zip(a.parameters(), b.parameters(), c.parameters()):
        assert torch.equal(pa, pb)
        assert not torch.equal(pa, pc)


@pytest.mark.parametrize("activation", ["relu", "sine"])
def test_forward_equals_loop(activation):
    mlp = make(activation=activation)
    x = inputs()
    y = mlp(x)
    ref = torch.stack([mlp.network(i)(x[i]) for i in range(P)])
    assert_close(y, ref)


def test_network_is_a_copy():
    mlp = make()
    net = mlp.network(2)
    with torch.no_grad():
        net[0].weight.add_(1.0)
    assert not torch.equal(net[0].weight, mlp.weights[0][2].T)


@pytest.mark.parametrize("activation", ["relu", "sine"])
def test_gradients_equal_loop(activation):
    mlp = make(activation=activation)
    nets = [mlp.network(i) for i in range(P)]
    coef = torch.randn(P, M, 3, generator=torch.Generator().manual_seed(5))
    x = inputs().requires_grad_(True)
    (mlp(x) * coef).sum().backward()

    xs = inputs().requires_grad_(True)
    sum((nets[i](xs[i]) * coef[i]).sum() for i in range(P)).backward()

    assert_close(x.grad, xs.grad)
    for layer, (w, b) in enumerate(zip(mlp.weights, mlp.biases)):
        for i in range(P):
            lin = nets[i][2 * layer]
            assert_close(w.grad[i], lin.weight.grad.T)
            assert_close(b.grad[i, 0], lin.bias.grad)


def test_adam_on_stacked_parameters_equals_per_patch_adam():
    mlp = make()
    nets = [mlp.network(i) for i in range(P)]
    x = inputs()
    target = torch.randn(P, M, 3, generator=torch.Generator().manual_seed(6))
    opt = torch.optim.Adam(mlp.parameters(), lr=1e-2)
    opts = [torch.optim.Adam(n.parameters(), lr=1e-2) for n in nets]
    for _ in range(8):
        opt.zero_grad()
        ((mlp(x) - target) ** 2).mean((1, 2)).sum().backward()  # summed per-patch losses
        opt.step()
        for i in range(P):
            opts[i].zero_grad()
            ((nets[i](x[i]) - target[i]) ** 2).mean().backward()
            opts[i].step()
    moved = False
    for layer, (w, b) in enumerate(zip(mlp.weights, mlp.biases)):
        for i in range(P):
            lin = nets[i][2 * layer]
            assert_close(w[i].detach(), lin.weight.detach().T, rtol=1e-5, atol=1e-6)
            assert_close(b[i, 0].detach(), lin.bias.detach(), rtol=1e-5, atol=1e-6)
        moved |= not torch.allclose(w, make().weights[layer])
    assert moved  # the optimiser really changed the weights


def test_state_rows_and_load_rows():
    mlp = make()
    saved = mlp.state_rows()
    with torch.no_grad():
        for p in mlp.parameters():
            p.add_(1.0)
    rows = torch.tensor([True, False, True, False, False])
    mlp.load_rows(saved, rows)
    for p, s in zip(mlp.parameters(), saved):
        assert torch.equal(p[rows], s[rows])
        assert torch.equal(p[~rows], s[~rows] + 1.0)
    mlp.load_rows(saved)
    for p, s in zip(mlp.parameters(), saved):
        assert torch.equal(p, s)


@pytest.mark.parametrize(
    "shape",
    [(P - 1, M, 2), (P, M, 3), (M, 2), (P, M, 2, 1)],
    ids=["wrong-P", "wrong-in-dim", "2d", "4d"],
)
def test_shape_errors(shape):
    mlp = make()
    with pytest.raises(ValueError) as err:
        mlp(torch.zeros(shape))
    msg = str(err.value)
    assert "expected" in msg and f"P={P}" in msg and ", 2)" in msg  # what it expects
    assert str(tuple(shape)) in msg  # what it got
