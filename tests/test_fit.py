"""geomprior.fit: the optimisation loop, per-item early stopping, best weights, history."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest
import torch

from geomprior.fit import STOP_MODES, EarlyStopping, adam, fit

P, D = 3, 4
NOISE_ITEM = 2


class Toy:
    """P independent least-squares items w_p -> target_p, validated against the true signal.

    Items 0 and 1 hold a signal: their training target is the truth, so validation improves until they converge.
    Item 2 is noise only: it is trained on pure noise while its truth is zero, so fitting only makes it worse.
    """

    def __init__(self, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        signal = torch.randn(P, D, generator=g)
        signal[NOISE_ITEM] = 0
        self.truth = signal
        self.train = signal.clone()
        self.train[NOISE_ITEM] = torch.randn(D, generator=g)
        self.w = torch.zeros(P, D, requires_grad=True)
        self.w.data[:2] = 0.1 * torch.randn(2, D, generator=g)
        self.snapshots: dict[int, torch.Tensor] = {}

    def loss(self) -> torch.Tensor:
        return ((self.w - self.train) ** 2).sum(1)

    def validate(self) -> torch.Tensor:
        return ((self.w - self.truth) ** 2).sum(1)

    def monitor(self, step: int) -> dict:
        self.snapshots[step] = self.w.detach().clone()
        return {"w0": float(self.w[0, 0].detach())}

    def run(self, stopper: EarlyStopping, max_steps: int = 400, **kw):
        return fit([self.w], self.loss, max_steps=max_steps, lr=0.05, validate=self.validate, eval_every=5,
                   stopper=stopper, monitor=self.monitor, **kw)


def item_stopper(**kw):
    return EarlyStopping(mode="item", patience=3, smoothing=0.0, **kw)


def test_item_mode_freezes_items_and_restores_best():
    toy = Toy()
    res = toy.run(item_stopper())
    h = res.history
    assert res.reason.startswith("validation stopped improving")
    assert res.steps < 400
    active = h["active"]
    assert active[0] == P and active[-1] == 0
    assert all(a >= b for a, b in zip(active, active[1:]))  # items only ever get frozen
    assert len(set(active)) >= 3  # frozen one by one, not all at once
    # the noise-only item never improved on its start and went first
    assert res.best_step[NOISE_ITEM] == 0
    assert res.best_step[NOISE_ITEM] < min(res.best_step[i] for i in range(P) if i != NOISE_ITEM)
    # every item is back at its own best weights
    for i in range(P):
        torch.testing.assert_close(toy.w.detach()[i], toy.snapshots[res.best_step[i]][i], rtol=0, atol=0)
    assert torch.equal(toy.w.detach()[NOISE_ITEM], torch.zeros(D))
    # ... which are the minima of each item's validation over the evaluations
    for i in range(P):
        val_i = [float(((s[i] - toy.truth[i]) ** 2).sum()) for s in toy.snapshots.values()]
        assert float(toy.validate().detach()[i]) == pytest.approx(min(val_i), rel=1e-3, abs=1e-12)
    # the signal items really learned
    assert float(toy.validate().detach()[:2].max()) < 1e-2


def test_frozen_items_do_not_move():
    toy = Toy()
    res = toy.run(item_stopper())
    steps = res.history["step"]
    active = res.history["active"]
    first_frozen = steps[next(k for k, a in enumerate(active) if a < P)]
    later = [s for s in steps if s >= first_frozen]
    assert len(later) >= 2
    ref = toy.snapshots[first_frozen][NOISE_ITEM]
    for s in later:
        assert torch.equal(toy.snapshots[s][NOISE_ITEM], ref), f"frozen item moved by step {s}"
    # while the others kept moving after it froze
    assert not torch.equal(toy.snapshots[later[0]][0], toy.snapshots[later[-1]][0])


def test_fused_adam_takes_the_steps_of_the_per_tensor_loop():
    """The fit's Adam (fused where torch has the kernel) against torch's per-tensor Adam, the slow reference."""
    g = torch.Generator().manual_seed(0)
    start = [torch.randn(5, 7, generator=g), torch.randn(5, 1, 3, generator=g)]
    grads = [[torch.randn(t.shape, generator=g) for t in start] for _ in range(20)]
    runs = []
    for make in (lambda ps: adam(ps, 0.01), lambda ps: torch.optim.Adam(ps, lr=0.01, foreach=False)):
        ps = [torch.nn.Parameter(t.clone()) for t in start]
        opt = make(ps)
        for step in grads:
            for p, gr in zip(ps, step):
                p.grad = gr.clone()
            opt.step()
        runs.append([p.detach() for p in ps])
    assert adam([torch.nn.Parameter(torch.zeros(1))], 0.01).defaults["fused"]  # this torch has the CPU kernel
    for fused, loop, first in zip(*runs, start):
        assert not torch.equal(fused, first)
        torch.testing.assert_close(fused, loop, rtol=1e-5, atol=1e-6)


def test_mode_none_runs_to_the_cap():
    toy = Toy()
    res = toy.run(EarlyStopping(mode="none"), max_steps=23)
    assert res.steps == 23
    assert "cap" in res.reason
    assert res.history["step"] == [0, 5, 10, 15, 20, 23]
    assert res.history["active"] == [P] * 6
    # no restore: the noise item ends fitted to its noise, not at its best (zero) weights
    assert float(toy.validate().detach()[NOISE_ITEM]) > 0.1
    torch.testing.assert_close(toy.w.detach(), toy.snapshots[23], rtol=0, atol=0)


def test_run_mode_stops_the_whole_run():
    toy = Toy()
    res = toy.run(EarlyStopping(mode="run", patience=3, smoothing=0.0))
    assert res.reason.startswith("validation stopped improving")
    assert len(res.best_step) == 1
    assert res.steps == res.best_step[0] + 3 * 5
    # all items restored together to the best summed score
    torch.testing.assert_close(toy.w.detach(), toy.snapshots[res.best_step[0]], rtol=0, atol=0)
    val_sum = [float(((s - toy.truth) ** 2).sum()) for s in toy.snapshots.values()]
    assert float(toy.validate().detach().sum()) == pytest.approx(min(val_sum), rel=1e-3)


def test_warmup_ignores_the_evaluations_before_it():
    """Scores lowest at the start: without warmup the rule keeps step 0 and stops; with it, it keeps a later
    step and uses no patience before the warmup ends."""
    curve = {0: 1.0, 10: 1.2, 20: 1.3, 30: 1.25, 40: 1.1, 50: 1.05, 60: 1.02, 70: 1.03, 80: 1.04, 90: 1.05}
    steps, scores = list(curve), list(curve.values())
    assert EarlyStopping(mode="run", patience=3, smoothing=0.0).replay(steps, scores) == (30, 0)
    assert EarlyStopping(mode="run", patience=3, smoothing=0.0, warmup=50).replay(steps, scores) == (90, 60)
    assert EarlyStopping(mode="run", patience=3, warmup=100).replay(steps, scores) == (None, None)  # none counted
    # a fit shorter than the warmup keeps its last weights (nothing to restore)
    toy = Toy()
    res = toy.run(EarlyStopping(mode="run", patience=3, smoothing=0.0, warmup=100), max_steps=23)
    assert res.steps == 23 and "cap" in res.reason
    torch.testing.assert_close(toy.w.detach(), toy.snapshots[23], rtol=0, atol=0)


def test_same_seed_identical_history():
    def history(seed):
        h = Toy(seed).run(item_stopper()).history
        return {k: v for k, v in h.items() if k != "time"}

    a, b = history(3), history(3)
    assert a == b
    assert a != history(4)


def test_refresh_schedule_and_progress():
    toy = Toy()
    refreshed, seen = [], []
    fit([toy.w], toy.loss, max_steps=20, lr=0.05, refresh=refreshed.append, refresh_every=7,
        eval_every=10, progress=lambda stage, step, total, info: seen.append((stage, step, total, sorted(info))),
        stage="toy")
    assert refreshed == [0, 7, 14]
    assert seen == [("toy", s, 20, ["loss"]) for s in (0, 10, 20)]


def test_non_finite_loss_stops_and_keeps_best():
    toy = Toy()
    calls = {"n": 0}

    def loss():
        calls["n"] += 1
        out = toy.loss()
        return out * float("nan") if calls["n"] > 12 else out

    res = fit([toy.w], loss, max_steps=100, lr=0.05, validate=toy.validate, eval_every=5,
              stopper=item_stopper(), monitor=toy.monitor)
    assert res.reason == "loss became non-finite"
    assert res.steps < 100
    assert torch.isfinite(toy.w).all()
    # every item is back at the weights of its best evaluation, not where the loss broke (the noise item's best is
    # its start: fitting noise only makes it worse)
    assert res.best_step[NOISE_ITEM] == 0 and res.steps >= 10
    for p in range(P):
        assert torch.equal(toy.w[p].detach(), toy.snapshots[res.best_step[p]][p])


def test_unknown_stop_mode():
    with pytest.raises(ValueError, match="unknown early-stopping mode") as err:
        EarlyStopping(mode="never")
    for m in STOP_MODES:
        assert m in str(err.value)


def test_denormals_flushed_only_during_the_fit():
    """Inside the loop denormals are flushed (speed); after it the process-wide flag is off again (it makes scipy's
    cKDTree crash on some inputs)."""
    tiny = torch.tensor([1e-39])  # a float32 denormal
    seen = []
    w = torch.ones(1, requires_grad=True)

    def loss_fn():
        seen.append(float(tiny * 1.0))
        return (w ** 2).sum()

    fit([w], loss_fn, max_steps=2)
    assert seen and all(v == 0.0 for v in seen)
    assert float(tiny * 1.0) > 0.0


def test_cosine_decay_halves_the_way_adam_travels():
    """Adam moves a weight by about lr per step on a constant gradient; along a cosine decay to 0, by half that."""
    travelled = {}
    for decay in ("none", "cosine"):
        w = torch.zeros(1, requires_grad=True)
        fit([w], lambda: w.sum(), max_steps=200, lr=0.01, lr_decay=decay)
        travelled[decay] = -float(w.detach())
    assert travelled["none"] == pytest.approx(2.0, rel=0.02)
    assert travelled["cosine"] == pytest.approx(1.0, rel=0.02)
    with pytest.raises(ValueError, match="lr_decay"):
        fit([w], lambda: w.sum(), max_steps=2, lr_decay="linear")


_RETAINED = """
import sys, torch
from geomprior.fit import fit
if sys.argv[1] == "fit":  # a CPU fit sets the allocator up
    w = torch.zeros(2, 3, requires_grad=True)
    fit([w], lambda: (w - 1).pow(2).sum(1), max_steps=2)
def resident():
    return int(open("/proc/self/statm").read().split()[1]) * 4096
x = torch.ones(6_000_000)  # 24 MB, like one activation of a 250-patch step
before = resident()
del x
print(before - resident())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_a_cpu_fit_keeps_freed_activations_in_the_process():
    """After a CPU fit, freeing a step-sized tensor keeps its memory for the next step (no fresh zeroed pages);
    glibc's default gives it back (the premise)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}

    def returned(mode):
        out = subprocess.run([sys.executable, "-c", _RETAINED, mode], env=env, capture_output=True, text=True,
                             check=True)
        return int(out.stdout.split()[-1]) / 2**20

    assert returned("plain") > 20
    assert returned("fit") < 4
