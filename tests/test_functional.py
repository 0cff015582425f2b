"""dropcore.functional / dropcore.nn.functional: values against NumPy, gradients against
finite differences (float64), for the forms test_nn.py does not already cover."""

import numpy as np
import pytest

import dropcore
import dropcore.nn as nn
import dropcore.nn.functional as F

from gradcheck import gradcheck

rng = np.random.default_rng(7)
X = rng.standard_normal((4, 6))
X3 = rng.standard_normal((5, 3, 4))


@pytest.mark.parametrize(
    "name,fn,inputs",
    [
        ("relu", lambda a: F.relu(a), (X,)),
        ("leaky_relu", lambda a: F.leaky_relu(a, 0.2), (X,)),
        ("crelu", lambda a: F.crelu(a), (X,)),
        ("sigmoid", lambda a: F.sigmoid(a), (X,)),
        ("tanh", lambda a: F.tanh(a), (X,)),
        ("softmax", lambda a: F.softmax(a, dim=0), (X,)),
        ("log_softmax", lambda a: F.log_softmax(a, dim=1), (X,)),
        ("linear 3d input", lambda a, w: F.linear(a, w), (X3, rng.standard_normal((2, 4)))),
        ("nll_loss", lambda a: F.nll_loss(F.log_softmax(a, 1), np.array([1, 0, 5, 2])), (X,)),
        ("mse sum", lambda a, b: F.mse_loss(a, b, reduction="sum"), (X, X[::-1].copy())),
        ("mse none", lambda a, b: F.mse_loss(a, b, reduction="none"), (X, X[::-1].copy())),
    ],
)
def test_functional_gradients(name, fn, inputs):
    gradcheck(fn, *inputs)


@pytest.mark.parametrize(
    "make,inp",
    [
        (lambda: nn.Flatten(), X3),
        (lambda: nn.BatchNorm1d(3), X3),  # (N, C, L): statistics over N and L
        (lambda: nn.BatchNorm1d(6, affine=False, track_running_stats=False), X),
        (lambda: nn.Sequential(nn.Linear(6, 8), nn.LeakyReLU(), nn.Linear(8, 3)), X),
    ],
)
def test_more_module_gradients(make, inp):
    m = make().double()
    gradcheck(lambda x: m(x), inp)


def test_dropout_module_gradient_with_replayed_generator():
    g = dropcore.Generator(123)
    m = nn.Dropout(0.3, generator=g).double()
    gradcheck(lambda x: m(x), X, replay=g)


def test_activation_values_against_numpy():
    x = dropcore.tensor(X.astype(np.float32))
    np.testing.assert_allclose(F.leaky_relu(x, 0.2).data, np.where(X > 0, X, 0.2 * X), rtol=1e-6)
    e = np.exp(X - X.max(1, keepdims=True))
    np.testing.assert_allclose(F.softmax(x, 1).data, e / e.sum(1, keepdims=True), rtol=1e-5)
    np.testing.assert_allclose(F.log_softmax(x, 1).data, np.log(e / e.sum(1, keepdims=True)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(F.crelu(x).data, np.concatenate([np.maximum(X, 0), np.maximum(-X, 0)], 1), rtol=1e-6)
    assert F.relu(x).dtype == np.float32 and F.softmax(x, 1).dtype == np.float32


def test_cross_entropy_label_smoothing_and_reductions_against_numpy():
    t = np.array([1, 0, 5, 2])
    logp = X - np.log(np.exp(X).sum(1, keepdims=True))
    eps, c = 0.1, X.shape[1]
    per = -(1 - eps) * logp[np.arange(4), t] - eps / c * logp.sum(1)  # PyTorch's smoothing rule
    z = dropcore.tensor(X)
    np.testing.assert_allclose(F.cross_entropy(z, t, label_smoothing=eps).item(), per.mean(), rtol=1e-12)
    np.testing.assert_allclose(F.cross_entropy(z, t, reduction="sum").item(), -logp[np.arange(4), t].sum(), rtol=1e-12)
    np.testing.assert_allclose(F.cross_entropy(z, t, reduction="none").data, -logp[np.arange(4), t], rtol=1e-12)
    np.testing.assert_allclose(nn.MSELoss()(z, dropcore.zeros(4, 6, dtype=dropcore.float64)).item(), (X**2).mean())


def test_batch_norm_3d_running_stats_use_unbiased_variance_over_n_and_l():
    bn = nn.BatchNorm1d(3, momentum=0.2)
    x = X3.astype(np.float32)
    y = bn(dropcore.tensor(x)).data
    mean = x.mean((0, 2))
    var = x.var((0, 2))
    n = x.shape[0] * x.shape[2]
    np.testing.assert_allclose(y, (x - mean[:, None]) / np.sqrt(var[:, None] + 1e-5), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(bn.running_mean, 0.2 * mean, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(bn.running_var, 0.8 + 0.2 * var * n / (n - 1), rtol=1e-5)


def test_nn_functional_reexports_the_dropout_family():
    import dropcore.dropout as dropout_module

    for name in dropout_module.__all__:
        assert getattr(F, name) is getattr(dropout_module, name)
    out = F.dropout(np.ones(1000, np.float32), 0.5, generator=dropcore.Generator(0))
    assert isinstance(out, np.ndarray) and set(np.unique(out)) <= {0.0, 2.0}
