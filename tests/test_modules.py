"""nn modules of issue 9: activations against their closed forms, containers, the Module API
(to/cpu/half, hooks, buffers), pickling/deepcopy (masks reproduce), nn.utils."""

import copy
import math
import pickle

import numpy as np
import pytest

import dropcore
import dropcore.nn as nn
import dropcore.nn.functional as F

from gradcheck import gradcheck

rng = np.random.default_rng(5)
XS = np.concatenate([np.linspace(-12, 12, 97), rng.standard_normal(20) * 3])


# ----------------------------------------------------------------------------- activations
def test_gelu_exact_matches_math_erf():
    # x * Phi(x), Phi(x) = (1 + erf(x / sqrt 2)) / 2 = erfc(-x / sqrt 2) / 2 (no cancellation for x < 0).
    want = np.array([x * 0.5 * math.erfc(-x / math.sqrt(2)) for x in XS])
    got = nn.GELU()(dropcore.tensor(XS)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=0)
    pos = XS[XS > 0]
    np.testing.assert_allclose(F.gelu(dropcore.tensor(pos)).data,
                               [x * 0.5 * (1 + math.erf(x / math.sqrt(2))) for x in pos], rtol=1e-14)
    # Far in the left tail the value is tiny but its relative accuracy holds (erfc, not 1 - erf).
    x = -30.0
    tail = x * 0.5 * math.erfc(-x / math.sqrt(2))
    np.testing.assert_allclose(F.gelu(dropcore.tensor(np.array([x]))).data, [tail], rtol=1e-12)


def test_gelu_tanh_and_the_rest_closed_forms():
    k = math.sqrt(2 / math.pi)
    cases = [
        (lambda t: F.gelu(t, approximate="tanh"), lambda x: 0.5 * x * (1 + math.tanh(k * (x + 0.044715 * x**3)))),
        (lambda t: F.elu(t, alpha=0.7), lambda x: x if x > 0 else 0.7 * (math.exp(x) - 1)),
        (F.selu, lambda x: 1.0507009873554805 * (x if x > 0 else 1.6732632423543772 * (math.exp(x) - 1))),
        (F.silu, lambda x: x / (1 + math.exp(-x))),
        (lambda t: F.softplus(t, beta=2.0, threshold=5.0), lambda x: x if 2 * x > 5 else math.log1p(math.exp(2 * x)) / 2),
    ]
    for fn, ref in cases:
        np.testing.assert_allclose(fn(dropcore.tensor(XS)).data, [ref(x) for x in XS], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize(
    "module",
    [nn.GELU(), nn.GELU("tanh"), nn.ELU(0.5), nn.SELU(), nn.SiLU(), nn.Softplus(beta=1.5)],
    ids=lambda m: repr(m),
)
def test_activation_gradients(module):
    gradcheck(module, rng.standard_normal((3, 5)) * 2)


def test_activation_errors_dtype_and_inplace():
    with pytest.raises(RuntimeError, match="approximate argument must be either none or tanh"):
        F.gelu(dropcore.tensor([1.0]), approximate="fast")
    x = dropcore.tensor([-1.0, 2.0])
    assert F.elu(x).dtype == np.float32 and F.gelu(x).dtype == np.float32
    y = nn.ELU(inplace=True)(x)
    assert y is x and x.numpy()[1] == 2.0 and x.numpy()[0] == pytest.approx(math.expm1(-1), rel=1e-6)
    with pytest.raises(RuntimeError, match="in-place"):
        nn.SiLU(inplace=True)(dropcore.tensor([1.0], requires_grad=True))
    # Inside a network (a non-leaf input) in-place activations are recorded: same gradients.
    net = nn.Sequential(nn.Linear(3, 4), nn.ELU(inplace=True), nn.Linear(4, 1), nn.SiLU(inplace=True))
    twin = nn.Sequential(nn.Linear(3, 4), nn.ELU(), nn.Linear(4, 1), nn.SiLU())
    twin.load_state_dict(net.state_dict())
    xin = dropcore.randn(5, 3)
    net(xin).sum().backward()
    twin(xin).sum().backward()
    for a, b in zip(net.parameters(), twin.parameters()):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-6)
    h = dropcore.tensor([-1.0, 2.0], requires_grad=True) * 1
    assert F.selu(h, inplace=True) is h and h.detach().numpy()[1] == pytest.approx(2 * 1.0507009873554805)
    with dropcore.no_grad():
        leaf = dropcore.tensor([-2.0, 3.0], requires_grad=True)
        assert nn.SiLU(inplace=True)(leaf) is leaf  # allowed without a graph, as PyTorch
    assert repr(nn.GELU("tanh")) == "GELU(approximate='tanh')" and repr(nn.ELU()) == "ELU(alpha=1.0)"


def test_softmax_without_dim_warns_and_infers_like_pytorch():
    x = dropcore.tensor(rng.standard_normal((2, 3)))
    with pytest.warns(UserWarning, match="Implicit dimension choice for softmax"):
        out = nn.Softmax()(x)
    np.testing.assert_allclose(out.numpy().sum(1), [1, 1], rtol=1e-12)  # 2-D input: dim 1
    with pytest.warns(UserWarning, match="Implicit dimension choice for log_softmax"):
        out = nn.LogSoftmax()(dropcore.tensor(rng.standard_normal((4, 2, 3))))
    np.testing.assert_allclose(np.exp(out.numpy()).sum(0), np.ones((2, 3)), rtol=1e-12)  # 3-D input: dim 0
    assert repr(nn.Softmax(dim=1)) == "Softmax(dim=1)"


def test_selu_keeps_standard_normal_statistics():
    # SELU's fixed point: N(0, 1) inputs give mean ~0 and variance ~1 (Klambauer et al.).
    z = dropcore.randn(400_000, dtype=np.float64, generator=dropcore.Generator(1))
    out = F.selu(z).numpy()
    assert abs(out.mean()) < 0.01 and abs(out.var() - 1) < 0.01


# ----------------------------------------------------------------------------- containers
def test_module_list_and_dict_register_children():
    blocks = nn.ModuleList([nn.Linear(3, 3) for _ in range(2)])
    blocks.append(nn.Linear(3, 2))
    heads = nn.ModuleDict({"a": nn.Linear(2, 1)})
    heads["b"] = nn.Linear(2, 4)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks, self.heads = blocks, heads

        def forward(self, x):
            for b in self.blocks:
                x = b(x)
            return {k: h(x) for k, h in self.heads.items()}

    net = Net()
    keys = list(net.state_dict())
    assert keys[:2] == ["blocks.0.weight", "blocks.0.bias"] and "heads.b.weight" in keys
    assert len(list(net.parameters())) == 10
    out = net(dropcore.randn(4, 3))
    assert out["a"].shape == (4, 1) and out["b"].shape == (4, 4)
    assert len(blocks) == 3 and isinstance(blocks[-1], nn.Linear) and len(blocks[:2]) == 2
    del blocks[0]
    assert list(blocks._modules) == ["0", "1"]
    blocks.insert(0, nn.ReLU())
    assert isinstance(blocks[0], nn.ReLU) and len(blocks) == 3
    assert "a" in heads and list(heads.keys()) == ["a", "b"] and isinstance(heads.pop("a"), nn.Linear)
    with pytest.raises(TypeError):
        nn.ModuleList([nn.ReLU(), "not a module"])
    with pytest.raises(IndexError):
        blocks[7]
    assert repr(nn.ModuleList([nn.ReLU()])) == "ModuleList(\n  (0): ReLU()\n)"


def test_sequential_editing_like_pytorch():
    s = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1))
    s.insert(-1, nn.Tanh())  # before the last layer, as list.insert and PyTorch
    assert [type(m).__name__ for m in s] == ["Linear", "ReLU", "Tanh", "Linear"]
    del s[1]
    assert list(s._modules) == ["0", "1", "2"] and isinstance(s[1], nn.Tanh)
    s.extend([nn.Sigmoid()])
    assert isinstance(s[-1], nn.Sigmoid) and isinstance(s[1:], nn.Sequential)


def test_dropout_nd_is_importable_from_pytorchs_path():
    from dropcore.nn.modules.dropout import _DropoutNd
    from dropcore.nn.modules.module import Module

    net = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.2), nn.Dropout2d(0.1), nn.AlphaDropout(0.1))
    assert [type(m).__name__ for m in net.modules() if isinstance(m, _DropoutNd)] == ["Dropout", "Dropout2d", "AlphaDropout"]
    assert Module is nn.Module


# ----------------------------------------------------------------------------- Module API
def test_to_dtype_device_and_half():
    net = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    assert net.to(np.float64) is net
    assert net[0].weight.dtype == np.float64 and net[1].running_mean.dtype == np.float64
    net.to("cpu", dtype=dropcore.float32)
    assert net[0].weight.dtype == np.float32
    net.to(dropcore.zeros(1, dtype=np.float64))
    assert net[0].bias.dtype == np.float64
    net.to(device="cpu").cpu()
    assert net[0].weight.dtype == np.float64
    with pytest.raises(TypeError, match="float16"):
        net.half()
    with pytest.raises(TypeError, match="float16"):
        net.to(np.float16)
    with pytest.raises(TypeError, match="floating point"):
        net.to(np.int64)
    with pytest.raises(RuntimeError, match="CPU-only"):
        net.to("cuda")
    assert net[0].weight.dtype == np.float64  # failed calls changed nothing


def test_non_persistent_buffers_stay_out_of_state_dict():
    m = nn.Module()
    m.register_buffer("kept", np.ones(2))
    m.register_buffer("scratch", np.zeros(3), persistent=False)
    assert list(m.state_dict()) == ["kept"] and [n for n, _ in m.named_buffers()] == ["kept", "scratch"]
    m.double()
    assert m.scratch.dtype == np.float64
    with pytest.raises(KeyError):
        m.register_buffer("a.b", np.ones(1))
    m.load_state_dict({"kept": np.full(2, 5.0)})
    np.testing.assert_array_equal(m.kept, [5.0, 5.0])


def test_load_state_dict_errors_are_pytorchs_and_change_nothing():
    net = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    before = {k: v.numpy().copy() for k, v in net.state_dict().items()}
    bad = {k: np.zeros_like(v) for k, v in before.items()}
    bad["0.weight"] = np.zeros((5, 3))
    bad["extra"] = np.zeros(1)
    del bad["1.bias"]
    with pytest.raises(RuntimeError) as info:
        net.load_state_dict(bad)
    assert str(info.value) == (
        'Error(s) in loading state_dict for Sequential:\n\tMissing key(s) in state_dict: "1.bias". '
        '\n\tUnexpected key(s) in state_dict: "extra". '
        "\n\tsize mismatch for 0.weight: copying a param with shape (5, 3) from checkpoint, "
        "the shape in current model is (2, 3).")
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), before[k])  # nothing was half-loaded
    keys = net.load_state_dict({"0.weight": np.ones((2, 3))}, strict=False)
    assert keys.missing_keys[:1] == ["0.bias"] and keys.unexpected_keys == []
    np.testing.assert_array_equal(net[0].weight.detach().numpy(), np.ones((2, 3)))
    src = np.arange(6.0).reshape(2, 3)
    net.load_state_dict({"0.weight": src}, strict=False, assign=True)
    assert np.shares_memory(net[0].weight.detach().numpy(), src) and net[0].weight.dtype == dropcore.float64


def test_forward_hooks_see_and_replace_values():
    lin = nn.Linear(2, 2)
    seen = []
    h1 = lin.register_forward_hook(lambda mod, args, out: seen.append((mod, args[0].shape, out.shape)))
    h2 = lin.register_forward_pre_hook(lambda mod, args: (args[0] * 0,))
    out = lin(dropcore.ones(5, 2))
    assert seen == [(lin, (5, 2), (5, 2))]
    np.testing.assert_allclose(out.data, np.broadcast_to(lin.bias.data, (5, 2)))  # input was zeroed
    h2.remove()
    h3 = lin.register_forward_hook(lambda mod, args, out: out * 2)
    np.testing.assert_allclose(lin(dropcore.ones(1, 2)).data, 2 * (lin.weight.data.sum(1) + lin.bias.data)[None])
    h1.remove()
    h3.remove()
    lin(dropcore.ones(1, 2))
    assert len(seen) == 2


def test_apply_named_modules_requires_grad_zero_grad():
    net = nn.Sequential(nn.Linear(2, 3), nn.Sequential(nn.ReLU(), nn.Linear(3, 1)))
    assert [n for n, _ in net.named_modules()] == ["", "0", "1", "1.0", "1.1"]
    assert net.get_submodule("1.1") is net[1][1]
    net.apply(lambda m: nn.init.constant_(m.weight, 0.5) if isinstance(m, nn.Linear) else None)
    assert (net[1][1].weight.detach().numpy() == 0.5).all()
    net.requires_grad_(False)
    assert not any(p.requires_grad for p in net.parameters())
    net.requires_grad_()
    net(dropcore.ones(4, 2)).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


# ----------------------------------------------------------------------------- pickling
def _model(gen):
    return nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Dropout(0.5, generator=gen), nn.Linear(8, 3),
                         nn.AlphaDropout(0.2, generator=gen))


@pytest.mark.parametrize("clone", [copy.deepcopy, lambda m: pickle.loads(pickle.dumps(m))], ids=["deepcopy", "pickle"])
def test_copied_model_reproduces_the_same_masks(clone):
    gen = dropcore.Generator(1234)
    model = _model(gen)
    x = dropcore.randn(5, 6, generator=dropcore.Generator(9))
    model(x)  # advance the generator before copying
    twin = clone(model)
    assert twin[2].generator is not gen and twin[2].generator is twin[4].generator  # sharing kept
    assert twin[2].generator.get_state() == gen.get_state()
    for _ in range(3):
        np.testing.assert_array_equal(twin(x).data, model(x).data)
    # The copy is independent: stepping one leaves the other where it was.
    model(x)
    assert twin[2].generator.get_state() != gen.get_state()


_ARGS = {"Linear": (3, 2), "Maxout": (3, 2, 2), "BatchNorm1d": (3,), "GaussianNoise": (0.1,),
         "DropBlock2d": (0.1, 3), "DropConnectLinear": (3, 2, 0.5)}
_MODULES = sorted(n for n in nn.__all__ if isinstance(getattr(nn, n), type) and issubclass(getattr(nn, n), nn.Module))


@pytest.mark.parametrize("name", _MODULES)
def test_every_module_pickles_and_deep_copies(name):
    m = getattr(nn, name)(*_ARGS.get(name, ()))
    if hasattr(m, "generator"):
        m.generator = dropcore.Generator(11, offset=5)
    for c in (pickle.loads(pickle.dumps(m)), copy.deepcopy(m)):
        assert type(c) is type(m) and repr(c) == repr(m) and c.training == m.training
        assert list(c.state_dict()) == list(m.state_dict())
        for k, v in m.state_dict().items():
            np.testing.assert_array_equal(c.state_dict()[k].numpy(), v.numpy())
            assert not np.shares_memory(c.state_dict()[k].numpy(), v.numpy())
        if hasattr(m, "generator"):
            assert c.generator.get_state() == (11, 5) and c.generator is not m.generator


def test_generator_pickles_its_state_and_every_module_pickles():
    g = dropcore.Generator(7, offset=123)
    g2 = pickle.loads(pickle.dumps(g))
    assert g2.get_state() == (7, 123) and copy.copy(g).get_state() == (7, 123)
    g2.take(5)
    assert g.offset == 123
    modules = [nn.GELU(), nn.SELU(), nn.BatchNorm1d(3), nn.Dropout2d(0.3), nn.GaussianDropout(0.2),
               nn.DropConnectLinear(3, 2, 0.5), nn.CrossEntropyLoss(weight=np.ones(3)), nn.ModuleDict({"x": nn.Tanh()})]
    for m in modules:
        for c in (pickle.loads(pickle.dumps(m)), copy.deepcopy(m)):
            assert repr(c) == repr(m)
            for (k, a), (k2, b) in zip(m.state_dict().items(), c.state_dict().items()):
                assert k == k2 and np.array_equal(a.numpy(), b.numpy())


# ----------------------------------------------------------------------------- nn.utils
def _params_with_grads(grads):
    ps = []
    for g in grads:
        p = dropcore.Tensor(np.zeros_like(g), requires_grad=True)
        p.grad = dropcore.Tensor(g.copy())
        ps.append(p)
    return ps


def test_clip_grad_norm_follows_pytorchs_rule():
    grads = [rng.standard_normal((3, 4)), rng.standard_normal(5), rng.standard_normal((2, 2))]
    total = math.sqrt(sum(float((g**2).sum()) for g in grads))
    ps = _params_with_grads(grads)
    got = nn.utils.clip_grad_norm_(ps, max_norm=1.0)
    assert got.item() == pytest.approx(total, rel=1e-12)
    coef = 1.0 / (total + 1e-6)
    for p, g in zip(ps, grads):
        np.testing.assert_allclose(p.grad.data, g * coef, rtol=1e-12)
    # Below the limit the gradients are unchanged.
    ps = _params_with_grads(grads)
    nn.utils.clip_grad_norm_(iter(ps), max_norm=total * 2)
    for p, g in zip(ps, grads):
        np.testing.assert_allclose(p.grad.data, g, rtol=1e-12)


def test_clip_grad_norm_inf_norm_single_tensor_and_nonfinite():
    grads = [np.array([1.0, -7.0]), np.array([3.0])]
    ps = _params_with_grads(grads)
    assert nn.utils.clip_grad_norm_(ps, 3.5, norm_type=float("inf")).item() == 7.0
    np.testing.assert_allclose(ps[0].grad.data, np.array([1.0, -7.0]) * 3.5 / (7 + 1e-6))
    one = _params_with_grads([np.array([3.0, 4.0])])[0]
    assert nn.utils.clip_grad_norm_(one, 10.0).item() == 5.0
    bad = _params_with_grads([np.array([np.nan, 1.0])])
    with pytest.raises(RuntimeError, match="non-finite"):
        nn.utils.clip_grad_norm_(bad, 1.0, error_if_nonfinite=True)
    assert nn.utils.clip_grad_norm_([dropcore.zeros(2, requires_grad=True)], 1.0).item() == 0.0


def test_clip_grad_value_and_vector_round_trip():
    ps = _params_with_grads([np.array([-3.0, 0.2, 5.0])])
    assert nn.utils.clip_grad_value_(ps, 1.0) is None
    np.testing.assert_array_equal(ps[0].grad.data, [-1.0, 0.2, 1.0])
    net = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 1))
    vec = nn.utils.parameters_to_vector(net.parameters())
    assert vec.shape == (3 * 2 + 2 + 2 + 1,)
    np.testing.assert_array_equal(vec.data[:6], net[0].weight.data.reshape(-1))
    nn.utils.vector_to_parameters(dropcore.arange(11, dtype=np.float32), net.parameters())
    np.testing.assert_array_equal(net[1].bias.data, [10.0])
    np.testing.assert_array_equal(net[0].weight.data, np.arange(6).reshape(2, 3))
    with pytest.raises(TypeError, match="expected dropcore.Tensor"):
        nn.utils.vector_to_parameters(np.zeros(11), net.parameters())
    # The vector is in the graph: gradients flow back to every parameter.
    nn.utils.parameters_to_vector(net.parameters()).sum().backward()
    assert all((p.grad.numpy() == 1).all() for p in net.parameters())
