"""ReLU's backward is PyTorch's threshold_backward, ``where(out > 0, grad, 0)``, bit for bit:
the branch-free path must keep NaN/inf/-0.0 gradients where the input was positive and
give +0.0 wherever it was not (negative, zero, -0.0 or NaN input)."""

import numpy as np
import pytest

import dropcore as dc


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("transposed_grad", [False, True])
def test_relu_backward_matches_where_bit_for_bit(dtype, transposed_grad):
    rng = np.random.default_rng(3)
    a = rng.standard_normal((7, 9)).astype(dtype)
    a.flat[:6] = [0.0, -0.0, np.nan, np.inf, -np.inf, 1e-30]
    g = rng.standard_normal((9, 7) if transposed_grad else (7, 9)).astype(dtype)
    g = g.T if transposed_grad else g  # a non-contiguous incoming gradient
    g.flat[6:12] = [np.nan, -0.0, np.inf, -np.inf, -5.0, 0.0]
    a.flat[6:12] = 2.0  # positive input: these gradients pass through unchanged
    x = dc.tensor(a, requires_grad=True)
    dc.relu(x).backward(dc.tensor(g))
    expected = np.where(np.maximum(a, 0) > 0, g, 0).astype(dtype)
    bits = f"u{np.dtype(dtype).itemsize}"
    assert x.grad.dtype == x.dtype
    np.testing.assert_array_equal(x.grad.numpy().view(bits), expected.view(bits))
