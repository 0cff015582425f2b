"""50 SGD steps in float64 against a NumPy reference written out by hand (dropout off).

The reference is an independent implementation: forward, the backward pass derived by
hand (cross-entropy, linear, ReLU, batch norm with batch statistics), and the SGD update,
all in NumPy. dropcore's modules, autograd and optimizer must track it to 1e-10 at every
step, for d2l's dropout MLP (784-256-256-10, in eval mode so dropout is the identity)
and for the lecture notes' ``create_model`` (depth 16, with and without BatchNorm,
weights drawn by ``p.data.normal_(0, std)``).

Why 1e-10 holds: the reference makes the same rounding choices where the maths leaves
one open (the cross-entropy gradient is scaled by ``1/n`` as a product, not divided by
``n``), and then the runs agree bit for bit. That is needed, not cosmetic: with
BatchNorm at depth 16 the training dynamics amplify a 1e-16 difference about tenfold per
step (measured: dividing by ``n`` instead leaves 3e-11 after 5 steps and 0.2 after 20).
A wrong gradient anywhere shows up at the first step at the 1e-3 level or worse.
"""

import numpy as np
import pytest

import dropcore
from dropcore import nn, optim

TOL = 1e-10
STEPS = 50
LR = 0.1
EPS = 1e-5


# ----------------------------------------------------------------------------- NumPy reference
def ref_forward(layers, x):
    """Run the layer list; keep what backward needs."""
    tape = []
    h = x.reshape(len(x), -1)
    for layer in layers:
        kind = layer[0]
        if kind == "linear":
            _, w, b = layer
            tape.append(h)
            h = h @ w.T + b
        elif kind == "relu":
            tape.append(h)
            h = np.maximum(h, 0)
        else:  # batch norm, training mode: batch mean and biased variance
            _, gamma, beta = layer
            mu = h.mean(0)
            var = ((h - mu) ** 2).mean(0)
            inv_std = 1 / np.sqrt(var + EPS)
            xhat = (h - mu) * inv_std
            tape.append((xhat, inv_std))
            h = gamma * xhat + beta
    return h, tape


def ref_step(layers, x, y):
    """One SGD step by hand; returns the loss before the step."""
    z, tape = ref_forward(layers, x)
    n = len(y)
    zs = z - z.max(1, keepdims=True)
    logp = zs - np.log(np.exp(zs).sum(1, keepdims=True))
    loss = -logp[np.arange(n), y].mean()
    g = np.exp(logp)
    g[np.arange(n), y] -= 1
    g *= 1.0 / n  # as dropcore's cross_entropy does (see the module docstring)
    grads = [None] * len(layers)
    for i in reversed(range(len(layers))):
        kind, saved = layers[i][0], tape[i]
        if kind == "linear":
            w = layers[i][1]
            grads[i] = (g.T @ saved, g.sum(0))
            g = g @ w
        elif kind == "relu":
            g = g * (saved > 0)
        else:
            gamma = layers[i][1]
            xhat, inv_std = saved
            dxhat = g * gamma
            grads[i] = ((g * xhat).sum(0), g.sum(0))
            g = inv_std / n * (n * dxhat - dxhat.sum(0) - xhat * (dxhat * xhat).sum(0))
    for layer, gr in zip(layers, grads):
        if gr is not None:
            layer[1][...] -= LR * gr[0]
            layer[2][...] -= LR * gr[1]
    return loss


def ref_layers(model):
    """The model's layers as NumPy copies of its parameters (dropout layers dropped: they are off)."""
    out = []
    for m in model:
        if isinstance(m, nn.Linear):
            out.append(("linear", m.weight.detach().numpy().copy(), m.bias.detach().numpy().copy()))
        elif isinstance(m, nn.ReLU):
            out.append(("relu",))
        elif isinstance(m, nn.BatchNorm1d):
            out.append(("bn", m.weight.detach().numpy().copy(), m.bias.detach().numpy().copy()))
    return out


def ref_params(layers):
    return [a for layer in layers if layer[0] != "relu" for a in layer[1:]]


# ----------------------------------------------------------------------------- the runs
def run_both(model, x, y):
    layers = ref_layers(model)
    opt = optim.SGD(model.parameters(), lr=LR)
    loss_fn = nn.CrossEntropyLoss()
    xt = dropcore.tensor(x)
    for step in range(STEPS):
        opt.zero_grad()
        loss = loss_fn(model(xt), dropcore.tensor(y))
        loss.backward()
        opt.step()
        want = ref_step(layers, x, y)
        assert loss.dtype == dropcore.float64
        assert abs(loss.item() - want) <= TOL, f"step {step}: loss {loss.item()} vs reference {want}"
    for p, q in zip(model.parameters(), ref_params(layers)):
        np.testing.assert_allclose(p.detach().numpy(), q, rtol=0, atol=TOL)
    return want


def test_d2l_mlp_float64_tracks_numpy_for_50_sgd_steps():
    dropcore.manual_seed(0)
    model = nn.Sequential(
        nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Dropout(0.2),
        nn.Linear(256, 256), nn.ReLU(), nn.Dropout(0.5), nn.Linear(256, 10),
    ).double()
    model.eval()  # dropout off (the identity); Linear/ReLU behave as in training
    rng = np.random.default_rng(0)
    x = rng.random((64, 1, 28, 28))
    y = rng.integers(0, 10, 64)
    first = ref_step(ref_layers(model), x, y)
    last = run_both(model, x, y)
    assert last < 0.8 * first  # the run really trained, so the comparison covers moving weights


def create_model(with_batchnorm, nc=32, depth=16):
    # the notes' create_model (EE-559, "Going deeper", slide 44)
    modules = []
    modules.append(nn.Linear(2, nc))
    if with_batchnorm:
        modules.append(nn.BatchNorm1d(nc))
    modules.append(nn.ReLU())
    for d in range(depth):
        modules.append(nn.Linear(nc, nc))
        if with_batchnorm:
            modules.append(nn.BatchNorm1d(nc))
        modules.append(nn.ReLU())
    modules.append(nn.Linear(nc, 2))
    return nn.Sequential(*modules)


@pytest.mark.parametrize("with_batchnorm,std", [(False, 0.2), (True, 1.0)])
def test_notes_create_model_float64_tracks_numpy_for_50_sgd_steps(with_batchnorm, std):
    dropcore.manual_seed(1)
    model = create_model(with_batchnorm).double()
    for p in model.parameters():
        p.data.normal_(0, std)
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, (100, 2))
    y = ((x**2).sum(1) > 2 / np.pi).astype(np.int64)
    first = ref_step(ref_layers(model), x, y)
    last = run_both(model, x, y)
    assert np.isfinite(last) and last < first
