"""dtypes, storage sharing, in-place ops, the version counter and Python conversions (issue 8)."""

import numpy as np
import pytest

import dropcore
from gradcheck import gradcheck


# -- dtypes -----------------------------------------------------------------------------------
def test_dtypes_print_like_pytorch_and_compare_with_numpy():
    assert repr(dropcore.float32) == "dropcore.float32" and str(dropcore.int64) == "dropcore.int64"
    assert dropcore.float is dropcore.float32 and dropcore.double is dropcore.float64
    assert dropcore.long is dropcore.int64 and dropcore.int is dropcore.int32
    assert dropcore.ones(2).dtype == dropcore.float32 == np.float32
    assert repr(dropcore.ones(2).dtype) == "dropcore.float32"
    assert np.zeros(2, dropcore.int64).dtype == np.int64  # NumPy takes a dropcore dtype
    assert dropcore.tensor([1, 2]).dtype == dropcore.int64
    assert dropcore.tensor([True]).dtype == dropcore.bool
    assert dropcore.tensor(np.ones(2)).dtype == dropcore.float64
    assert dropcore.float32.is_floating_point and not dropcore.int64.is_floating_point
    assert "dtype=dropcore.float64" in repr(dropcore.ones(1, dtype=dropcore.float64))
    assert "dtype=dropcore.int32" in repr(dropcore.ones(1, dtype=dropcore.int32))


def test_conversion_methods():
    x = dropcore.tensor([1.7, -2.2, 0.0])
    assert x.long().dtype == dropcore.int64 and x.long().tolist() == [1, -2, 0]
    assert x.int().dtype == dropcore.int32
    assert x.bool().tolist() == [True, True, False]
    assert x.double().dtype == dropcore.float64 and x.double().float().dtype == dropcore.float32
    assert x.type(dropcore.int64).dtype == dropcore.int64
    assert x.type() == "dropcore.FloatTensor" and x.long().type() == "dropcore.LongTensor"
    assert x.to(dropcore.float64).dtype == dropcore.float64
    assert x.to("cpu") is x and x.cpu() is x and x.to(x) is x
    assert x.to(dropcore.ones(1, dtype=dropcore.float64)).dtype == dropcore.float64
    assert x.to("cpu", dropcore.float64).dtype == dropcore.float64
    assert x.to(dropcore.float32, copy=True) is not x


def test_float16_is_a_clear_error():
    for make in (lambda: dropcore.ones(2, dtype=dropcore.float16), lambda: dropcore.ones(2).half(),
                 lambda: dropcore.tensor([1.0], dtype=dropcore.half)):
        with pytest.raises(TypeError, match="float32 and float64"):
            make()


def test_gradient_flows_through_dtype_conversion():
    x = dropcore.tensor([0.1, -0.4], dtype=dropcore.float64, requires_grad=True)
    y = x.float() * 3
    assert y.dtype == dropcore.float32
    y.sum().backward()
    assert x.grad.dtype == dropcore.float64 and x.grad.tolist() == [3.0, 3.0]
    gradcheck(lambda a: (a.to(dropcore.float64) * 2).exp(), np.array([0.1, -0.4]))


# -- device and cuda -------------------------------------------------------------------------
def test_cpu_only_devices():
    assert dropcore.cuda.is_available() is False and dropcore.cuda.device_count() == 0
    assert dropcore.device("cpu") == "cpu" and str(dropcore.device("cuda:1")) == "cuda:1"
    assert dropcore.ones(1).device == dropcore.device("cpu")
    assert dropcore.zeros(2, device="cpu").shape == (2,)
    layer = dropcore.nn.Linear(3, 2, device="cpu", dtype=dropcore.float64)
    assert layer.weight.dtype == dropcore.float64 and layer(dropcore.ones(1, 3, dtype=dropcore.float64)).shape == (1, 2)
    for bad in (lambda: dropcore.ones(2, device="cuda"), lambda: dropcore.ones(2).to("cuda"),
                lambda: dropcore.ones(2).cuda(), lambda: dropcore.tensor([1.0], device=dropcore.device("cuda", 0)),
                lambda: dropcore.nn.Linear(2, 2, device="cuda"), lambda: dropcore.nn.BatchNorm1d(2, device="cuda")):
        with pytest.raises(RuntimeError, match="CPU-only"):
            bad()


# -- .data, storage ----------------------------------------------------------------------------
def test_data_is_a_tensor_sharing_storage_and_cut_from_the_graph():
    w = dropcore.zeros(1000, requires_grad=True)
    d = w.data
    assert isinstance(d, dropcore.Tensor) and not d.requires_grad and d.grad_fn is None
    d.normal_(0, 2.0, generator=dropcore.Generator(3))  # the notes' p.data.normal_(0, std)
    z = w.detach().numpy()
    assert abs(z.mean()) < 6 * 2 / np.sqrt(1000) and abs(z.std() - 2) < 0.2
    (w * 3).sum().backward()
    w.grad.data.zero_()
    assert w.grad.tolist() == [0.0] * 1000
    # assigning .data replaces the storage (the notes: bn.bias.data = Tensor([2, 4, 8]))
    w.data = dropcore.Tensor([2, 4])
    assert w.shape == (2,) and w.detach().tolist() == [2.0, 4.0] and w.requires_grad
    with pytest.raises(TypeError, match="has to be a tensor"):
        w.data = np.zeros(2)


def test_legacy_constructor_and_variable():
    from dropcore.autograd import Variable

    t = dropcore.Tensor(4, 3)
    assert t.shape == (4, 3) and t.dtype == dropcore.float32
    assert dropcore.Tensor([2, 5, 10]).dtype == dropcore.float32
    assert Variable(t) is t
    with pytest.raises(TypeError):
        dropcore.Tensor(2.5)


# -- in place ---------------------------------------------------------------------------------
def test_in_place_methods_write_into_the_same_storage():
    x = dropcore.tensor([1.0, -2.0, 3.0])
    arr = x.numpy()
    assert x.add_(1) is x and arr.tolist() == [2, -1, 4]
    x.sub_(dropcore.tensor([1.0, 1.0, 1.0]), alpha=2)
    assert arr.tolist() == [0, -3, 2]
    x.mul_(2).div_(4)
    assert arr.tolist() == [0, -1.5, 1]
    x.clamp_(-1, 0.5)
    assert arr.tolist() == [0, -1, 0.5]
    x.masked_fill_(x < 0, 7.0)
    assert arr.tolist() == [0, 7, 0.5]
    x.fill_(3)
    assert arr.tolist() == [3, 3, 3]
    x.copy_(dropcore.tensor([1, 2, 3]))  # any dtype, as in PyTorch
    assert arr.tolist() == [1, 2, 3]
    x.zero_()
    assert arr.tolist() == [0, 0, 0]
    x[1] = 5
    x[dropcore.tensor([True, False, True])] = -1.0
    assert arr.tolist() == [-1, 5, -1]
    assert x._version == 11


def test_random_fills_are_reproducible_and_distributed():
    g = dropcore.Generator(11)
    u = dropcore.empty(100_000, dtype=dropcore.float64).uniform_(-2, 4, generator=g).numpy()
    assert u.min() >= -2 and u.max() < 4 and abs(u.mean() - 1) < 6 * 6 / np.sqrt(12 * u.size)
    again = dropcore.empty(100_000, dtype=dropcore.float64).uniform_(-2, 4, generator=dropcore.Generator(11)).numpy()
    np.testing.assert_array_equal(u, again)
    n = dropcore.empty(100_000).normal_(3, 0.5, generator=g).numpy()
    assert abs(n.mean() - 3) < 6 * 0.5 / np.sqrt(n.size) and abs(n.std() - 0.5) < 0.01
    b = dropcore.empty(100_000).bernoulli_(0.3, generator=g).numpy()
    assert set(np.unique(b)) <= {0.0, 1.0}
    assert abs(b.mean() - 0.3) < 6 * np.sqrt(0.3 * 0.7 / b.size)


def test_setitem_records_gradients_like_pytorch():
    def f(a, v):
        h = a * 2
        h[1:, ::2] = v * 3
        return h * a

    gradcheck(f, np.arange(12.0).reshape(3, 4) / 7, np.array([0.5, -1.0]))
    w = dropcore.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable"):
        w[0] = 2.0
    with pytest.raises(RuntimeError, match="view of a leaf Variable"):
        w[1:].mul_(2)
    with dropcore.no_grad():
        w[0] = 2.0  # allowed without grad mode, as in PyTorch
    assert w.detach().tolist() == [2, 1, 1]


def test_in_place_op_on_a_non_leaf_is_recorded():
    def f(a, b):
        h = a * 1.0
        h.mul_(b)
        h.add_(a, alpha=0.5)
        h.clamp_(-1.0, 2.0)
        h.sub_(b)
        return h

    gradcheck(f, np.array([0.3, -0.7, 1.2]), np.array([1.5, 0.4, -0.2]))


def test_earlier_users_keep_their_edges_after_an_in_place_op():
    # y = x * 2 read only the constant; x.mul_(3) afterwards must not change dy/dx.
    a = dropcore.tensor([1.0, 2.0], requires_grad=True)
    x = a * 1.0
    y = x * 2
    x.mul_(3)
    (y.sum() + x.sum()).backward()
    assert a.grad.tolist() == [5.0, 5.0]


def test_modifying_a_saved_tensor_raises_instead_of_a_wrong_gradient():
    a = dropcore.ones(3, requires_grad=True)
    b = a.exp()
    b.add_(1)
    with pytest.raises(RuntimeError, match="modified by an inplace operation.*is at version 1; expected version 0"):
        b.sum().backward()
    x = dropcore.tensor([1.0, 2.0], requires_grad=True)
    h = x * 1.0
    y = h * h
    h[0] = 5.0
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()
    # .data writes are not tracked (PyTorch semantics): no error, silently new values
    c = dropcore.ones(2, requires_grad=True)
    e = c.exp()
    e.data.add_(1)
    e.sum().backward()


# -- conversions ------------------------------------------------------------------------------
def test_python_conversions_and_format():
    loss = dropcore.tensor(0.123456)
    assert f"{loss:.4f}" == "0.1235" and f"{loss}" == str(loss.item())  # PyTorch: 0-d formats its item
    assert float(loss) == pytest.approx(0.123456) and int(dropcore.tensor(3.9)) == 3
    assert bool(dropcore.tensor([1])) is True and bool(dropcore.tensor(0.0)) is False
    assert dropcore.tensor([[1, 2]]).tolist() == [[1, 2]] and dropcore.tensor([2.5]).item() == 2.5
    assert isinstance(dropcore.tensor(3).item(), int)
    with pytest.raises(RuntimeError, match="ambiguous"):
        bool(dropcore.ones(2))
    with pytest.raises(RuntimeError, match="cannot be converted to Scalar"):
        dropcore.ones(2).item()
    with pytest.raises(TypeError):
        f"{dropcore.ones(2):.4f}"
    assert [1, 2, 3][dropcore.tensor(1)] == 2


def test_grad_fn_is_an_introspectable_node():
    x = dropcore.ones(2, requires_grad=True)
    y = (x * dropcore.ones(2)).sum()
    assert y.grad_fn.name() == "SumBackward0"
    ((mul, _),) = y.grad_fn.next_functions
    assert mul.name() == "MulBackward0"
    (acc, _), (const, _) = mul.next_functions
    assert type(acc).__name__ == "AccumulateGrad" and acc.variable is x and const is None
    assert "grad_fn=<SumBackward0>" in repr(y)
    assert x.grad_fn is None and x.is_leaf and not y.is_leaf


def test_inference_mode_and_grad_mode_switches():
    x = dropcore.ones(2, requires_grad=True)
    with dropcore.inference_mode():
        assert not (x * 2).requires_grad and dropcore.is_inference_mode_enabled()
    with dropcore.inference_mode(False):
        assert (x * 2).requires_grad
    assert not dropcore.is_inference_mode_enabled()

    @dropcore.inference_mode()
    def f(t):
        return t + 1

    assert not f(x).requires_grad
    with dropcore.set_grad_enabled(False):
        assert not (x * 2).requires_grad
    assert dropcore.is_grad_enabled()


def test_deepcopy_copies_leaves_and_refuses_graph_nodes_like_pytorch():
    import copy

    w = dropcore.nn.Parameter(dropcore.ones(2, 3))
    (w * 2).sum().backward()
    c = copy.deepcopy(w)
    assert type(c) is type(w) and c.requires_grad and c.is_leaf
    assert not np.shares_memory(c.detach().numpy(), w.detach().numpy())
    assert c.grad.tolist() == w.grad.tolist() and not np.shares_memory(c.grad.numpy(), w.grad.numpy())
    with pytest.raises(RuntimeError, match="graph leaves"):
        copy.deepcopy(w * 2)


def test_in_place_ops_on_indexing_views_are_recorded_through_the_base():
    def f(a, b):
        h = a * 1.0
        h[0].mul_(b[0])  # a view of a row, written in place
        h.narrow(1, 1, 2).add_(b[1:3])
        h[1:][0, ::2].clamp_(-0.5, 0.5)  # a view of a view
        for piece in h.split(2, 1):
            piece.sub_(b[3])
        return h

    gradcheck(f, np.arange(-6.0, 6.0).reshape(3, 4) / 5, np.array([1.5, -0.3, 0.7, 0.2]))


def test_copy_into_a_slice_of_a_plain_tensor_records_the_source():
    w = dropcore.tensor([2.0, 3.0], requires_grad=True)
    x = dropcore.zeros(4)
    x[1:3].copy_(w)
    assert not x.is_leaf and x.tolist() == [0.0, 2.0, 3.0, 0.0]
    (x * dropcore.tensor([1.0, 10.0, 100.0, 1000.0])).sum().backward()
    assert w.grad.tolist() == [10.0, 100.0]


def test_in_place_on_a_reshaped_view_that_requires_grad_is_refused():
    h = dropcore.ones(2, 3, requires_grad=True) * 1.0
    with pytest.raises(RuntimeError, match="clone\\(\\) it first"):
        h.view(6).mul_(2)


@pytest.mark.parametrize("order", ["short path first", "long path first"])
def test_backward_waits_for_every_path_into_a_node(order):
    # A diamond whose two paths have different lengths: the shared node must receive both
    # contributions before it runs (a wrong topological order silently drops one).
    a = dropcore.tensor([1.0, 2.0], requires_grad=True)
    h = a * 3.0
    long = (h * 2.0).exp().log()
    out = h + long if order == "short path first" else long + h
    out.sum().backward()
    assert a.grad.tolist() == [9.0, 9.0]


def test_functional_relu_inplace_writes_into_its_input_and_is_recorded():
    import dropcore.nn.functional as F

    def f(a):
        h = a * 2.0
        F.relu(h, inplace=True)
        F.leaky_relu(h - 1.0, 0.1, inplace=True)
        return h * a

    gradcheck(f, np.array([[0.3, -0.8], [1.1, -0.2]]))
    x = dropcore.tensor([-1.0, 2.0])
    assert F.relu(x, inplace=True) is x and x.tolist() == [0.0, 2.0]
