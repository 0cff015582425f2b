"""Tensor and autograd: every op against finite differences, graph semantics like PyTorch's."""

import numpy as np
import pytest

import dropcore

import philox_ref
from gradcheck import gradcheck

rng = np.random.default_rng(0)
A = rng.standard_normal((3, 4))
B = rng.standard_normal((3, 4))
P = rng.uniform(0.5, 2.0, (3, 4))
M = rng.standard_normal((4, 5))


@pytest.mark.parametrize(
    "name,fn,inputs",
    [
        ("add", lambda a, b: a + b, (A, B)),
        ("add broadcast", lambda a, b: a + b, (A, B[0])),
        ("sub", lambda a, b: a - b, (A, B)),
        ("rsub scalar", lambda a: 2.0 - a, (A,)),
        ("mul broadcast", lambda a, b: a * b, (A, B[:, :1])),
        ("div", lambda a, b: a / b, (A, P)),
        ("rdiv", lambda a: 1.5 / a, (P,)),
        ("neg", lambda a: -a, (A,)),
        ("pow scalar", lambda a: a**3, (A,)),
        ("pow tensor", lambda a, b: a**b, (P, B)),
        ("matmul", lambda a, b: a @ b, (A, M)),
        ("matmul vec", lambda a, b: a @ b, (A, M[:, 0])),
        ("vec matmul", lambda a, b: a @ b, (A[0], M)),
        ("batched matmul", lambda a, b: a.reshape(3, 2, 2) @ b.reshape(2, 2), (A, B[0])),
        ("sum all", lambda a: a.sum(), (A,)),
        ("sum dim", lambda a: a.sum(1), (A,)),
        ("sum keepdim", lambda a: a.sum(0, keepdim=True), (A,)),
        ("mean dims", lambda a: a.reshape(3, 2, 2).mean((0, 2)), (A,)),
        ("norm rows", lambda a: a.norm(2, 1), (A,)),
        ("norm all", lambda a: a.norm(), (A,)),
        ("norm p1", lambda a: a.norm(1, 0, keepdim=True), (A,)),
        ("norm p3", lambda a: a.norm(3, 1), (A,)),
        ("reshape", lambda a: a.reshape(2, 6) * a.reshape(2, 6), (A,)),
        ("view flatten", lambda a: a.view(3, 2, 2).flatten(1), (A,)),
        ("transpose", lambda a, b: a.T @ b, (A, B)),
        ("exp", lambda a: a.exp(), (A,)),
        ("log", lambda a: a.log(), (P,)),
        ("sqrt", lambda a: a.sqrt(), (P,)),
        ("relu", lambda a: a.relu(), (A,)),
        ("sigmoid", lambda a: a.sigmoid(), (A,)),
        ("tanh", lambda a: a.tanh(), (A,)),
        ("softmax", lambda a: a.softmax(1), (A,)),
        ("softmax dim0", lambda a: a.softmax(0), (A,)),
        ("log_softmax", lambda a: a.log_softmax(-1), (A,)),
        ("max dim", lambda a: a.max(1)[0], (A,)),
        ("max all", lambda a: a.max(), (A,)),
        ("index", lambda a: a[1:, ::2] * 2, (A,)),
        ("fancy index repeated", lambda a: a[[0, 0, 2]], (A,)),
        ("clamp", lambda a: a.clamp(-0.5, 0.5), (A,)),
        ("cat", lambda a, b: dropcore.cat([a, b], 1), (A, B)),
        ("stack", lambda a, b: dropcore.stack([a, b], 0), (A, B)),
        ("unsqueeze squeeze", lambda a: a.unsqueeze(1).squeeze(1) * a, (A,)),
        ("expand", lambda a: a.reshape(3, 4, 1).expand(3, 4, 2), (A,)),
        ("reuse", lambda a: a * a + a, (A,)),
    ],
)
def test_gradients_match_finite_differences(name, fn, inputs):
    gradcheck(fn, *inputs)


def test_seed_transcript_dropout_norm_backward():
    """Fleuret's EE-559 / dataflowr snippet: nn.Dropout(p=0.75), y.norm(2, 1).sum().backward()."""
    g = dropcore.Generator(2018)
    seed, offset = g.get_state()
    x = dropcore.full((3, 5), 1.0).requires_grad_()
    dropout = dropcore.nn.Dropout(p=0.75, generator=g)
    y = dropout(x)
    keep = philox_ref.keep_mask(seed, offset, 15, 0.75).reshape(3, 5)
    np.testing.assert_array_equal(y.data, np.where(keep, 4.0, 0.0))
    l = y.norm(2, 1).sum()
    l.backward()
    # d/dx of sum_i ||4 * m_i||: 4 * 4 / (4 * sqrt(k_i)) = 4 / sqrt(k_i) on kept units.
    k = keep.sum(1, keepdims=True)
    want = np.where(keep, 4.0 / np.sqrt(np.maximum(k, 1)), 0.0)
    np.testing.assert_allclose(x.grad.data, want, rtol=1e-6)
    assert x.grad.dtype == np.float32


def test_gradients_accumulate_across_backward_calls():
    w = dropcore.tensor([1.0, 2.0, 3.0], requires_grad=True)
    (w * 2).sum().backward()
    (w * w).sum().backward()
    np.testing.assert_allclose(w.grad.data, 2 + 2 * np.array([1.0, 2.0, 3.0]))


def test_only_leaves_get_grad_and_backward_twice_needs_retain_graph():
    x = dropcore.tensor([1.0, 2.0], requires_grad=True)
    y = x * 3
    z = (y * y).sum()
    z.backward(retain_graph=True)
    assert y.grad is None and x.grad is not None
    z.backward()
    np.testing.assert_allclose(x.grad.data, 2 * 18 * np.array([1.0, 2.0]))
    with pytest.raises(RuntimeError, match="second time"):
        z.backward()


def test_backward_needs_a_scalar_or_a_gradient():
    x = dropcore.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="scalar outputs"):
        (x * 2).backward()
    (x * 2).backward(np.array([1.0, 0.0, 2.0], np.float32))
    np.testing.assert_allclose(x.grad.data, [2.0, 0.0, 4.0])
    with pytest.raises(RuntimeError, match="does not require grad"):
        dropcore.ones(2).sum().backward()


def test_no_grad_records_nothing_and_detach_cuts():
    x = dropcore.ones(3, requires_grad=True)
    with dropcore.no_grad():
        y = x * 2
    assert not y.requires_grad and y.grad_fn is None
    z = (x * 2).detach()
    assert not z.requires_grad

    @dropcore.no_grad()
    def f(t):
        return t + 1

    assert not f(x).requires_grad
    assert dropcore.is_grad_enabled()


def test_dtype_is_preserved_and_scalars_do_not_upcast():
    x = dropcore.ones(4)
    assert x.dtype == np.float32
    assert (x * 2.5 + 1).dtype == np.float32
    assert (2.0 / (x + 1)).dtype == np.float32
    assert dropcore.tensor([1.0, 2.0]).dtype == np.float32
    assert dropcore.tensor(np.ones(2)).dtype == np.float64
    assert dropcore.ones(2, dtype=dropcore.float64).dtype == np.float64
    assert dropcore.tensor([1, 2]).dtype == dropcore.int64


def test_from_numpy_shares_memory_and_numpy_round_trips():
    a = np.arange(6, dtype=np.float32)
    t = dropcore.from_numpy(a)
    a[0] = 42
    assert t.numpy()[0] == 42 and t.numpy() is a
    with pytest.raises(RuntimeError):
        dropcore.ones(1, requires_grad=True).numpy()
    assert dropcore.tensor([[3.5]]).item() == 3.5


def test_rand_and_randn_are_reproducible_and_distributed():
    a = dropcore.rand(100_000, generator=dropcore.Generator(1)).numpy()
    b = dropcore.rand(100_000, generator=dropcore.Generator(1)).numpy()
    np.testing.assert_array_equal(a, b)
    assert a.min() >= 0 and a.max() < 1
    assert abs(a.mean() - 0.5) < 6 * np.sqrt(1 / 12 / a.size)
    z = dropcore.randn(200_000, dtype=dropcore.float64, generator=dropcore.Generator(2)).numpy()
    assert abs(z.mean()) < 6 / np.sqrt(z.size)
    assert abs(z.var() - 1) < 6 * np.sqrt(2 / z.size)


def test_integer_tensors_cannot_require_grad():
    with pytest.raises(RuntimeError):
        dropcore.tensor([1, 2], requires_grad=True)


def test_leaf_gradients_never_share_memory():
    a = dropcore.ones(3, requires_grad=True)
    b = dropcore.ones(3, requires_grad=True)
    (a + b).sum().backward()  # both receive the same upstream array
    assert not np.shares_memory(a.grad.data, b.grad.data)
    user = np.ones(3, np.float32)
    c = dropcore.ones(3, requires_grad=True)
    c.backward(user)
    c.grad.data[0] = 5
    assert user[0] == 1  # the caller's gradient array is not aliased
