"""Optimizers against PyTorch's update rules written out independently in NumPy."""

import numpy as np
import pytest

import dropcore
from dropcore import optim

rng = np.random.default_rng(4)
P0 = rng.standard_normal(5)
GRADS = [rng.standard_normal(5) for _ in range(4)]


def run(opt_cls, **kw):
    p = dropcore.Tensor(P0.copy(), requires_grad=True)
    opt = opt_cls([p], **kw)
    for g in GRADS:
        opt.zero_grad()
        p.grad = dropcore.Tensor(g.copy())
        opt.step()
    return p.data


def sgd_reference(lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
    p, buf = P0.copy(), None
    for g in GRADS:
        d = g + weight_decay * p
        if momentum:
            buf = d.copy() if buf is None else momentum * buf + (1 - dampening) * d
            d = d + momentum * buf if nesterov else buf
        p = p - lr * d
    return p


def adam_reference(lr, b1, b2, eps, wd, decoupled, amsgrad=False):
    p, m, v, vmax = P0.copy(), np.zeros(5), np.zeros(5), np.zeros(5)
    for t, g in enumerate(GRADS, start=1):
        if decoupled:
            p = p * (1 - lr * wd)
        else:
            g = g + wd * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        vmax = np.maximum(vmax, v)
        vhat = (vmax if amsgrad else v) / (1 - b2**t)
        p = p - lr * (m / (1 - b1**t)) / (np.sqrt(vhat) + eps)
    return p


@pytest.mark.parametrize(
    "kw",
    [
        dict(lr=0.1),
        dict(lr=0.1, momentum=0.9),
        dict(lr=0.05, momentum=0.9, dampening=0.3),
        dict(lr=0.1, momentum=0.8, weight_decay=0.01, nesterov=True),
    ],
)
def test_sgd_matches_reference(kw):
    np.testing.assert_allclose(run(optim.SGD, **kw), sgd_reference(**kw), rtol=1e-12)


@pytest.mark.parametrize("wd,amsgrad", [(0.0, False), (0.1, False), (0.0, True)])
def test_adam_matches_reference(wd, amsgrad):
    got = run(optim.Adam, lr=0.01, betas=(0.9, 0.99), eps=1e-8, weight_decay=wd, amsgrad=amsgrad)
    np.testing.assert_allclose(got, adam_reference(0.01, 0.9, 0.99, 1e-8, wd, False, amsgrad), rtol=1e-12)


def test_adamw_decouples_weight_decay():
    got = run(optim.AdamW, lr=0.01, weight_decay=0.1)
    np.testing.assert_allclose(got, adam_reference(0.01, 0.9, 0.999, 1e-8, 0.1, True), rtol=1e-12)
    assert not np.allclose(got, adam_reference(0.01, 0.9, 0.999, 1e-8, 0.1, False))


def test_first_adam_step_moves_by_lr():
    # With bias correction, step 1 moves each coordinate by ~lr * sign(grad).
    p = dropcore.Tensor(np.zeros(3), requires_grad=True)
    opt = optim.Adam([p], lr=0.5)
    p.grad = dropcore.Tensor(np.array([3.0, -0.001, 7.0]))
    opt.step()
    np.testing.assert_allclose(p.data, [-0.5, 0.5, -0.5], rtol=1e-4)


def test_float32_parameters_stay_float32_and_bad_arguments_fail():
    p = dropcore.ones(3, requires_grad=True)
    opt = optim.SGD([p], lr=0.1, momentum=0.9)
    p.grad = dropcore.ones(3)
    opt.step()
    assert p.dtype == np.float32
    with pytest.raises(ValueError):
        optim.SGD([p], lr=-1)
    with pytest.raises(ValueError):
        optim.SGD([p], lr=0.1, nesterov=True)
    with pytest.raises(ValueError):
        optim.Adam([p], betas=(1.0, 0.9))
    with pytest.raises(ValueError):
        optim.SGD([], lr=0.1)


def test_param_groups_and_skipping_params_without_grad():
    a = dropcore.ones(2, requires_grad=True)
    b = dropcore.ones(2, requires_grad=True)
    opt = optim.SGD([{"params": [a]}, {"params": [b], "lr": 1.0}], lr=0.1)
    a.grad = dropcore.ones(2)
    opt.step()
    np.testing.assert_allclose(a.data, [0.9, 0.9])
    np.testing.assert_allclose(b.data, [1.0, 1.0])
    b.grad = dropcore.ones(2)
    opt.zero_grad()
    assert a.grad is None and b.grad is None
