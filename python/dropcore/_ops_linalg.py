"""Matrix products and norms, each with its backward, bound as Tensor methods.

``matmul`` follows PyTorch's (and NumPy's) shape rules: a 1-D left operand is a row, a
1-D right operand a column, leading dimensions broadcast. Mixed dtypes are refused with
PyTorch's error, never silently promoted.
"""

from __future__ import annotations

import numpy as np

from . import _core
from . import _dtypes as D
from . import dropout as _dropout
from .tensor import Tensor, _as_array, _dim_tuple, _make_op, _spare_grad, _unbroadcast, _wrap

__all__ = ["matmul", "mm", "bmm", "mv", "dot", "outer", "norm"]

_LOWER = {"Float": "float", "Double": "double", "Long": "long int", "Int": "int", "Bool": "bool"}


def _check_same_dtype(a: np.ndarray, b: np.ndarray) -> None:
    if a.dtype != b.dtype:
        na, nb = D.pytorch_name(a.dtype), D.pytorch_name(b.dtype)
        raise RuntimeError(
            f"expected m1 and m2 to have the same dtype, but got: {_LOWER.get(na, na)} != {_LOWER.get(nb, nb)}"
        )


def _tensor(x) -> Tensor:
    return x if isinstance(x, Tensor) else _wrap(_as_array(x))


def matmul(input: Tensor, other: Tensor) -> Tensor:
    """Matrix product with PyTorch's 1-D and batch-broadcasting rules.

    1-D times 1-D is the dot product (a 0-d tensor); a 1-D left operand acts as a row and
    a 1-D right operand as a column (that dimension is removed from the result); leading
    dimensions broadcast. Both operands must have the same dtype.

    Example:
        >>> dropcore.tensor([1.0, 2.0]) @ dropcore.tensor([3.0, 4.0])
        tensor(11.)
    """
    input, other = _tensor(input), _tensor(other)
    a, b = input._data, other._data
    if a.ndim == 0 or b.ndim == 0:
        raise RuntimeError(f"both arguments to matmul need to be at least 1D, but they are {a.ndim}D and {b.ndim}D")
    _check_same_dtype(a, b)
    try:
        out = np.matmul(a, b)
    except ValueError:
        sa = list(a.shape) if a.ndim > 1 else [1] + list(a.shape)
        raise RuntimeError(
            f"mat1 and mat2 shapes cannot be multiplied ({'x'.join(map(str, sa[-2:]))} and "
            f"{'x'.join(map(str, b.shape[-2:] if b.ndim > 1 else (b.shape[0], 1)))})"
        ) from None

    def backward(g):
        # Lift 1-D operands to matrices (row on the left, column on the right), as matmul does.
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        g2 = g[..., None] if b.ndim == 1 else g
        g2 = g2[..., None, :] if a.ndim == 1 else g2
        ga = gb = None
        if input.requires_grad:
            ga = _unbroadcast(g2 @ np.swapaxes(b2, -1, -2), a2.shape).reshape(a.shape)
        if other.requires_grad:
            gb = _unbroadcast(np.swapaxes(a2, -1, -2) @ g2, b2.shape).reshape(b.shape)
        return ga, gb

    return _make_op(np.asarray(out), (input, other), backward, "MmBackward0" if a.ndim == b.ndim == 2 else "MatmulBackward0")


def mm(input: Tensor, mat2: Tensor) -> Tensor:
    """Product of two matrices (2-D only)."""
    if input.ndim != 2:
        raise RuntimeError("self must be a matrix")
    if mat2.ndim != 2:
        raise RuntimeError("mat2 must be a matrix")
    return matmul(input, mat2)


def bmm(input: Tensor, mat2: Tensor) -> Tensor:
    """Batched product of (B, n, m) and (B, m, p) tensors."""
    if input.ndim != 3 or mat2.ndim != 3:
        raise RuntimeError("batch1 and batch2 must be 3D tensors")
    if input.shape[0] != mat2.shape[0]:
        raise RuntimeError("batch1 and batch2 must have same number of batches")
    return matmul(input, mat2)


def mv(input: Tensor, vec: Tensor) -> Tensor:
    if input.ndim != 2 or vec.ndim != 1:
        raise RuntimeError(f"vector + matrix @ vector expected, got {input.ndim}, {vec.ndim}")
    return matmul(input, vec)


def dot(input: Tensor, tensor: Tensor) -> Tensor:
    if input.ndim != 1 or tensor.ndim != 1:
        raise RuntimeError(f"1D tensors expected, but got {input.ndim}D and {tensor.ndim}D tensors")
    if input.shape != tensor.shape:
        raise RuntimeError(
            f"inconsistent tensor size, expected tensor [{input.shape[0]}] and src [{tensor.shape[0]}] to have the "
            "same number of elements, but got different sizes"
        )
    return matmul(input, tensor)


def outer(input: Tensor, vec2: Tensor) -> Tensor:
    return matmul(input.reshape(-1, 1), vec2.reshape(1, -1))


def norm(input: Tensor, p=2, dim=None, keepdim: bool = False, dtype=None) -> Tensor:
    """The p-norm over ``dim`` (all elements by default): p = 2 ("fro"), 1, inf, or any p > 0."""
    a = input._data if dtype is None else input._data.astype(D.np_dtype(dtype))
    if a.dtype.kind != "f":
        raise NotImplementedError(
            f"linalg.vector_norm: Expected a floating point or complex tensor as input. Got {D.pytorch_name(a.dtype)}"
        )
    if p == "fro" or p is None:
        p = 2
    axes = _dim_tuple(dim, a.ndim)
    absa = np.abs(a)
    if p == float("inf"):
        n = absa.max(axis=axes, keepdims=True)
    elif p == 2:
        n = np.sqrt((a * a).sum(axis=axes, keepdims=True))
    elif p == 1:
        n = absa.sum(axis=axes, keepdims=True)
    else:
        n = (absa**p).sum(axis=axes, keepdims=True) ** (1.0 / p)

    def backward(g):
        gk = g.reshape(n.shape)  # g has the reduced shape; n kept the reduced axes
        with np.errstate(invalid="ignore", divide="ignore"):
            if p == float("inf"):
                ties = absa == n
                r = np.sign(a) * ties / ties.sum(axis=axes, keepdims=True)
            elif p == 1:
                r = np.sign(a)
            else:
                r = np.where(n > 0, np.sign(a) * absa ** (p - 1) / n ** (p - 1), 0)
        return ((gk * r).astype(a.dtype, copy=False),)

    out = n if keepdim else (n.reshape(()) if axes is None else n.squeeze(axes))
    return _make_op(np.asarray(out, dtype=a.dtype), (input,), backward, "NormBackward1")


def _check_linear(x: np.ndarray, w: np.ndarray, bias: Tensor | None) -> None:
    """PyTorch's errors for ``linear``: one dtype for input, weight and bias; matching sizes."""
    if x.dtype != w.dtype or (bias is not None and bias._data.dtype != w.dtype):
        raise RuntimeError(
            f"mat1 and mat2 must have the same dtype, but got {D.pytorch_name(x.dtype)} and {D.pytorch_name(w.dtype)}"
            if x.dtype != w.dtype
            else f"expected bias of dtype {D.pytorch_name(w.dtype)}, but got {D.pytorch_name(bias._data.dtype)}"
        )
    if x.ndim == 0 or x.shape[-1] != w.shape[-1]:
        raise RuntimeError(
            f"mat1 and mat2 shapes cannot be multiplied ({'x'.join(map(str, (int(np.prod(x.shape[:-1])), x.shape[-1]) if x.ndim else ()))}"
            f" and {w.shape[1]}x{w.shape[0]})"
        )


def _weight_grad(g2: np.ndarray, x2: np.ndarray, weight: Tensor) -> np.ndarray:
    """``g2.T @ x2``, into the weight's recycled gradient buffer when it has one
    (:func:`dropcore.tensor._release_grad`; the same product, the same values)."""
    out = _spare_grad(weight, (g2.shape[1], x2.shape[1]), np.result_type(g2, x2))
    return g2.T @ x2 if out is None else np.matmul(g2.T, x2, out=out)


def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``input @ weight.T + bias`` as one node; ``weight`` is (out_features, in_features).

    The GEMMs are NumPy's (its BLAS); the bias is added in place on the fresh product,
    so the forward makes one pass over the output.
    """
    x, w = input._data, weight._data
    _check_linear(x, w, bias)
    lead = x.shape[:-1]
    x2 = x.reshape(-1, x.shape[-1])
    out = x2 @ w.T
    if bias is not None:
        out += bias._data
    parents = (input, weight) if bias is None else (input, weight, bias)

    def backward(g):
        g2 = g.reshape(-1, w.shape[0])
        gx = (g2 @ w).reshape(x.shape) if input.requires_grad else None
        gw = _weight_grad(g2, x2, weight) if weight.requires_grad else None
        if bias is None:
            return gx, gw
        return gx, gw, g2.sum(axis=0) if bias.requires_grad else None

    return _make_op(out.reshape(*lead, w.shape[0]), parents, backward, "AddmmBackward0")


_FUSABLE = (np.dtype(np.float32), np.dtype(np.float64))


def _linear_relu(input: Tensor, weight: Tensor, bias: Tensor | None, p: float = 0.0, generator=None,
                 inverted: bool = True, out: np.ndarray | None = None):
    """``dropout(relu(linear(input, weight, bias)), p)`` (training-mode dropout; ``p == 0``:
    no dropout) as ONE node, bit-identical to the three ops and drawing the same words.

    The forward is the GEMM, then one in-place pass of the Rust epilogue over its output
    (bias, ReLU and the dropout mask together); the backward gets the gradient of the
    GEMM output from the saved *output* alone (``y > 0 ? dy * s : 0``: kept and
    positive), so no mask is stored and no random word is recomputed, then runs the
    linear layer's three products exactly as :func:`linear` does. The node is named
    after the last op, as the output's ``grad_fn`` is in PyTorch (``NativeDropoutBackward0``
    or ``ReluBackward0``); its ``next_functions`` lead straight to the inputs.

    ``out``: a C-contiguous ``(rows, out_features)`` array of the input's dtype for the
    GEMM to write into (``np.matmul(out=)``: the same product), else a new array.

    Returns ``None`` (nothing drawn, nothing computed) for dtypes the kernels do not
    serve (float32/float64 only): the caller then runs the ops one by one.
    ``nn.Sequential`` calls this for ``Linear, ReLU[, Dropout]`` runs (see there).
    """
    x, w = input._data, weight._data
    _check_linear(x, w, bias)
    if x.dtype not in _FUSABLE:
        return None
    lead = x.shape[:-1]
    x2 = x.reshape(-1, x.shape[-1])
    z = x2 @ w.T if out is None else np.matmul(x2, w.T, out=out)
    if p > 0.0:
        if bias is not None:
            z += bias._data
        gen = _dropout._resolve(generator)
        n_words = _dropout._element_words(z.size)
        seed, offset = gen.take(n_words)
        try:
            _core.relu_dropout_(z, p, seed, offset, inverted)
        except BaseException:
            gen._untake(seed, offset, n_words)
            raise
        scale = 1.0 / (1.0 - p) if inverted and p < 1.0 else 1.0
        name = "NativeDropoutBackward0"
    else:
        _core.bias_relu_(z, None if bias is None else bias._data)
        scale, name = 1.0, "ReluBackward0"
    parents = (input, weight) if bias is None else (input, weight, bias)

    def backward(g):
        g2 = g.reshape(-1, w.shape[0])
        if not (g2.flags.c_contiguous and g2.flags.aligned and g2.dtype.isnative):
            g2 = np.ascontiguousarray(g2, dtype=z.dtype)
        gz = _core.relu_mask_backward(z, g2, scale)
        gx = (gz @ w).reshape(x.shape) if input.requires_grad else None
        gw = _weight_grad(gz, x2, weight) if weight.requires_grad else None
        if bias is None:
            return gx, gw
        return gx, gw, gz.sum(axis=0) if bias.requires_grad else None

    return _make_op(z.reshape(*lead, w.shape[0]), parents, backward, name, saves_output=True)


def _bind() -> None:
    for name in ("matmul", "mm", "bmm", "mv", "dot", "outer", "norm"):
        setattr(Tensor, name, globals()[name])
    Tensor.__matmul__ = matmul
    Tensor.__rmatmul__ = lambda self, other: matmul(other, self)


_bind()
