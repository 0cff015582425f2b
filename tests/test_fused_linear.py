"""The fused linear epilogue (``Sequential``'s ``Linear, ReLU[, Dropout]`` runs, the Rust
kernels in ``rust/epilogue.rs``) against the ops run one by one, bit for bit, and against
finite differences.

The unfused reference is the same model called module by module (an instance
``forward`` that loops over the children), so the two differ only in the fusion: same
weights, same generator, same words.
"""

import gc

import numpy as np
import pytest
from gradcheck import gradcheck

import dropcore
from dropcore import _core, nn
from dropcore._ops_linalg import _linear_relu
from dropcore.tensor import Tensor


def _chain(model):
    """``model`` called module by module (never fused)."""

    def forward(x):
        for m in model._modules.values():
            x = m(x)
        return x

    return forward


def _mlp(dtype, p1=0.2, p2=0.5, bias=True, inverted=True, seed=0, tail=True):
    dropcore.manual_seed(seed)
    mods = [nn.Linear(12, 9, bias=bias, dtype=dtype), nn.ReLU(), nn.Dropout(p1, inverted=inverted),
            nn.Linear(9, 7, bias=bias, dtype=dtype), nn.ReLU(), nn.Dropout(p2, inverted=inverted)]
    if tail:
        mods.append(nn.Linear(7, 3, dtype=dtype))
    return nn.Sequential(*mods)


def _run(model, x, fused, gen_seed=5, train=True):
    """Output, input gradient, parameter gradients and the generator after one pass."""
    model.train(train)
    for p in model.parameters():
        p.grad = None
    gen = dropcore.random.default_generator
    gen.manual_seed(gen_seed)
    xt = Tensor(x.copy(), requires_grad=True)
    out = model(xt) if fused else _chain(model)(xt)
    w = np.random.default_rng(1).standard_normal(out.shape).astype(x.dtype)
    (out * Tensor(w)).sum().backward()
    return out, xt.grad._data, [p.grad._data.copy() for p in model.parameters()], gen.get_state()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(33, 12), (12,), (2, 5, 12), (0, 12)])
@pytest.mark.parametrize("p1, p2, inverted, bias", [(0.2, 0.5, True, True), (0.9, 0.1, False, True), (0.5, 0.5, True, False)])
def test_fused_training_pass_is_bit_identical_to_the_chain(dtype, shape, p1, p2, inverted, bias):
    x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    x.flat[::7] = 0.0  # exact zeros reach the ReLU's kink
    model = _mlp(dtype, p1, p2, bias, inverted)
    a = _run(model, x, fused=True)
    b = _run(model, x, fused=False)
    assert a[0].grad_fn.name() == b[0].grad_fn.name() == "AddmmBackward0"
    np.testing.assert_array_equal(a[0]._data, b[0]._data)
    np.testing.assert_array_equal(a[1], b[1])
    for ga, gb in zip(a[2], b[2]):
        np.testing.assert_array_equal(ga, gb)
    assert a[3] == b[3]  # the same number of words drawn


def test_the_fused_run_is_taken_and_draws_the_words_dropout_draws():
    model = _mlp(np.float32)
    x = Tensor(np.ones((4, 12), np.float32))
    hidden = model[:3](x)  # Linear, ReLU, Dropout with no Linear after it: not fused
    assert hidden.grad_fn.name() == "NativeDropoutBackward0"
    assert hidden.grad_fn.next_functions[0][0].name() == "ReluBackward0"
    out = model(x)
    node = out.grad_fn.next_functions[0][0]  # the second Linear's input
    assert node.name() == "NativeDropoutBackward0"
    assert [n.name() if n is not None else None for n, _ in node.next_functions][:2] == [
        "NativeDropoutBackward0", "AccumulateGrad"]  # straight to the first run and the weight
    gen = dropcore.Generator(3)
    before = gen.get_state()
    y = _linear_relu(x, model[0].weight, model[0].bias, 0.5, gen)
    assert gen.get_state()[1] - before[1] == (y.numel() + 1) // 2


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_eval_and_no_grad_are_bit_identical(dtype):
    x = np.random.default_rng(2).standard_normal((50, 12)).astype(dtype)
    model = _mlp(dtype)
    model.eval()
    with dropcore.no_grad():
        a = model(Tensor(x))
        b = _chain(model)(Tensor(x))
    assert a.grad_fn is None
    np.testing.assert_array_equal(a._data, b._data)
    a = _run(model, x, fused=True, train=False)
    b = _run(model, x, fused=False, train=False)
    for u, v in zip(a[2], b[2]):
        np.testing.assert_array_equal(u, v)


def test_special_values_follow_numpy_relu_and_dropout():
    x = np.array([[np.nan, -0.0, 0.0, np.inf, -np.inf, 1e-45, -1e-45, 3.0, -3.0, 1.0, 2.0, -2.0]], np.float32)
    x = np.repeat(x, 9, axis=0)
    model = _mlp(np.float32, tail=True)
    with dropcore.no_grad():
        for m in (model[0], model[3]):
            m.bias.data._data[:] = 0.0
    with np.errstate(all="ignore"):  # inf * 0 in the GEMMs
        a, b = _run(model, x, True), _run(model, x, False)
    np.testing.assert_array_equal(a[0]._data, b[0]._data)  # NaN in the same places
    for u, v in zip(a[2], b[2]):
        np.testing.assert_array_equal(u, v)


@pytest.mark.parametrize("p", [0.0, 0.3])
def test_fused_node_gradcheck(p):
    rng = np.random.default_rng(4)
    x, w, b = rng.standard_normal((6, 5)), rng.standard_normal((4, 5)), rng.standard_normal(4)
    gen = dropcore.Generator(11)
    gradcheck(lambda x, w, b: _linear_relu(x, w, b, p, gen), x, w, b, replay=gen)


def _hooked(model):
    model[1].register_forward_hook(lambda m, args, out: None)


class _MyReLU(nn.ReLU):
    pass


@pytest.mark.parametrize("change", ["hook", "subclass", "instance_forward", "dropout_last", "p_zero"])
def test_runs_that_cannot_be_told_apart_are_the_only_ones_fused(change):
    model = _mlp(np.float32, tail=change != "dropout_last")
    if change == "hook":
        _hooked(model)
    elif change == "subclass":
        model[1] = _MyReLU()
    elif change == "instance_forward":
        d = model[2]
        object.__setattr__(d, "forward", lambda x, _d=d: nn.Dropout.forward(_d, x))
    elif change == "p_zero":
        model[2].p = 0.0
    x = np.random.default_rng(3).standard_normal((8, 12)).astype(np.float32)
    a, b = _run(model, x, True), _run(model, x, False)
    np.testing.assert_array_equal(a[0]._data, b[0]._data)
    for u, v in zip(a[2], b[2]):
        np.testing.assert_array_equal(u, v)
    assert a[3] == b[3]
    out = model(Tensor(x))
    first = out.grad_fn
    while first.next_functions and first.next_functions[0][0] is not None:
        first = first.next_functions[0][0]
    names = []
    node = out.grad_fn
    while node is not None:
        names.append(node.name())
        node = node.next_functions[0][0] if node.next_functions else None
    if change in ("hook", "subclass"):
        assert names[-3:] == ["NativeDropoutBackward0", "ReluBackward0", "AddmmBackward0"]
    elif change == "instance_forward":  # Linear, ReLU still fused; the Dropout runs alone
        assert names[-2:] == ["NativeDropoutBackward0", "ReluBackward0"]
    elif change == "p_zero":  # p = 0: the identity, Linear + ReLU fused
        assert names[-1] == "ReluBackward0"
    else:  # the last Dropout is not followed by a Linear: it runs alone
        assert names[:2] == ["NativeDropoutBackward0", "ReluBackward0"]


def test_in_place_change_of_the_output_is_caught_as_unfused():
    model = nn.Sequential(nn.Linear(5, 4), nn.ReLU())
    x = Tensor(np.ones((3, 5), np.float32))
    for run in (model, _chain(model)):
        y = run(x)
        y.add_(1.0)
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            y.sum().backward()


def test_dtype_errors_are_linear_s():
    model = nn.Sequential(nn.Linear(5, 4), nn.ReLU())
    with pytest.raises(RuntimeError, match="same dtype"):
        model(Tensor(np.ones((3, 5), np.float64)))
    with pytest.raises(RuntimeError, match="cannot be multiplied"):
        model(Tensor(np.ones((3, 6), np.float32)))


# ----------------------------------------------------------------------------- kernels
def _specials(dtype, n=1000):
    rng = np.random.default_rng(7)
    x = rng.standard_normal(n).astype(dtype)
    bits = np.uint32 if dtype == np.float32 else np.uint64
    nan_neg = np.array(0xFFC00000 if dtype == np.float32 else 0xFFF8000000000000, bits).view(dtype)
    x[:9] = [np.nan, nan_neg, -0.0, 0.0, np.inf, -np.inf, np.finfo(dtype).tiny, -np.finfo(dtype).tiny, 1.0]
    return x


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_kernel_is_numpy_maximum_bit_for_bit(dtype):
    x = _specials(dtype)
    bits = np.uint32 if dtype == np.float32 else np.uint64
    want = np.maximum(x, dtype(0)).view(bits)
    np.testing.assert_array_equal(_core.relu(x).view(bits), want)
    np.testing.assert_array_equal(dropcore.tensor(x).relu()._data.view(bits), want)
    z = x.reshape(40, 25).copy()
    b = np.linspace(-1, 1, 25).astype(dtype)
    _core.bias_relu_(z, b)
    np.testing.assert_array_equal(z.view(bits), np.maximum(x.reshape(40, 25) + b, dtype(0)).view(bits))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("phase", [0, 1])
def test_relu_dropout_kernel_is_dropout_of_the_relu(dtype, phase):
    x = _specials(dtype, 300_001)  # parallel chunks, odd length
    r = np.maximum(x, dtype(0))
    want = _core.dropout(r, 0.3, 9, 77, True, False, None, phase)
    got = _core.relu_dropout_(x.copy(), 0.3, 9, 77, True, phase)
    np.testing.assert_array_equal(got, want)
    g = np.random.default_rng(1).standard_normal(x.shape).astype(dtype)
    chain = dropcore.tensor(r)._data  # the unfused backward: dropout's, then ReLU's mask
    gd = _core.dropout(g, 0.3, 9, 77, True, False, None, phase)
    want_g = np.where(chain > 0, gd, dtype(0))
    np.testing.assert_array_equal(_core.relu_mask_backward(got, g, 1 / 0.7), want_g)


def test_kernel_argument_errors():
    z = np.ones((4, 3), np.float32)
    with pytest.raises(ValueError, match="bias"):
        _core.bias_relu_(z, np.ones(4, np.float32))
    with pytest.raises(TypeError, match="dtype"):
        _core.bias_relu_(z, np.ones(3, np.float64))
    ro = z.copy()
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        _core.bias_relu_(ro)
    with pytest.raises(ValueError, match="read-only"):
        _core.relu_dropout_(ro, 0.5, 1, 0)
    with pytest.raises(ValueError, match="C-contiguous"):
        _core.relu_dropout_(np.ones((4, 6), np.float32)[:, ::2], 0.5, 1, 0)
    with pytest.raises(ValueError, match="shape"):
        _core.relu_mask_backward(z, np.ones((3, 4), np.float32))
    with pytest.raises(ValueError, match="scale"):
        _core.relu_mask_backward(z, z, 0.5)
    with pytest.raises(ValueError, match="between 0 and 1"):
        _core.relu_dropout_(z, 1.5, 1, 0)


# ----------------------------------------------------------------------------- recycled gradients
def _train(hold, steps=4, zero=lambda model, opt: opt.zero_grad()):
    """Losses, parameters and gradients of a few SGD steps; ``hold`` keeps a reference
    to every gradient (array, Tensor or view), so none can be recycled."""
    dropcore.manual_seed(0)
    model = nn.Sequential(nn.Linear(300, 64), nn.ReLU(), nn.Dropout(0.3), nn.Linear(64, 256), nn.ReLU(),
                          nn.Linear(256, 10))
    opt = dropcore.optim.SGD(model.parameters(), lr=0.1)
    x = Tensor(np.random.default_rng(0).standard_normal((32, 300)).astype(np.float32))
    y = np.arange(32) % 10
    held, snaps = [], []
    for _ in range(steps):
        zero(model, opt)
        nn.CrossEntropyLoss()(model(x), y).backward()
        if hold is not None:
            held.append([hold(p.grad) for p in model.parameters()])
            snaps.append([p.grad._data.copy() for p in model.parameters()])
        opt.step()
    return model, held, snaps


@pytest.mark.parametrize("hold", [lambda g: g, lambda g: g._data, lambda g: g.numpy()[1:], lambda g: g.data])
def test_a_gradient_the_caller_still_holds_is_never_reused(hold):
    model, held, snaps = _train(hold)
    for step, (h, snap) in enumerate(zip(held, snaps)):
        for obj, want in zip(h, snap):
            arr = obj._data if isinstance(obj, Tensor) else obj
            np.testing.assert_array_equal(arr, want[1:] if arr.shape != want.shape else want, err_msg=f"step {step}")
        if step:  # every step's gradients are arrays of their own
            for a, b in zip(h, held[step - 1]):
                a = a._data if isinstance(a, Tensor) else a
                b = b._data if isinstance(b, Tensor) else b
                assert not np.shares_memory(a, b)


@pytest.mark.parametrize("zero", [lambda model, opt: opt.zero_grad(), lambda model, opt: model.zero_grad()])
def test_recycled_gradient_buffers_give_the_same_training(zero):
    from dropcore.tensor import _SPARE_GRADS

    recycled, _, _ = _train(None, zero=zero)

    def spares():
        return sum(id(p) in _SPARE_GRADS for p in recycled.parameters())

    assert spares() == 0  # each spare went back into the next step's gradient
    recycled.zero_grad()
    assert spares() == 2  # the two weights of >= 64 KiB
    plain, _, _ = _train(lambda g: g, zero=zero)
    for a, b in zip(recycled.parameters(), plain.parameters()):
        np.testing.assert_array_equal(a._data, b._data)
    w = recycled[3].weight
    recycled[3].weight = nn.Parameter(np.zeros((256, 64), np.float32))  # the spare belongs to the old one
    key = id(w)
    del w
    gc.collect()
    assert key not in _SPARE_GRADS and spares() == 1  # dropped with its tensor


# ----------------------------------------------------------------------------- plain cross-entropy
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("tdtype", [np.int64, np.int32, "tensor"])
def test_plain_cross_entropy_is_the_general_rule_bit_for_bit(monkeypatch, dtype, reduction, tdtype):
    from dropcore import losses

    rng = np.random.default_rng(5)
    z = (rng.standard_normal((64, 10)) * 4).astype(dtype)
    z[3, 2] = np.inf
    z[5] = -np.inf
    t = rng.integers(0, 10, 64)
    t = Tensor(t) if tdtype == "tensor" else t.astype(tdtype)

    def run():
        zt = Tensor(z.copy(), requires_grad=True)
        with np.errstate(all="ignore"):
            loss = losses.cross_entropy(zt, t, reduction=reduction)
            (loss * 1.7).backward()
        return loss._data, zt.grad._data, loss.grad_fn.name()

    fast = run()
    monkeypatch.setattr(losses, "_cross_entropy_plain", lambda *a: None)
    general = run()
    np.testing.assert_array_equal(fast[0], general[0])
    np.testing.assert_array_equal(fast[1], general[1])
    assert fast[2] == general[2] == "CrossEntropyLossBackward0"


def test_plain_cross_entropy_leaves_the_other_cases_to_the_general_rule():
    from dropcore import losses

    z = Tensor(np.zeros((4, 3), np.float32), requires_grad=True)
    assert losses._cross_entropy_plain(z, z._data, np.array([0, 1, 2, 3]), -100, "mean") is None  # out of range
    assert losses._cross_entropy_plain(z, z._data, np.array([0, 1, 2, 1]), 1, "mean") is None  # an ignored one
    assert losses._cross_entropy_plain(z, z._data, np.array([0.0, 1, 2, 1]), -100, "mean") is None  # probabilities
    assert losses._cross_entropy_plain(z, z._data, np.array([0, 1]), -100, "mean") is None  # wrong length
    with pytest.raises(IndexError, match="Target 3 is out of bounds"):
        losses.cross_entropy(z, np.array([0, 1, 2, 3]))
    loss = losses.cross_entropy(z, np.array([0, 1, 2, 1]), ignore_index=1)
    assert loss.item() == pytest.approx(np.log(3))


@pytest.mark.parametrize("tail", [True, False])
def test_inference_buffers_never_reach_the_caller(tail):
    """With grad mode off, a fused run's output that the next Linear consumes goes into a
    buffer kept by the Sequential; results handed out must stay fresh and unchanged."""
    model = _mlp(np.float32, tail=tail)
    model.eval()
    rng = np.random.default_rng(8)
    xs = [rng.standard_normal((40, 12)).astype(np.float32) for _ in range(3)]
    with dropcore.no_grad():
        outs = [model(Tensor(x)) for x in xs]
        again = [model(Tensor(x)) for x in xs]
    for x, a, b in zip(xs, outs, again):
        np.testing.assert_array_equal(a._data, _chain(model)(Tensor(x))._data)
        np.testing.assert_array_equal(a._data, b._data)
        assert not np.shares_memory(a._data, b._data)
    assert not np.shares_memory(outs[0]._data, outs[1]._data)
    model.train()  # training with grad mode off: dropout folded, the same words as the chain
    with dropcore.no_grad():
        dropcore.manual_seed(3)
        a = model(Tensor(xs[0]))
        dropcore.manual_seed(3)
        b = _chain(model)(Tensor(xs[0]))
    np.testing.assert_array_equal(a._data, b._data)
