"""Finite-difference gradient checks in float64: the independent reference for backward."""

from __future__ import annotations

import numpy as np

import dropcore


def numeric_grad(f, arrays, k, eps=1e-6):
    """d(sum(f(*arrays) * weights))/d(arrays[k]) by central differences."""
    x = arrays[k]
    g = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = x[i]
        x[i] = old + eps
        fp = f(*arrays)
        x[i] = old - eps
        fm = f(*arrays)
        x[i] = old
        g[i] = (fp - fm) / (2 * eps)
    return g


def gradcheck(fn, *arrays, seed=0, atol=1e-6, rtol=1e-5, replay=None):
    """Compare autograd with finite differences for ``fn(*tensors) -> Tensor``.

    The output is reduced with fixed random weights so every output element counts.
    ``replay`` (a Generator) is reset to its state before each evaluation, so random
    layers draw the same mask every time.
    """
    arrays = [np.array(a, dtype=np.float64) for a in arrays]
    state = replay.get_state() if replay is not None else None

    def run(*arrs, grad=False):
        if replay is not None:
            replay.set_state(state)
        ts = [dropcore.Tensor(a.copy(), requires_grad=grad) for a in arrs]
        return ts, fn(*ts)

    _, out0 = run(*arrays)
    w = np.random.default_rng(seed).standard_normal(out0.shape)

    def scalar(*arrs):
        return float((run(*arrs)[1].data * w).sum())

    ts, out = run(*arrays, grad=True)
    (out * dropcore.Tensor(w)).sum().backward()
    for k, t in enumerate(ts):
        want = numeric_grad(scalar, arrays, k)
        got = t.grad.data if t.grad is not None else np.zeros_like(want)
        np.testing.assert_allclose(got, want, atol=atol, rtol=rtol, err_msg=f"gradient of input {k}")
