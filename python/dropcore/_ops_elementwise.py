"""Pointwise operations and reductions, each with its backward, bound as Tensor methods.

Dtypes follow PyTorch (see :mod:`._dtypes`): comparisons give ``bool``; ``/`` of
integers gives the default float dtype; ``sum``/``prod``/``cumsum`` of bool or integer
tensors give ``int64``; ``mean``/``std``/``var`` and the transcendental functions of an
integer tensor raise or promote exactly where PyTorch does.
"""

from __future__ import annotations

import builtins as _builtins
from collections import namedtuple
from typing import Any

import numpy as np

from . import _core
from . import _dtypes as D
from . import _grad_mode as GM
from .tensor import Tensor, _as_array, _dim_tuple, _make_op, _unbroadcast, _wrap

__all__ = [
    "add", "sub", "subtract", "mul", "multiply", "div", "divide", "true_divide", "floor_divide",
    "remainder", "pow", "neg", "negative", "abs", "sign", "exp", "log", "log2", "log10", "log1p",
    "expm1", "sqrt", "rsqrt", "square", "sin", "cos", "tanh", "sigmoid", "relu", "clamp", "clip",
    "maximum", "minimum", "where", "reciprocal", "floor", "ceil", "round", "trunc",
    "eq", "ne", "lt", "le", "gt", "ge", "greater", "less", "logical_not", "logical_and",
    "logical_or", "logical_xor", "isnan", "isinf", "isfinite", "isclose", "allclose", "equal",
    "sum", "mean", "prod", "cumsum", "std", "var", "max", "min", "amax", "amin", "argmax",
    "argmin", "all", "any", "logsumexp", "softmax", "log_softmax",
]

max_return = namedtuple("max", ["values", "indices"])
min_return = namedtuple("min", ["values", "indices"])
max_return.__module__ = min_return.__module__ = "dropcore.return_types"
max_return.__qualname__, min_return.__qualname__ = "max", "min"


# ----------------------------------------------------------------------------- operands
def _is_number(x: Any) -> bool:
    return isinstance(x, (bool, int, float, np.generic)) and not isinstance(x, (np.ndarray,))


def _operands(x: Any, y: Any, float_result: bool = False):
    """Tensors (or None for Python numbers), arrays/numbers cast to the result dtype, and that dtype."""
    xs = x if isinstance(x, Tensor) else (None if _is_number(x) else _wrap(_as_array(x)))
    ys = y if isinstance(y, Tensor) else (None if _is_number(y) else _wrap(_as_array(y)))
    xv = x.item() if xs is None and isinstance(x, np.generic) else x
    yv = y.item() if ys is None and isinstance(y, np.generic) else y
    arrays = tuple(t._data for t in (xs, ys) if t is not None)
    scalars = tuple(v for v, t in ((xv, xs), (yv, ys)) if t is None)
    rt = D.result_type(arrays, scalars)
    if float_result and rt.kind != "f":
        rt = D.default_np()
    a = xs._data.astype(rt, copy=False) if xs is not None else xv
    b = ys._data.astype(rt, copy=False) if ys is not None else yv
    return xs, ys, a, b, rt


def _binary(x, y, compute, grad_x, grad_y, name, saved="both", float_result=False):
    """One recorded binary op; ``grad_x(g, a, b, out)`` / ``grad_y`` give full-shape gradients."""
    xs, ys, a, b, rt = _operands(x, y, float_result)
    out = np.asarray(compute(a, b))
    if out.dtype != rt and rt.kind == out.dtype.kind:
        out = out.astype(rt)
    parents = tuple(t for t in (xs, ys) if t is not None)
    need_x = xs is not None and xs.requires_grad
    need_y = ys is not None and ys.requires_grad

    def backward(g):
        grads = []
        if xs is not None:
            grads.append(_unbroadcast(grad_x(g, a, b, out), np.shape(a)) if need_x else None)
        if ys is not None:
            grads.append(_unbroadcast(grad_y(g, a, b, out), np.shape(b)) if need_y else None)
        return grads

    # ``saved`` = (operands grad_x reads, operands grad_y reads): only those are version-checked.
    reads = ("xy", "xy") if saved == "both" else ("", "") if saved == "none" else saved
    tags = (reads[0] if need_x else "") + (reads[1] if need_y else "")
    keep = tuple(t for t, tag in ((xs, "x"), (ys, "y")) if t is not None and tag in tags)
    return _make_op(out, parents, backward, name, saved=keep)


def _check_no_bool_sub(x, y) -> None:
    xd = x._data.dtype if isinstance(x, Tensor) else np.asarray(x).dtype
    yd = y._data.dtype if isinstance(y, Tensor) else np.asarray(y).dtype
    if xd == np.bool_ and yd == np.bool_:
        raise NotImplementedError(
            "Subtraction, the `-` operator, with two bool tensors is not supported. "
            "Use the `^` or `logical_xor()` operator instead."
        )
    if xd == np.bool_ or yd == np.bool_:
        raise NotImplementedError(
            "Subtraction, the `-` operator, with a bool tensor is not supported. "
            "If you are trying to invert a mask, use the `~` or `logical_not()` operator instead."
        )


# ----------------------------------------------------------------------------- arithmetic
def add(input, other, *, alpha=1) -> Tensor:
    """``input + alpha * other`` with broadcasting."""
    if alpha != 1:
        other = mul(other, alpha)
    return _binary(input, other, np.add, lambda g, a, b, o: g, lambda g, a, b, o: g, "AddBackward0", saved="none")


def sub(input, other, *, alpha=1) -> Tensor:
    """``input - alpha * other`` with broadcasting."""
    _check_no_bool_sub(input, other)
    if alpha != 1:
        other = mul(other, alpha)
    return _binary(input, other, np.subtract, lambda g, a, b, o: g, lambda g, a, b, o: -g, "SubBackward0", saved="none")


subtract = sub


def _rsub(self, other) -> Tensor:
    _check_no_bool_sub(other, self)
    return _binary(other, self, np.subtract, lambda g, a, b, o: g, lambda g, a, b, o: -g, "RsubBackward1", saved="none")


def mul(input, other) -> Tensor:
    """Elementwise product with broadcasting."""
    return _binary(input, other, np.multiply, lambda g, a, b, o: g * b, lambda g, a, b, o: g * a, "MulBackward0",
                   saved=("y", "x"))


multiply = mul


def div(input, other, *, rounding_mode: str | None = None) -> Tensor:
    """``input / other``: true division (integers give the default float dtype), or
    ``rounding_mode="trunc"``/``"floor"`` (no gradient)."""
    if rounding_mode is None:
        return _binary(
            input, other, np.true_divide,
            lambda g, a, b, o: g / b, lambda g, a, b, o: -g * a / (b * b), "DivBackward0", saved=("y", "xy"),
            float_result=True,
        )
    if rounding_mode not in ("trunc", "floor"):
        raise ValueError(f"div expected rounding_mode to be one of None, 'trunc', or 'floor' but found '{rounding_mode}'")
    xs, ys, a, b, rt = _operands(input, other)
    if rt.kind == "f":
        q = np.true_divide(a, b)
        out = np.trunc(q) if rounding_mode == "trunc" else np.floor(q)
    else:
        _check_int_divisor(b)
        out = np.floor_divide(a, b) if rounding_mode == "floor" else np.trunc(np.true_divide(a, b)).astype(rt)
    return _make_op(np.asarray(out, rt), tuple(t for t in (xs, ys) if t is not None), _zero_grads(xs, ys), "DivBackward1", saved=())


divide = true_divide = div


def _check_int_divisor(b) -> None:
    if np.any(np.asarray(b) == 0):
        raise RuntimeError("ZeroDivisionError")


def _zero_grads(*ts):
    """Backward of a piecewise-constant op: zero gradient for every tensor input."""
    present = tuple(t for t in ts if t is not None)
    return lambda g: tuple(np.zeros(t._data.shape, g.dtype) for t in present)


def floor_divide(input, other) -> Tensor:
    return div(input, other, rounding_mode="floor")


def remainder(input, other) -> Tensor:
    """Python's ``%`` (the result has the divisor's sign); gradient 1 for ``input``."""
    xs, ys, a, b, rt = _operands(input, other)
    if rt.kind != "f":
        _check_int_divisor(b)
    out = np.asarray(np.remainder(a, b), rt)

    def backward(g):
        res = []
        if xs is not None:
            res.append(_unbroadcast(g, np.shape(a)))
        if ys is not None:
            res.append(_unbroadcast(-g * np.floor_divide(a, b), np.shape(b)))
        return res

    return _make_op(out, tuple(t for t in (xs, ys) if t is not None), backward, "RemainderBackward0")


def pow(input, exponent) -> Tensor:
    """``input ** exponent`` (either may be a tensor)."""
    if isinstance(input, Tensor) and _is_number(exponent):
        a = input._data
        e = exponent.item() if isinstance(exponent, np.generic) else exponent
        if a.dtype.kind in "iub" and isinstance(e, int) and not isinstance(e, bool) and e < 0:
            raise RuntimeError("Integers to negative integer powers are not allowed.")
        xs, _, a, e, rt = _operands(input, e)
        out = np.asarray(np.power(a, e), rt)

        def backward(g):
            if e == 0:
                return (np.zeros_like(g),)
            return (g * (e * np.power(a, e - 1)),)

        return _make_op(out, (input,), backward, "PowBackward0")

    def grad_base(g, a, b, o):
        return g * b * np.power(a, b - 1)

    def grad_exp(g, a, b, o):
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where((a == 0) & (b >= 0), 0, g * o * np.log(np.where(a == 0, 1, a)))

    return _binary(input, exponent, np.power, grad_base, grad_exp, "PowBackward1")


def _rpow(self, base) -> Tensor:
    return pow(base, self)


def neg(input: Tensor) -> Tensor:
    if input._data.dtype == np.bool_:
        raise RuntimeError("Negation, the `-` operator, on a bool tensor is not supported. If you are trying to invert a mask, use the `~` or `logical_not()` operator instead.")
    return _make_op(np.negative(input._data), (input,), lambda g: (-g,), "NegBackward0", saved=())


negative = neg


def _unary(input: Tensor, fn, grad, name: str, saves_output: bool = False, keep_int: bool = False) -> Tensor:
    """``fn`` elementwise; integer inputs promote to the default float dtype unless ``keep_int``."""
    a = input._data
    if a.dtype.kind != "f" and not keep_int:
        a = a.astype(D.default_np())
    out = np.asarray(fn(a))
    if keep_int and out.dtype != a.dtype:
        out = out.astype(a.dtype)
    saved = () if saves_output else None
    return _make_op(out, (input,), lambda g: (grad(g, a, out),), name, saved=saved, saves_output=saves_output)


def abs(input: Tensor) -> Tensor:
    return _unary(input, np.abs, lambda g, a, o: g * np.sign(a), "AbsBackward0", keep_int=True)


def sign(input: Tensor) -> Tensor:
    return _unary(input, np.sign, lambda g, a, o: np.zeros_like(g), "SignBackward0", keep_int=True)


def exp(input: Tensor) -> Tensor:
    return _unary(input, np.exp, lambda g, a, o: g * o, "ExpBackward0", saves_output=True)


def expm1(input: Tensor) -> Tensor:
    return _unary(input, np.expm1, lambda g, a, o: g * (o + 1), "Expm1Backward0", saves_output=True)


def log(input: Tensor) -> Tensor:
    return _unary(input, np.log, lambda g, a, o: g / a, "LogBackward0")


def log2(input: Tensor) -> Tensor:
    return _unary(input, np.log2, lambda g, a, o: g / (a * np.log(a.dtype.type(2))), "Log2Backward0")


def log10(input: Tensor) -> Tensor:
    return _unary(input, np.log10, lambda g, a, o: g / (a * np.log(a.dtype.type(10))), "Log10Backward0")


def log1p(input: Tensor) -> Tensor:
    return _unary(input, np.log1p, lambda g, a, o: g / (1 + a), "Log1PBackward0")


def sqrt(input: Tensor) -> Tensor:
    return _unary(input, np.sqrt, lambda g, a, o: g / (2 * o), "SqrtBackward0", saves_output=True)


def rsqrt(input: Tensor) -> Tensor:
    return _unary(input, lambda a: 1 / np.sqrt(a), lambda g, a, o: -0.5 * g * o * o * o, "RsqrtBackward0", saves_output=True)


def square(input: Tensor) -> Tensor:
    return pow(input, 2)


def reciprocal(input: Tensor) -> Tensor:
    return _unary(input, np.reciprocal, lambda g, a, o: -g * o * o, "ReciprocalBackward0", saves_output=True)


def sin(input: Tensor) -> Tensor:
    return _unary(input, np.sin, lambda g, a, o: g * np.cos(a), "SinBackward0")


def cos(input: Tensor) -> Tensor:
    return _unary(input, np.cos, lambda g, a, o: -g * np.sin(a), "CosBackward0")


def tanh(input: Tensor) -> Tensor:
    return _unary(input, np.tanh, lambda g, a, o: g * (1 - o * o), "TanhBackward0", saves_output=True)


def _sigmoid(a: np.ndarray) -> np.ndarray:
    e = np.exp(-np.abs(a))  # never overflows
    return np.where(a >= 0, 1 / (1 + e), e / (1 + e)).astype(a.dtype, copy=False)


def sigmoid(input: Tensor) -> Tensor:
    return _unary(input, _sigmoid, lambda g, a, o: g * o * (1 - o), "SigmoidBackward0", saves_output=True)


def relu(input: Tensor) -> Tensor:
    a = input._data
    if a.dtype == np.bool_:
        raise RuntimeError("\"clamp_min_cpu\" not implemented for 'Bool'")
    # NumPy 2.x's maximum with a scalar operand is not vectorised (~1 ns per element, 6x
    # a copy); the Rust kernel gives the same values (NaN kept, -0.0 -> +0.0) in one pass.
    out = _core.relu(a) if a.dtype in _RELU_FAST and _behaved(a) else np.maximum(a, a.dtype.type(0))
    return _make_op(out, (input,), lambda g: (_relu_backward(out, g),), "ReluBackward0", saved=(), saves_output=True)


_RELU_FAST = (np.dtype(np.float32), np.dtype(np.float64))


def _behaved(a: np.ndarray) -> bool:
    """Whether the Rust kernels can read ``a`` as one slice (C-contiguous, aligned, native)."""
    flags = a.flags
    return flags.c_contiguous and flags.aligned and a.dtype.isnative


def _relu_backward(out: np.ndarray, g: np.ndarray) -> np.ndarray:
    """``where(out > 0, g, 0)`` (PyTorch's threshold_backward) without a per-element branch.

    ``np.where`` on a random mask mispredicts every other element (~10x slower at 256x256);
    ANDing the gradient's bits with an all-ones/all-zeros word per element gives the same
    values exactly (kept bits, or +0.0; NaN and -0.0 in ``g`` survive where ``out > 0``).
    """
    if g.dtype.kind != "f" or g.shape != out.shape:
        return np.where(out > 0, g, 0).astype(g.dtype, copy=False)
    if g.dtype == out.dtype and g.dtype in _RELU_FAST and _behaved(g) and _behaved(out):
        return _core.relu_mask_backward(out, g, 1.0)  # the same select, one pass
    bits = np.dtype(f"u{g.dtype.itemsize}")
    word = np.multiply(out > 0, np.iinfo(bits).max, dtype=bits)  # 1 -> all ones, 0 -> 0
    np.bitwise_and(word, np.ascontiguousarray(g).view(bits), out=word)
    return word.view(g.dtype)


def _rounding(fn, name):
    def op(input: Tensor) -> Tensor:
        a = input._data
        return _make_op(np.asarray(fn(a)) if a.dtype.kind == "f" else a.copy(), (input,), _zero_grads(input), name, saved=())

    op.__name__ = fn.__name__
    return op


floor = _rounding(np.floor, "FloorBackward0")
ceil = _rounding(np.ceil, "CeilBackward0")
trunc = _rounding(np.trunc, "TruncBackward0")


def round(input: Tensor, *, decimals: int = 0) -> Tensor:  # noqa: A001
    a = input._data
    out = np.round(a, decimals) if a.dtype.kind == "f" else a.copy()
    return _make_op(np.asarray(out), (input,), _zero_grads(input), "RoundBackward0", saved=())


def clamp(input: Tensor, min=None, max=None) -> Tensor:  # noqa: A002
    """Limit values to ``[min, max]`` (``min(max(input, min), max)``, as in PyTorch).

    The gradient goes to ``input`` where it was inside the bounds and, when a bound is a
    tensor, to that bound where it was the value taken.
    """
    if min is None and max is None:
        raise RuntimeError("torch.clamp: At least one of 'min' or 'max' must not be None")
    a = input._data
    lo = _as_array(min) if isinstance(min, Tensor) else min
    hi = _as_array(max) if isinstance(max, Tensor) else max
    scalars = tuple(v for v in (min, max) if v is not None and not isinstance(v, Tensor))
    rt = D.result_type((a,) + tuple(v for v in (lo, hi) if isinstance(v, np.ndarray)), scalars)
    x = a.astype(rt, copy=False)
    lifted = x if lo is None else np.maximum(x, lo)
    out = lifted if hi is None else np.minimum(lifted, hi)
    out = x.copy() if out is x else np.asarray(out, rt)
    bound_parents = tuple(t for t in (min, max) if isinstance(t, Tensor))

    def backward(g):
        below_hi = np.ones(g.shape, bool) if hi is None else lifted <= hi
        inside = below_hi if lo is None else below_hi & (x >= lo)
        grads = [np.where(inside, g, 0).astype(g.dtype, copy=False)]
        if isinstance(min, Tensor):
            grads.append(_unbroadcast(np.where(below_hi & (x < lo), g, 0).astype(g.dtype, copy=False), lo.shape))
        if isinstance(max, Tensor):
            grads.append(_unbroadcast(np.where(~below_hi, g, 0).astype(g.dtype, copy=False), hi.shape))
        return grads

    return _make_op(out, (input,) + bound_parents, backward, "ClampBackward1" if not bound_parents else "ClampBackward0")


clip = clamp


def maximum(input: Tensor, other: Tensor) -> Tensor:
    """Elementwise max; at ties the gradient is split evenly, as in PyTorch."""
    return _binary(
        input, other, np.maximum,
        lambda g, a, b, o: g * ((a > b) + 0.5 * (a == b)), lambda g, a, b, o: g * ((b > a) + 0.5 * (a == b)),
        "MaximumBackward0",
    )


def minimum(input: Tensor, other: Tensor) -> Tensor:
    """Elementwise min; at ties the gradient is split evenly, as in PyTorch."""
    return _binary(
        input, other, np.minimum,
        lambda g, a, b, o: g * ((a < b) + 0.5 * (a == b)), lambda g, a, b, o: g * ((b < a) + 0.5 * (a == b)),
        "MinimumBackward0",
    )


def where(condition, input=None, other=None):
    """``input`` where ``condition`` holds, else ``other``; ``where(condition)`` gives the indices."""
    c = _as_array(condition)
    if input is None and other is None:
        return tuple(_wrap(i.astype(np.int64)) for i in np.nonzero(c))
    if c.dtype != np.bool_:
        raise RuntimeError(f"where expected condition to be a boolean tensor, but got a tensor with dtype {D.pytorch_name(c.dtype)}")
    return _binary(
        input, other, lambda a, b: np.where(c, a, b),
        lambda g, a, b, o: np.where(c, g, 0), lambda g, a, b, o: np.where(c, 0, g), "WhereBackward0", saved="none",
    )


# ----------------------------------------------------------------------------- comparisons
def _compare(fn, name):
    def op(input, other) -> Tensor:
        if other is None:
            raise TypeError(f"{name}() received an invalid combination of arguments: other is None")
        _, _, a, b, _ = _operands(input, other)
        return _wrap(np.asarray(fn(a, b)))

    op.__name__ = name
    op.__doc__ = f"Elementwise ``{name}`` with broadcasting; a bool tensor, no gradient."
    return op


eq = _compare(np.equal, "eq")
ne = _compare(np.not_equal, "ne")
lt = less = _compare(np.less, "lt")
le = _compare(np.less_equal, "le")
gt = greater = _compare(np.greater, "gt")
ge = _compare(np.greater_equal, "ge")


def _logical(fn, name):
    def op(input, other=None) -> Tensor:
        if other is None:
            return _wrap(np.asarray(fn(_as_array(input))))
        return _wrap(np.asarray(fn(_as_array(input), _as_array(other))))

    op.__name__ = name
    return op


logical_not = _logical(np.logical_not, "logical_not")
logical_and = _logical(np.logical_and, "logical_and")
logical_or = _logical(np.logical_or, "logical_or")
logical_xor = _logical(np.logical_xor, "logical_xor")


def _bitwise(fn, name):
    def op(self, other) -> Tensor:
        _, _, a, b, rt = _operands(self, other)
        if rt.kind == "f":
            raise TypeError(f"\"{name}_cpu\" not implemented for '{D.pytorch_name(rt)}'")
        return _wrap(np.asarray(fn(a, b), rt))

    return op


def isnan(input: Tensor) -> Tensor:
    return _wrap(np.isnan(input._data))


def isinf(input: Tensor) -> Tensor:
    return _wrap(np.isinf(input._data))


def isfinite(input: Tensor) -> Tensor:
    return _wrap(np.isfinite(input._data))


def isclose(input: Tensor, other: Tensor, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False) -> Tensor:
    return _wrap(np.isclose(_as_array(input), _as_array(other), rtol=rtol, atol=atol, equal_nan=equal_nan))


def allclose(input: Tensor, other: Tensor, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False) -> bool:
    """``True`` if ``|input - other| <= atol + rtol * |other|`` everywhere (PyTorch's test)."""
    return bool(np.allclose(_as_array(input), _as_array(other), rtol=rtol, atol=atol, equal_nan=equal_nan))


def equal(input: Tensor, other: Tensor) -> bool:
    """``True`` if both have the same shape and the same values."""
    a, b = _as_array(input), _as_array(other)
    return a.shape == b.shape and bool(np.array_equal(a, b))


# ----------------------------------------------------------------------------- reductions
def _reduce_dims(input: Tensor, dim, axis):
    if axis is not None:
        if dim is not None:
            raise TypeError("pass dim or axis, not both")
        dim = axis
    return _dim_tuple(dim, input._data.ndim)


def _expand_back(g: np.ndarray, axes, keepdim: bool, shape) -> np.ndarray:
    """A reduced gradient broadcast back to the input's shape."""
    if axes is not None and not keepdim and len(shape):
        g = np.expand_dims(g, axes)
    return np.broadcast_to(g, shape)


def _int_accumulator(a: np.ndarray, dtype) -> np.dtype:
    """PyTorch's accumulation dtype: int64 for bool/integer inputs unless ``dtype`` is given."""
    if dtype is not None:
        return D.np_dtype(dtype)
    return np.dtype(np.int64) if a.dtype.kind in "biu" else a.dtype


def sum(input: Tensor, dim=None, keepdim: bool = False, *, dtype=None, axis=None) -> Tensor:  # noqa: A001
    """Sum over ``dim`` (all elements by default); bool and integer tensors sum to int64.

    Args:
        input: the tensor.
        dim: a dimension or a tuple of them (``axis=`` is accepted too); ``None`` sums all.
        keepdim: keep the reduced dimensions with size 1.
        dtype: accumulate and return in this dtype.

    Example:
        >>> (dropcore.tensor([1, 2, 2]) == 2).sum()
        tensor(2)
    """
    a = input._data
    axes = _reduce_dims(input, dim, axis)
    rt = _int_accumulator(a, dtype)
    out = np.asarray(a.sum(axis=axes, keepdims=keepdim, dtype=rt))
    shape = a.shape
    return _make_op(out, (input,), lambda g: (np.array(_expand_back(g, axes, keepdim, shape)),), "SumBackward0", saved=())


def _float_only(a: np.ndarray, what: str, dtype=None) -> np.dtype:
    if dtype is not None:
        return D.np_dtype(dtype)
    if a.dtype.kind != "f":
        raise NotImplementedError(
            f"{what}(): could not infer output dtype. Input dtype must be either a floating point or complex "
            f"dtype. Got: {D.pytorch_name(a.dtype)}"
        )
    return a.dtype


def mean(input: Tensor, dim=None, keepdim: bool = False, *, dtype=None, axis=None) -> Tensor:
    """Mean over ``dim``; integer and bool tensors raise, as in PyTorch (pass ``dtype=``).

    Example:
        >>> (dropcore.tensor([1.0, -1.0, 2.0, 3.0]) > 0).float().mean()
        tensor(0.75)
    """
    a = input._data
    rt = _float_only(a, "mean", dtype)
    axes = _reduce_dims(input, dim, axis)
    count = a.size if axes is None else int(np.prod([a.shape[d] for d in axes])) if a.ndim else 1
    out = np.asarray(a.mean(axis=axes, keepdims=keepdim, dtype=rt), rt)
    shape = a.shape

    def backward(g):
        return (np.array(_expand_back(g / g.dtype.type(count) if count else g * np.nan, axes, keepdim, shape)),)

    return _make_op(out, (input,), backward, "MeanBackward1" if axes is not None else "MeanBackward0", saved=())


def prod(input: Tensor, dim: int | None = None, keepdim: bool = False, *, dtype=None) -> Tensor:
    """Product over one ``dim`` (or all); bool and integer tensors give int64."""
    a = input._data
    rt = _int_accumulator(a, dtype)
    if dim is None:
        flat = a.reshape(-1).astype(rt, copy=False)
        out = np.asarray(flat.prod(dtype=rt))

        def backward(g):
            return (_prod_grad(flat, 0, g.reshape(1)).reshape(a.shape),)

        return _make_op(out, (input,), backward, "ProdBackward0")
    (d,) = _dim_tuple(dim, a.ndim)
    x = a.astype(rt, copy=False) if a.ndim else a.reshape(1)
    out = np.asarray(x.prod(axis=d if a.ndim else 0, keepdims=keepdim and a.ndim > 0, dtype=rt))

    def backward_dim(g):
        gk = g if keepdim or not a.ndim else np.expand_dims(g, d)
        return (_prod_grad(x, d if a.ndim else 0, gk).reshape(a.shape),)

    return _make_op(out, (input,), backward_dim, "ProdBackward1")


def _prod_grad(x: np.ndarray, d: int, g: np.ndarray) -> np.ndarray:
    """d prod / d x_i = product of the others (exclusive prefix times suffix products; zeros safe)."""
    ones = np.ones_like(np.take(x, [0], axis=d))
    before = np.cumprod(np.concatenate([ones, np.delete(x, -1, axis=d)], axis=d), axis=d)
    after = np.flip(np.cumprod(np.concatenate([ones, np.flip(np.delete(x, 0, axis=d), d)], axis=d), axis=d), d)
    return g * before * after


def cumsum(input: Tensor, dim: int, *, dtype=None) -> Tensor:
    """Running sum along ``dim``; bool and integer tensors give int64."""
    a = input._data
    rt = _int_accumulator(a, dtype)
    if a.ndim == 0:
        return _make_op(a.astype(rt), (input,), lambda g: (g,), "CumsumBackward0", saved=())
    (d,) = _dim_tuple(dim, a.ndim)
    out = np.cumsum(a, axis=d, dtype=rt)
    return _make_op(out, (input,), lambda g: (np.flip(np.cumsum(np.flip(g, d), axis=d), d),), "CumsumBackward0", saved=())


def _correction(unbiased, correction) -> float:
    if correction is not None:
        if unbiased is not None:
            raise TypeError("pass unbiased or correction, not both")
        return float(correction)
    return 1.0 if unbiased is None or unbiased else 0.0


def var(input: Tensor, dim=None, unbiased=None, keepdim: bool = False, *, correction=None, axis=None) -> Tensor:
    """Variance over ``dim`` with Bessel's correction by default (``correction=1``).

    Args:
        dim: dimension(s) to reduce; ``None`` for all.
        unbiased: ``False`` divides by N (the same as ``correction=0``).
        keepdim: keep the reduced dimensions with size 1.
        correction: N - correction is the divisor.
    """
    if isinstance(dim, bool):  # legacy var(input, unbiased)
        dim, unbiased = None, dim
    a = input._data
    if a.dtype.kind != "f":
        raise NotImplementedError("std and var only support floating point and complex dtypes")
    axes = _reduce_dims(input, dim, axis)
    corr = _correction(unbiased, correction)
    n = a.size if axes is None else int(np.prod([a.shape[d] for d in axes])) if a.ndim else 1
    m = a.mean(axis=axes, keepdims=True)
    dev = a - m
    denom = _builtins.max(n - corr, 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.asarray((dev * dev).sum(axis=axes, keepdims=keepdim) / a.dtype.type(denom), a.dtype)
    shape = a.shape

    def backward(g):
        with np.errstate(divide="ignore", invalid="ignore"):
            return ((_expand_back(g, axes, keepdim, shape) * (2 / a.dtype.type(denom)) * dev).astype(a.dtype, copy=False),)

    return _make_op(out, (input,), backward, "VarBackward0")


def std(input: Tensor, dim=None, unbiased=None, keepdim: bool = False, *, correction=None, axis=None) -> Tensor:
    """Standard deviation over ``dim`` with Bessel's correction by default (``correction=1``)."""
    if isinstance(dim, bool):
        dim, unbiased = None, dim
    v = var(input, dim, unbiased, keepdim, correction=correction, axis=axis)
    return sqrt(v)


def _extreme(input: Tensor, dim, keepdim: bool, which: str, other=None):
    if isinstance(dim, Tensor):  # max(input, other): elementwise
        return maximum(input, dim) if which == "max" else minimum(input, dim)
    a = input._data
    arg = np.argmax if which == "max" else np.argmin
    if dim is None:
        if a.size == 0:
            raise RuntimeError(f"{which}(): Expected reduction dim to be specified for input.numel() == 0. Specify the reduction dim with the 'dim' argument.")
        v = a.max() if which == "max" else a.min()
        ties = a == v

        def backward_all(g):
            # PyTorch spreads the gradient of a full max/min evenly over tied elements.
            return ((ties * (g / g.dtype.type(ties.sum()) if g.dtype.kind == "f" else g)).astype(g.dtype, copy=False),)

        return _make_op(np.asarray(v), (input,), backward_all, "MaxBackward1" if which == "max" else "MinBackward1")
    (d,) = _dim_tuple(dim, a.ndim)
    x = a if a.ndim else a.reshape(1)
    idx = arg(x, axis=d, keepdims=True)
    vals = np.take_along_axis(x, idx, axis=d)

    def backward(g):
        out = np.zeros(x.shape, g.dtype)
        np.put_along_axis(out, idx, g.reshape(idx.shape), axis=d)
        return (out.reshape(a.shape),)

    squeeze = not keepdim or not a.ndim
    values = _make_op(vals.squeeze(d) if squeeze and a.ndim else vals.reshape(a.shape) if not a.ndim else vals,
                      (input,), backward, "MaxBackward0" if which == "max" else "MinBackward0", saved=())
    indices = _wrap((idx.squeeze(d) if squeeze and a.ndim else idx.reshape(a.shape) if not a.ndim else idx).astype(np.int64))
    return (max_return if which == "max" else min_return)(values, indices)


def max(input: Tensor, dim=None, keepdim: bool = False, *, axis=None):  # noqa: A001
    """The largest element (a 0-d tensor), ``(values, indices)`` over ``dim``, or ``max(a, b)`` elementwise.

    Example:
        >>> _, predicted = dropcore.max(dropcore.tensor([[0.1, 2.0], [3.0, -1.0]]), 1)
        >>> predicted
        tensor([1, 0])
    """
    return _extreme(input, axis if axis is not None else dim, keepdim, "max")


def min(input: Tensor, dim=None, keepdim: bool = False, *, axis=None):  # noqa: A001
    """The smallest element (a 0-d tensor), ``(values, indices)`` over ``dim``, or ``min(a, b)`` elementwise."""
    return _extreme(input, axis if axis is not None else dim, keepdim, "min")


def _amax(input: Tensor, dim, keepdim: bool, which: str) -> Tensor:
    a = input._data
    axes = _dim_tuple(() if dim is None or dim == () else dim, a.ndim) if dim not in (None, ()) else None
    fn = np.max if which == "max" else np.min
    out = np.asarray(fn(a, axis=axes, keepdims=keepdim))
    shape = a.shape

    def backward(g):
        full = fn(a, axis=axes, keepdims=True)
        ties = a == full
        count = ties.sum(axis=axes, keepdims=True)
        return ((_expand_back(g, axes, keepdim, shape) * ties / count).astype(g.dtype, copy=False),)

    return _make_op(out, (input,), backward, "AmaxBackward0" if which == "max" else "AminBackward0")


def amax(input: Tensor, dim=(), keepdim: bool = False) -> Tensor:
    return _amax(input, dim, keepdim, "max")


def amin(input: Tensor, dim=(), keepdim: bool = False) -> Tensor:
    return _amax(input, dim, keepdim, "min")


def _arg(fn, name):
    def op(input: Tensor, dim: int | None = None, keepdim: bool = False, *, axis: int | None = None) -> Tensor:
        if axis is not None:
            dim = axis
        a = input._data
        if dim is None:
            r = np.asarray(fn(a))
            return _wrap((r.reshape((1,) * a.ndim) if keepdim else r).astype(np.int64))
        (d,) = _dim_tuple(dim, a.ndim)
        if not a.ndim:
            return _wrap(np.zeros((), np.int64))
        return _wrap(fn(a, axis=d, keepdims=keepdim).astype(np.int64))

    op.__name__ = name
    op.__doc__ = f"Indices of the {name[3:]}imum values over ``dim`` (of the flattened tensor by default), int64."
    return op


argmax = _arg(np.argmax, "argmax")
argmin = _arg(np.argmin, "argmin")


def all(input: Tensor, dim=None, keepdim: bool = False, *, axis=None) -> Tensor:  # noqa: A001
    axes = _reduce_dims(input, dim, axis)
    return _wrap(np.asarray(np.all(input._data, axis=axes, keepdims=keepdim)))


def any(input: Tensor, dim=None, keepdim: bool = False, *, axis=None) -> Tensor:  # noqa: A001
    axes = _reduce_dims(input, dim, axis)
    return _wrap(np.asarray(np.any(input._data, axis=axes, keepdims=keepdim)))


def logsumexp(input: Tensor, dim, keepdim: bool = False) -> Tensor:
    """``log(sum(exp(input), dim))`` without overflow."""
    a = input._data
    axes = _dim_tuple(dim, a.ndim)
    m = np.max(a, axis=axes, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    lse = np.log(np.exp(a - m).sum(axis=axes, keepdims=True)) + m
    out = lse if keepdim else np.squeeze(lse, axis=axes) if a.ndim else lse.reshape(())
    shape = a.shape
    return _make_op(np.asarray(out, a.dtype), (input,),
                    lambda g: (_expand_back(g, axes, keepdim, shape) * np.exp(a - lse),), "LogsumexpBackward0")


def softmax(input: Tensor, dim: int = -1, dtype=None) -> Tensor:
    """``exp(x) / sum(exp(x), dim)``, shifted by the max so it never overflows."""
    a = input._data if dtype is None else input._data.astype(D.np_dtype(dtype))
    if a.dtype.kind != "f":
        raise RuntimeError(f"\"softmax_lastdim_kernel_impl\" not implemented for '{D.pytorch_name(a.dtype)}'")
    z = np.exp(a - a.max(axis=dim, keepdims=True))
    out = z / z.sum(axis=dim, keepdims=True)
    return _make_op(out, (input,), lambda g: (out * (g - (g * out).sum(axis=dim, keepdims=True)),), "SoftmaxBackward0",
                    saved=(), saves_output=True)


def log_softmax(input: Tensor, dim: int = -1, dtype=None) -> Tensor:
    """``log(softmax(x, dim))`` computed stably."""
    a = input._data if dtype is None else input._data.astype(D.np_dtype(dtype))
    if a.dtype.kind != "f":
        raise RuntimeError(f"\"log_softmax_lastdim_kernel_impl\" not implemented for '{D.pytorch_name(a.dtype)}'")
    shifted = a - a.max(axis=dim, keepdims=True)
    out = shifted - np.log(np.exp(shifted).sum(axis=dim, keepdims=True))
    return _make_op(out, (input,), lambda g: (g - np.exp(out) * g.sum(axis=dim, keepdims=True),), "LogSoftmaxBackward0",
                    saved=(), saves_output=True)


# ----------------------------------------------------------------------------- in place
def _binary_inplace(ufunc, outofplace, inplace_name):
    """``self <op>= other``: NumPy's ``out=`` when nothing is recorded, else the recorded op."""

    def method(self: Tensor, other, **kwargs) -> Tensor:
        alpha = kwargs.get("alpha", 1)
        recording = GM._state.enabled and (self.requires_grad or (isinstance(other, Tensor) and other.requires_grad))
        if recording or alpha != 1 or kwargs.get("rounding_mode") is not None:
            return self._inplace_from(lambda s: outofplace(s, other, **kwargs), (other,))
        self._check_inplace()
        _, _, a, b, rt = _operands(self, other, float_result=ufunc is np.true_divide)
        dst = self._data
        if rt != dst.dtype and D.promote_types(rt, dst.dtype) != dst.dtype:
            raise RuntimeError(
                f"result type {D.pytorch_name(rt)} can't be cast to the desired output type {D.pytorch_name(dst.dtype)}"
            )
        if np.shape(b) != dst.shape and np.broadcast_shapes(np.shape(b), dst.shape) != dst.shape:
            raise RuntimeError(
                f"output with shape {list(dst.shape)} doesn't match the broadcast shape "
                f"{list(np.broadcast_shapes(np.shape(b), dst.shape))}"
            )
        if not dst.flags.writeable:
            raise RuntimeError("the tensor's storage is a read-only NumPy array; clone() it first")
        ufunc(dst, b, out=dst, casting="unsafe")
        self._vbox[0] += 1
        return self

    method.__name__ = inplace_name
    method.__doc__ = f"In-place ``{inplace_name[:-1]}``: writes into this tensor and returns it."
    return method


def _inplace_of(outofplace, name):
    def method(self: Tensor, *args, **kwargs) -> Tensor:
        return self._inplace_from(lambda s: outofplace(s, *args, **kwargs), args + tuple(kwargs.values()))

    method.__name__ = name
    method.__doc__ = f"In-place ``{name[:-1]}``: writes into this tensor and returns it."
    return method


_OPERANDS = (Tensor, np.ndarray, np.generic, bool, int, float, list, tuple)


def _operator(fn):
    """``fn`` as a binary operator: NotImplemented for an operand that is not a tensor,
    an array, a number or a (nested) sequence, so Python falls back as with PyTorch."""

    def op(self, other):
        if other is not None and not isinstance(other, _OPERANDS):
            return NotImplemented
        return fn(self, other)

    op.__name__, op.__doc__ = getattr(fn, "__name__", "op"), fn.__doc__
    return op


# ----------------------------------------------------------------------------- binding
def _bind() -> None:
    T = Tensor
    for name in (
        "add", "sub", "subtract", "mul", "multiply", "div", "divide", "true_divide", "floor_divide", "remainder",
        "pow", "neg", "negative", "abs", "sign", "exp", "log", "log2", "log10", "log1p", "expm1", "sqrt",
        "rsqrt", "square", "sin", "cos", "tanh", "sigmoid", "relu", "clamp", "clip", "maximum", "minimum",
        "reciprocal", "floor", "ceil", "round", "trunc", "eq", "ne", "lt", "le", "gt", "ge", "greater", "less",
        "logical_not", "logical_and", "logical_or", "logical_xor", "isnan", "isinf", "isfinite", "isclose",
        "allclose", "equal", "sum", "mean", "prod", "cumsum", "std", "var", "max", "min", "amax", "amin",
        "argmax", "argmin", "all", "any", "logsumexp", "softmax", "log_softmax",
    ):
        setattr(T, name, globals()[name])
    T.where = lambda self, condition, other: where(condition, self, other)
    # Operators give way (NotImplemented) to operands that are not numbers, arrays or
    # tensors, as PyTorch's do: ``t == object()`` is False, ``t + "a"`` a TypeError.
    dunders = {
        "__add__": add, "__radd__": add, "__sub__": sub, "__rsub__": _rsub, "__mul__": mul, "__rmul__": mul,
        "__truediv__": div, "__rtruediv__": lambda self, other: div(other, self),
        "__floordiv__": floor_divide, "__rfloordiv__": lambda self, other: floor_divide(other, self),
        "__mod__": remainder, "__rmod__": lambda self, other: remainder(other, self),
        "__pow__": pow, "__rpow__": _rpow,
        "__eq__": lambda self, other: False if other is None else eq(self, other),
        "__ne__": lambda self, other: True if other is None else ne(self, other),
        "__lt__": lt, "__le__": le, "__gt__": gt, "__ge__": ge,
        "__and__": _bitwise(np.bitwise_and, "bitwise_and"), "__or__": _bitwise(np.bitwise_or, "bitwise_or"),
        "__xor__": _bitwise(np.bitwise_xor, "bitwise_xor"),
    }
    for rname, name in (("__rand__", "__and__"), ("__ror__", "__or__"), ("__rxor__", "__xor__")):
        dunders[rname] = dunders[name]
    for name, fn in dunders.items():
        setattr(T, name, _operator(fn))
    T.__neg__ = neg
    T.__pos__ = lambda self: self
    T.__abs__ = abs
    T.__invert__ = lambda self: _wrap(np.logical_not(self._data) if self._data.dtype == np.bool_ else np.invert(self._data))
    # in place
    T.add_ = T.__iadd__ = _binary_inplace(np.add, add, "add_")
    T.sub_ = T.__isub__ = _binary_inplace(np.subtract, sub, "sub_")
    T.mul_ = T.__imul__ = _binary_inplace(np.multiply, mul, "mul_")
    T.div_ = T.__itruediv__ = _binary_inplace(np.true_divide, div, "div_")
    for name in ("pow", "neg", "abs", "sign", "exp", "log", "sqrt", "tanh", "sigmoid", "relu", "clamp", "clip",
                 "floor", "ceil", "round", "trunc", "reciprocal", "square"):
        setattr(T, name + "_", _inplace_of(globals()[name], name + "_"))
    T.__ipow__ = T.pow_


_bind()
