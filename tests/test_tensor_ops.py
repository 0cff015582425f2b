"""The functions and methods users reach for: finite-difference gradchecks for every
differentiable op, and PyTorch's dtypes, shapes, return types and errors (issue 8)."""

import math

import numpy as np
import pytest

import dropcore
from gradcheck import gradcheck

rng = np.random.default_rng(8)
A = rng.standard_normal((3, 4))
B = rng.standard_normal((3, 4))
P = rng.uniform(0.5, 2.0, (3, 4))
C = rng.standard_normal((2, 3, 4))
V = rng.standard_normal(4)
IDX = np.array([[2, 0, 1, 1], [0, 2, 2, 0]])  # for gather/scatter along dim 0 of a (3, 4)
MASK = A > 0.3

GRAD_CASES = [
    # pointwise
    ("add alpha", lambda a, b: dropcore.add(a, b, alpha=-1.5), (A, B)),
    ("sub alpha", lambda a, b: a.sub(b, alpha=2.0), (A, B[0])),
    ("rsub tensor", lambda a: 1.0 - a * 2, (A,)),
    ("mul 0-d", lambda a, b: a * b.sum(), (A, V)),
    ("div both", lambda a, b: dropcore.div(a, b), (A, P)),
    ("pow scalar", lambda a: dropcore.pow(a, 3), (A,)),
    ("pow frac", lambda a: a.pow(0.5), (P,)),
    ("pow tensor both", lambda a, b: a**b, (P, B)),
    ("rpow", lambda b: 2.0**b, (B,)),
    ("square", lambda a: a.square(), (A,)),
    ("neg", lambda a: dropcore.neg(a), (A,)),
    ("abs", lambda a: dropcore.abs(a), (A,)),
    ("exp", lambda a: dropcore.exp(a), (A,)),
    ("expm1", lambda a: a.expm1(), (A,)),
    ("log", lambda a: dropcore.log(a), (P,)),
    ("log2 log10 log1p", lambda a: a.log2() + a.log10() + a.log1p(), (P,)),
    ("sqrt", lambda a: dropcore.sqrt(a), (P,)),
    ("rsqrt reciprocal", lambda a: a.rsqrt() + a.reciprocal(), (P,)),
    ("sin cos", lambda a: a.sin() * a.cos(), (A,)),
    ("tanh sigmoid relu", lambda a: dropcore.tanh(a) + dropcore.sigmoid(a) * dropcore.relu(a), (A,)),
    ("clamp min only", lambda a: a.clamp(min=-0.2), (A,)),
    ("clamp max only", lambda a: dropcore.clamp(a, max=0.4), (A,)),
    ("clip", lambda a: a.clip(-0.5, 0.5), (A,)),
    ("clamp tensor bounds", lambda a, lo, hi: a.clamp(lo, hi), (A, B * 0.3 - 0.5, B[0] * 0.3 + 0.5)),
    ("clamp tensor min", lambda a, lo: dropcore.clamp(a, min=lo), (A, B)),
    ("maximum minimum", lambda a, b: dropcore.maximum(a, b) - dropcore.minimum(a, b) * 2, (A, B)),
    ("max binary", lambda a, b: dropcore.max(a, b), (A, B)),
    ("where", lambda a, b: dropcore.where(dropcore.tensor(MASK), a, b), (A, B)),
    ("where method", lambda a, b: a.where(dropcore.tensor(MASK), b), (A, B[0])),
    ("remainder", lambda a: a % 0.7, (P,)),
    ("sign times", lambda a: a.sign() * a, (A,)),
    # reductions
    ("sum dims", lambda c: dropcore.sum(c, (0, 2)), (C,)),
    ("sum neg keepdim", lambda c: c.sum(-1, keepdim=True), (C,)),
    ("mean", lambda c: dropcore.mean(c, 1), (C,)),
    ("mean all", lambda c: c.mean(), (C,)),
    ("prod all", lambda a: a.prod(), (P,)),
    ("prod dim", lambda a: dropcore.prod(a, 1, keepdim=True), (A,)),
    ("prod with a zero", lambda a: (a * dropcore.tensor([1.0, 0.0, 1.0, 1.0], dtype=dropcore.float64)).prod(1), (A,)),
    ("cumsum", lambda c: dropcore.cumsum(c, 1), (C,)),
    ("cumsum neg", lambda a: a.cumsum(-1), (A,)),
    ("std all", lambda a: a.std(), (A,)),
    ("std dim", lambda a: dropcore.std(a, 0), (A,)),
    ("std keepdim biased", lambda c: c.std((0, 2), keepdim=True, unbiased=False), (C,)),
    ("var correction", lambda a: dropcore.var(a, 1, correction=0), (A,)),
    ("var all", lambda a: a.var(), (A,)),
    ("max all", lambda a: dropcore.max(a), (A,)),
    ("min dim", lambda a: dropcore.min(a, 0).values, (A,)),
    ("max dim keepdim", lambda c: c.max(1, keepdim=True)[0], (C,)),
    ("amax amin", lambda c: c.amax((0, 2)).sum() + c.amin(1), (C,)),
    ("logsumexp", lambda a: dropcore.logsumexp(a, 1), (A,)),
    ("softmax", lambda c: dropcore.softmax(c, 1), (C,)),
    ("log_softmax", lambda c: dropcore.log_softmax(c, -1), (C,)),
    ("norm inf", lambda a: a.norm(float("inf"), 1), (A,)),
    ("norm fro dims", lambda c: dropcore.norm(c, dim=(1, 2)), (C,)),
    # linear algebra
    ("matmul fn", lambda a, b: dropcore.matmul(a, b), (A, B.T)),
    ("mm", lambda a, b: dropcore.mm(a, b), (A, B.T)),
    ("mm method", lambda a, b: a.mm(b), (A.T, B)),
    ("bmm", lambda c, d: c.bmm(d), (C, C.transpose(0, 2, 1))),
    ("mv", lambda a, v: a.mv(v), (A, V)),
    ("dot", lambda v, w: dropcore.dot(v, w), (V, B[1])),
    ("outer", lambda v, w: v.outer(w), (V, B[0, :3])),
    # shape and indexing
    ("view_as reshape_as", lambda a, b: (a.view_as(b.T) * b.T).T + a.reshape_as(b), (A, B)),
    ("flatten range", lambda c: dropcore.flatten(c, 1), (C,)),
    ("unflatten", lambda a: a.unflatten(1, (2, 2)), (A,)),
    ("permute T mT", lambda c: c.permute(2, 0, 1) + c.mT.permute(1, 0, 2), (C,)),
    ("transpose neg", lambda c: dropcore.transpose(c, -1, 0), (C,)),
    ("t", lambda a: a.t() @ a, (A,)),
    ("squeeze dim", lambda a: a.reshape(3, 1, 4).squeeze(1) * a, (A,)),
    ("unsqueeze neg", lambda a: dropcore.unsqueeze(a, -1) * 2, (A,)),
    ("expand_as", lambda v, a: v.expand_as(a) * a, (V, A)),
    ("expand -1", lambda v: v.reshape(1, 4).expand(3, -1), (V,)),
    ("repeat", lambda a: a.repeat(2, 1, 3), (A,)),
    ("narrow", lambda a: a.narrow(1, 1, 2), (A,)),
    ("narrow fn", lambda c: dropcore.narrow(c, 0, 1, 1), (C,)),
    ("split", lambda a: a.split(3, 1)[1] * 2 + a.split([1, 2], 0)[1].sum(), (A,)),
    ("chunk", lambda a: a.chunk(2, 1)[0] - a.chunk(2, 1)[1], (A,)),
    ("cat neg dim", lambda a, b: dropcore.cat([a, b, a], -1), (A, B)),
    ("stack dim 1", lambda a, b: dropcore.stack([a, b], 1), (A, B)),
    ("gather", lambda a: a.gather(0, dropcore.tensor(IDX)), (A,)),
    ("gather fn dim1", lambda a: dropcore.gather(a, 1, dropcore.tensor([[0, 0], [3, 1], [2, 2]])), (A,)),
    ("scatter src", lambda a, b: a.scatter(0, dropcore.tensor([[2, 0, 1, 1]]), b), (A, B)),
    ("scatter value", lambda a: dropcore.scatter(a, 1, dropcore.tensor([[1], [3], [0]]), value=0.5), (A,)),
    ("scatter_add", lambda a, b: a.scatter_add(0, dropcore.tensor(IDX), b[:2]), (A, B)),
    ("index_select", lambda a: a.index_select(1, dropcore.tensor([3, 0, 3])), (A,)),
    ("masked_fill", lambda a: a.masked_fill(dropcore.tensor(MASK), -1.0), (A,)),
    ("masked_fill broadcast", lambda a: dropcore.masked_fill(a, dropcore.tensor([True, False, False, True]), 0.0), (A,)),
    ("topk", lambda a: a.topk(2, 1).values, (A,)),
    ("topk smallest", lambda a: dropcore.topk(a, 2, 0, largest=False)[0], (A,)),
    ("sort", lambda a: a.sort(1, descending=True).values, (A,)),
    ("sort fn", lambda a: dropcore.sort(a, 0)[0], (A,)),
    ("flip", lambda a: a.flip(0) * a, (A,)),
    ("clone", lambda a: dropcore.clone(a) * a, (A,)),
    ("bool mask index", lambda a: a[dropcore.tensor(MASK)], (A,)),
    ("tensor index", lambda a: a[dropcore.tensor([2, 0, 2])], (A,)),
    ("mixed index", lambda c: c[1:, dropcore.tensor([0, 2]), ::2], (C,)),
    ("movedim", lambda c: c.movedim(0, -1), (C,)),
]


@pytest.mark.parametrize("name,fn,inputs", GRAD_CASES, ids=[c[0] for c in GRAD_CASES])
def test_gradient_matches_finite_differences(name, fn, inputs):
    gradcheck(fn, *inputs)


def test_piecewise_constant_ops_have_zero_gradient():
    x = dropcore.tensor([0.4, -1.6, 2.5], requires_grad=True)
    (x.floor() + x.ceil() + x.round() + x.trunc() + x.sign() + x // 1.0).sum().backward()
    assert x.grad.tolist() == [0.0, 0.0, 0.0]


def test_max_tie_spreads_gradient_evenly_like_pytorch():
    x = dropcore.tensor([1.0, 3.0, 3.0], requires_grad=True)
    x.max().backward()
    assert x.grad.tolist() == [0.0, 0.5, 0.5]


# -- values, dtypes and return types ---------------------------------------------------------
def test_max_min_with_dim_return_values_and_indices():
    x = dropcore.tensor([[1.0, 5.0, 2.0], [7.0, 0.0, 3.0]])
    r = x.max(1)
    assert type(r).__name__ == "max" and r.values.tolist() == [5.0, 7.0] and r.indices.tolist() == [1, 0]
    values, indices = dropcore.max(x, 1)  # the notes: _, predicted = torch.max(output, 1)
    assert indices.dtype == dropcore.int64 and values.dtype == dropcore.float32
    m = x.min(dim=0, keepdim=True)
    assert m.values.shape == (1, 3) and m.indices.tolist() == [[0, 1, 0]]
    assert x.max().item() == 7.0 and dropcore.min(x).item() == 0.0


def test_argmax_argmin_dim_keepdim_and_axis():
    x = dropcore.tensor([[1.0, 5.0, 2.0], [7.0, 0.0, 3.0]])
    assert x.argmax().item() == 3 and x.argmax().dtype == dropcore.int64
    assert x.argmax(1).tolist() == [1, 0] and x.argmax(dim=1, keepdim=True).shape == (2, 1)
    assert x.argmax(axis=0).tolist() == [1, 0, 1] and dropcore.argmin(x, 1).tolist() == [0, 1]
    assert x.sum(axis=0).tolist() == [8.0, 5.0, 5.0]


def test_std_var_match_the_closed_form():
    a = np.array([[1.0, 2.0, 4.0], [3.0, 3.0, 9.0]])
    x = dropcore.tensor(a)
    np.testing.assert_allclose(x.std(0).numpy(), a.std(0, ddof=1))
    np.testing.assert_allclose(x.var(1, unbiased=False).numpy(), a.var(1))
    np.testing.assert_allclose(x.std().item(), a.std(ddof=1))
    np.testing.assert_allclose(dropcore.var(x, correction=2).item(), ((a - a.mean()) ** 2).sum() / 4)
    with pytest.raises(RuntimeError, match="std and var only support floating point"):
        dropcore.tensor([1, 2]).std()


@pytest.mark.parametrize(
    "expr,dtype",
    [
        ("dropcore.tensor([1, 2]) + dropcore.tensor([1.5, 2])", "float32"),
        ("dropcore.tensor([1, 2]) + 2.5", "float32"),
        ("dropcore.tensor([1, 2], dtype=dropcore.int32) + 5", "int32"),
        ("dropcore.tensor([1, 2], dtype=dropcore.int32) + dropcore.tensor(5)", "int32"),
        ("dropcore.tensor([1, 2], dtype=dropcore.int32) + dropcore.tensor(5.0)", "float32"),
        ("dropcore.tensor([1.0], dtype=dropcore.float64) * dropcore.tensor(2.0)", "float64"),
        ("dropcore.ones(2) * dropcore.tensor(2.0, dtype=dropcore.float64)", "float32"),
        ("dropcore.ones(2) + dropcore.ones(2, dtype=dropcore.float64)", "float64"),
        ("dropcore.tensor([1, 2]) / 2", "float32"),
        ("dropcore.tensor([7, 2]) // 2", "int64"),
        ("dropcore.tensor([1, 2]) ** 2", "int64"),
        ("dropcore.tensor([True]) + dropcore.tensor([True])", "bool"),
        ("dropcore.tensor([True]) + 1", "int64"),
        ("dropcore.tensor([1, 2]) > 1", "bool"),
        ("dropcore.tensor([1, 2]).exp()", "float32"),
        ("dropcore.tensor([1, 2]).sqrt()", "float32"),
        ("dropcore.tensor([-1, 2]).abs()", "int64"),
        ("dropcore.tensor([-1, 2]).sign()", "int64"),
        ("dropcore.tensor([-1, 2]).relu()", "int64"),
        ("dropcore.tensor([1, 2], dtype=dropcore.int32).sum()", "int64"),
        ("dropcore.tensor([1, 2], dtype=dropcore.int32).cumsum(0)", "int64"),
        ("dropcore.tensor([1.0, 2]).cumsum(0)", "float32"),
        ("dropcore.tensor([1, 2]).max()", "int64"),
        ("dropcore.arange(5)", "int64"),
        ("dropcore.arange(0, 1, 0.25)", "float32"),
        ("dropcore.full((2,), 1)", "int64"),
        ("dropcore.full((2,), 1.0)", "float32"),
        ("dropcore.full((2,), True)", "bool"),
        ("dropcore.cat([dropcore.ones(2), dropcore.ones(2, dtype=dropcore.float64)])", "float64"),
        ("dropcore.where(dropcore.tensor([True, False]), dropcore.ones(2), 0)", "float32"),
        ("dropcore.mean(dropcore.tensor([1, 2]), dtype=dropcore.float64)", "float64"),
    ],
)
def test_result_dtypes_follow_pytorch(expr, dtype):
    assert eval(expr).dtype == getattr(dropcore, dtype)


def test_pytorch_errors_for_the_same_misuse():
    with pytest.raises(RuntimeError, match="Subtraction, the `-` operator, with two bool tensors"):
        dropcore.tensor([True]) - dropcore.tensor([False])
    with pytest.raises(RuntimeError, match="Integers to negative integer powers are not allowed"):
        dropcore.tensor([1, 2]) ** -1
    with pytest.raises(RuntimeError, match="only Tensors of floating point dtype can require gradients"):
        dropcore.ones(2, dtype=dropcore.int64).requires_grad_()
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        dropcore.ones(2, 3) @ dropcore.ones(2, 3)
    with pytest.raises(RuntimeError, match="both arguments to matmul need to be at least 1D"):
        dropcore.tensor(2.0) @ dropcore.ones(2)
    with pytest.raises(RuntimeError, match="self must be a matrix"):
        dropcore.mm(dropcore.ones(3), dropcore.ones(3, 3))
    with pytest.raises(IndexError, match="Dimension out of range"):
        dropcore.ones(2, 3).sum(2)
    with pytest.raises(RuntimeError, match="masked_fill_ only supports boolean masks"):
        dropcore.ones(2).masked_fill(dropcore.ones(2), 0)
    with pytest.raises(RuntimeError, match="is invalid for input of size 6"):
        dropcore.ones(2, 3).view(4, 2)
    with pytest.raises(RuntimeError, match="expand"):
        dropcore.ones(2, 3).expand(4, 3)
    with pytest.raises(RuntimeError, match="exceeds dimension size"):
        dropcore.ones(4).narrow(0, 3, 2)
    with pytest.raises(RuntimeError, match="selected index k out of range"):
        dropcore.ones(3).topk(4)
    with pytest.raises(RuntimeError, match="out of bounds"):
        dropcore.ones(2, 2).gather(0, dropcore.tensor([[2, 0]]))
    with pytest.raises(RuntimeError, match="stack expects each tensor to be equal size"):
        dropcore.stack([dropcore.ones(2), dropcore.ones(3)])


def test_shape_helpers():
    x = dropcore.arange(10)
    assert [t.tolist() for t in x.split(4)] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert [t.numel() for t in x.chunk(3)] == [4, 4, 2]
    assert [t.numel() for t in dropcore.arange(6).chunk(4)] == [2, 2, 2]  # fewer chunks, as in PyTorch
    y = dropcore.zeros(2, 1, 3)
    assert y.squeeze().shape == (2, 3) and y.squeeze(0).shape == (2, 1, 3) and y.unsqueeze(0).shape == (1, 2, 1, 3)
    assert y.size() == (2, 1, 3) and y.size(-1) == 3 and y.shape == dropcore.Size([2, 1, 3])
    assert repr(y.shape) == "dropcore.Size([2, 1, 3])" and y.shape.numel() == 6 and isinstance(y.shape, tuple) and y.dim() == 3 and y.numel() == 6 and dropcore.numel(y) == 6
    assert y.transpose(0, 2).shape == (3, 1, 2) and y.contiguous() is y
    yt = y.transpose(0, 2)
    assert not yt.is_contiguous() and yt.contiguous().is_contiguous() and dropcore.equal(yt.contiguous(), yt)
    assert dropcore.ones(2, 3).repeat(2, 2).shape == (4, 6) and dropcore.ones(3).repeat(2, 1).shape == (2, 3)
    t = dropcore.tensor([[3.0, 1.0, 2.0]])
    assert t.argsort(1).tolist() == [[1, 2, 0]] and t.sort(descending=True).indices.tolist() == [[0, 2, 1]]
    assert t.topk(2).indices.tolist() == [[0, 2]]
    g = dropcore.tensor([[1, 2], [3, 4]]).gather(1, dropcore.tensor([[0, 0], [1, 0]]))
    assert g.tolist() == [[1, 1], [4, 3]]  # PyTorch's documented example
    s = dropcore.zeros(3, 5).scatter(0, dropcore.tensor([[0, 1, 2, 0]]), dropcore.arange(1, 11, dtype=dropcore.float32).reshape(2, 5))
    assert s.tolist() == [[1, 0, 0, 4, 0], [0, 2, 0, 0, 0], [0, 0, 3, 0, 0]]  # PyTorch's documented example


def test_views_share_storage_and_version():
    x = dropcore.zeros(2, 3)
    v = x.view(6)
    v[0] = 1.0
    x.narrow(1, 2, 1).fill_(5.0)
    x.T[1, 0] = 2.0
    x[1].add_(1.0)
    assert x.tolist() == [[1.0, 2.0, 5.0], [1.0, 1.0, 6.0]]
    assert x._version == v._version == 4


def test_comparisons_and_logical():
    a, b = dropcore.tensor([1.0, 2.0, 3.0]), dropcore.tensor([3.0, 2.0, 1.0])
    for fn, want in ((dropcore.eq, [0, 1, 0]), (dropcore.ne, [1, 0, 1]), (dropcore.lt, [1, 0, 0]),
                     (dropcore.le, [1, 1, 0]), (dropcore.gt, [0, 0, 1]), (dropcore.ge, [0, 1, 1])):
        r = fn(a, b)
        assert r.dtype == dropcore.bool and r.tolist() == [bool(w) for w in want]
    assert a.eq(2).tolist() == [False, True, False] and (a != 2).sum().item() == 2
    assert (~(a > 1)).tolist() == [True, False, False] and ((a > 1) & (b > 1)).tolist() == [False, True, False]
    assert (a > 0).all().item() is True and (a > 2).any(0).item() is True
    assert dropcore.allclose(a, a + 1e-9) is True and dropcore.equal(a, a.clone()) is True
    assert dropcore.equal(a, b) is False and dropcore.equal(a, a[:2]) is False
    assert dropcore.is_tensor(a) and not dropcore.is_tensor(a.numpy())
    assert (a == None) is False  # noqa: E711  (PyTorch: comparing with None is False)


# -- creation ------------------------------------------------------------------------------
def test_d2l_normal_init_with_requires_grad():
    w = dropcore.normal(0, 0.01, size=(200, 50), requires_grad=True, generator=dropcore.Generator(9))
    assert w.is_leaf and w.requires_grad and w.dtype == dropcore.float32 and w.shape == (200, 50)
    assert abs(w.detach().numpy().std() - 0.01) < 0.0005


def test_creation_functions():
    assert dropcore.empty(2, 3).shape == (2, 3) and dropcore.empty((4,), dtype=dropcore.float64).dtype == dropcore.float64
    np.testing.assert_array_equal(dropcore.eye(3).numpy(), np.eye(3, dtype=np.float32))
    assert dropcore.eye(2, 3).shape == (2, 3)
    np.testing.assert_allclose(dropcore.linspace(-1, 1, 5).numpy(), [-1, -0.5, 0, 0.5, 1])
    assert dropcore.linspace(0, 1, 3).dtype == dropcore.float32
    assert dropcore.zeros(2, dtype=dropcore.int64).tolist() == [0, 0] and dropcore.ones((2, 2), dtype=dropcore.bool).all()
    x = dropcore.ones(2, 3, dtype=dropcore.float64)
    assert dropcore.full_like(x, 7).tolist() == [[7.0] * 3] * 2 and dropcore.full_like(x, 7).dtype == dropcore.float64
    assert dropcore.zeros_like(x).dtype == dropcore.float64 and dropcore.ones_like(x, dtype=dropcore.int64).dtype == dropcore.int64
    assert dropcore.rand_like(x).dtype == dropcore.float64 and dropcore.randn_like(x).shape == (2, 3)
    assert x.new_zeros(4).dtype == dropcore.float64 and x.new_ones(2, 2).tolist() == [[1.0, 1.0], [1.0, 1.0]]
    assert x.new_tensor([1, 2]).dtype == dropcore.float64 and x.new_full((2,), 3).tolist() == [3.0, 3.0]
    assert dropcore.tensor([1.0], requires_grad=True).requires_grad
    assert dropcore.arange(1, 4).tolist() == [1, 2, 3] and dropcore.arange(0, 1, 0.5).tolist() == [0.0, 0.5]


def test_randint_and_randperm_are_reproducible_and_uniform():
    r = dropcore.randint(3, 10, (60_000,), generator=dropcore.Generator(5))
    assert r.dtype == dropcore.int64 and r.min().item() == 3 and r.max().item() == 9
    counts = np.bincount(r.numpy() - 3, minlength=7)
    # Every face within 6 sigma of its binomial expectation.
    n, p = r.numel(), 1 / 7
    assert np.all(np.abs(counts - n * p) < 6 * math.sqrt(n * p * (1 - p)))
    again = dropcore.randint(3, 10, (60_000,), generator=dropcore.Generator(5))
    assert dropcore.equal(r, again)
    assert dropcore.randint(5, (2, 2)).shape == (2, 2) and dropcore.randint(0, 2, size=(3,), dtype=dropcore.int32).dtype == dropcore.int32
    p = dropcore.randperm(1000, generator=dropcore.Generator(1))
    assert sorted(p.tolist()) == list(range(1000)) and p.tolist() != list(range(1000))
    assert dropcore.equal(p, dropcore.randperm(1000, generator=dropcore.Generator(1)))
    # position of element 0 is uniform over 10 slots (6-sigma binomial bound per slot)
    g = dropcore.Generator(2)
    pos = np.array([int(dropcore.randperm(10, generator=g).argmin()) for _ in range(2000)])
    c = np.bincount(pos, minlength=10)
    assert np.all(np.abs(c - 200) < 6 * math.sqrt(2000 * 0.1 * 0.9))


def test_random_functions_draw_from_the_default_generator_after_manual_seed():
    dropcore.manual_seed(123)
    a = (dropcore.rand(3), dropcore.randn(3), dropcore.randint(0, 100, (3,)), dropcore.randperm(5),
         dropcore.empty(3).normal_(), dropcore.empty(3).uniform_())
    dropcore.manual_seed(123)
    b = (dropcore.rand(3), dropcore.randn(3), dropcore.randint(0, 100, (3,)), dropcore.randperm(5),
         dropcore.empty(3).normal_(), dropcore.empty(3).uniform_())
    for x, y in zip(a, b):
        assert dropcore.equal(x, y)
    assert not dropcore.equal(a[0], a[5])


def _random_graph(seed):
    """A random DAG of smooth ops over two inputs, reusing earlier nodes (diamonds of every depth)."""
    r = np.random.default_rng(seed)
    unary = [lambda t: (t * 0.3).exp(), lambda t: t.tanh(), lambda t: t.sigmoid(), lambda t: t.sin(),
             lambda t: t * 1.7, lambda t: t.softmax(-1), lambda t: t.T.T, lambda t: t[:, [0, 1, 1, 3]]]
    binary = [lambda s, t: s + t, lambda s, t: s * t, lambda s, t: s - t, lambda s, t: s / (1 + t * t)]
    picks = [(int(r.integers(2)), int(r.integers(len(unary)))) if r.random() < 0.5 else
             (2, int(r.integers(len(binary)))) for _ in range(12)]
    operands = [r.integers(0, 2 + i, size=2) for i in range(12)]

    def fn(a, b):
        nodes = [a, b]
        for (kind, k), (i, j) in zip(picks, operands):
            nodes.append(unary[k](nodes[i]) if kind < 2 else binary[k](nodes[i], nodes[j]))
        return nodes[-1] + nodes[-3] * nodes[len(nodes) // 2]

    return fn


@pytest.mark.parametrize("seed", range(25))
def test_random_graphs_with_shared_nodes_match_finite_differences(seed):
    gradcheck(_random_graph(seed), A * 0.5, B * 0.5)
