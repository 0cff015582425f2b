"""The four silent-wrong-result bugs of issue 8, one regression test each (all failed before the fix)."""

import numpy as np
import pytest

import dropcore
from dropcore import nn

from gradcheck import gradcheck


# -- 1. bool/int reductions follow PyTorch's type promotion --------------------------------
def test_counting_correct_predictions_gives_an_int64_count():
    preds = dropcore.tensor([3, 1, 2, 2, 0, 1, 1, 3])
    y = dropcore.tensor([3, 1, 2, 0, 0, 1, 2, 3])
    eq = preds == y
    assert eq.dtype == dropcore.bool
    n = eq.sum()
    assert n.dtype == dropcore.int64 and n.item() == 6
    # cs231n's loop: num_correct += (preds == y).sum(); acc = float(num_correct) / num_samples
    num_correct, num_samples = 0, 0
    for _ in range(4):
        num_correct += (preds == preds).sum()
        num_samples += preds.size(0)
    assert float(num_correct) / num_samples == 1.0


def test_bool_sum_over_a_dim_counts_and_bool_mean_raises():
    x = dropcore.tensor([[1.0, -1.0, 2.0, 3.0], [-1.0, -2.0, 5.0, 0.5]])
    c = (x > 0).sum(dim=1)
    assert c.dtype == dropcore.int64
    assert c.tolist() == [3, 2]
    assert (x > 0).cumsum(1).tolist() == [[1, 1, 2, 3], [0, 0, 1, 2]]
    assert (x > 0).prod().dtype == dropcore.int64
    with pytest.raises(RuntimeError, match=r"mean\(\): could not infer output dtype.*Got: Bool"):
        (x > 0).mean()
    with pytest.raises(RuntimeError, match="Got: Long"):
        dropcore.tensor([1, 2]).mean()
    assert (x > 0).float().mean().item() == 0.625  # the PyTorch way to get the rate
    assert dropcore.tensor([True, True, True, False]).sum(dtype=dropcore.float32).item() == 3.0


# -- 2. augmented assignment is in place ------------------------------------------------------
def test_hand_written_sgd_updates_parameters_in_place_and_trains():
    rng = np.random.default_rng(0)
    X = dropcore.tensor(rng.standard_normal((64, 3)))
    w_true = np.array([[1.5], [-2.0], [0.5]])
    Y = X @ dropcore.tensor(w_true)
    w = dropcore.zeros(3, 1, dtype=dropcore.float64, requires_grad=True)
    storage = w.data  # shares memory with w
    first = None
    for _ in range(200):
        loss = ((X @ w - Y) ** 2).mean()
        first = first if first is not None else loss.item()
        loss.backward()
        with dropcore.no_grad():
            before = w
            w -= 0.1 * w.grad
            assert w is before
        w.grad.zero_()
    assert np.shares_memory(storage.numpy(), w.detach().numpy())
    assert loss.item() < 1e-12 * first
    np.testing.assert_allclose(w.detach().numpy(), w_true, atol=1e-6)


@pytest.mark.parametrize("op", ["+=", "-=", "*=", "/="])
def test_augmented_assignment_keeps_object_and_storage(op):
    t = dropcore.tensor([1.0, 2.0, 4.0])
    arr = t.numpy()
    before = t
    ns = {"t": t}
    exec(f"t {op} 2.0", ns)
    assert ns["t"] is before
    want = {"+=": [3, 4, 6], "-=": [-1, 0, 2], "*=": [2, 4, 8], "/=": [0.5, 1, 2]}[op]
    np.testing.assert_array_equal(arr, want)
    assert t._version == 1


def test_in_place_on_a_leaf_that_requires_grad_raises_in_grad_mode():
    w = dropcore.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="a leaf Variable that requires grad is being used in an in-place operation."):
        w -= 1.0
    np.testing.assert_array_equal(w.detach().numpy(), [1, 1, 1])  # untouched
    with pytest.raises(RuntimeError, match="can't be cast to the desired output type Long"):
        dropcore.tensor([1, 2]).add_(1.5)


# -- 3. mixed float dtypes are refused, train and eval alike --------------------------------
@pytest.mark.parametrize("train", [True, False])
def test_float64_input_to_float32_linear_raises(train):
    layer = nn.Linear(3, 2).train(train)
    x = dropcore.ones(4, 3, dtype=dropcore.float64)
    with pytest.raises(RuntimeError, match="mat1 and mat2 must have the same dtype, but got Double and Float"):
        layer(x)
    with dropcore.no_grad(), pytest.raises(RuntimeError):
        layer(x)
    assert layer(x.float()).dtype == dropcore.float32


@pytest.mark.parametrize("train", [True, False])
def test_float64_input_to_float32_batchnorm_raises(train):
    bn = nn.BatchNorm1d(3).train(train)
    with pytest.raises(RuntimeError, match="mixed dtype"):
        bn(dropcore.ones(4, 3, dtype=dropcore.float64))


def test_matmul_with_mixed_dtypes_raises():
    a = dropcore.ones(2, 3, dtype=dropcore.float64)
    with pytest.raises(RuntimeError, match="expected m1 and m2 to have the same dtype, but got: double != float"):
        a @ dropcore.ones(3, 4)
    with pytest.raises(RuntimeError, match="same dtype"):
        dropcore.ones(3) @ dropcore.ones(3, dtype=dropcore.float64)


# -- 4. every @ shape case, forward and backward --------------------------------------------
rng = np.random.default_rng(1)


@pytest.mark.parametrize(
    "sa,sb",
    [
        ((4,), (4,)),
        ((4,), (4, 3)),
        ((2, 4), (4,)),
        ((2, 4), (4, 3)),
        ((5, 2, 4), (4, 3)),
        ((5, 2, 4), (4,)),
        ((4,), (5, 4, 3)),
        ((2, 4), (5, 4, 3)),
        ((5, 1, 2, 4), (3, 4, 2)),
    ],
)
def test_matmul_every_shape_case_matches_numpy_and_finite_differences(sa, sb):
    a, b = rng.standard_normal(sa), rng.standard_normal(sb)
    out = dropcore.tensor(a) @ dropcore.tensor(b)
    np.testing.assert_allclose(out.numpy(), a @ b, rtol=1e-12)
    gradcheck(lambda x, y: x @ y, a, b)


def test_vector_dot_backward_is_the_other_vector():
    p = dropcore.tensor([1.0, 2.0, 3.0], requires_grad=True)
    v = dropcore.tensor([4.0, 5.0, 6.0], requires_grad=True)
    (p @ v).backward()
    assert p.grad.tolist() == [4.0, 5.0, 6.0] and v.grad.tolist() == [1.0, 2.0, 3.0]


def test_operators_give_way_to_foreign_operands_like_pytorch():
    # Regression: ``t == object()`` raised KeyError('O') from dtype promotion.
    t = dropcore.tensor([1.0, 2.0])
    assert (t == object()) is False and (t != object()) is True
    assert (t == "a") is False
    with pytest.raises(TypeError):
        t + object()
    with pytest.raises(TypeError):
        t < "a"
    assert (t == [1.0, 3.0]).tolist() == [True, False]  # sequences still compare element-wise
    assert (2 * t).tolist() == [2.0, 4.0] and (t ** 2).tolist() == [1.0, 4.0]
