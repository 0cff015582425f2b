"""Creating tensors: from data, filled, ranges, and random draws from dropcore's Philox stream.

Every random function takes ``generator=`` where PyTorch does and draws its words from
that :class:`dropcore.Generator` (the default one otherwise), so a seed reproduces
results on any machine. Uniform floats use 24 bits (float32, one word each) or 53 bits
(float64, two words each); normals are Box-Muller over float64 uniforms.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import _dtypes as D
from . import _grad_mode as GM
from ._device import check_device
from .tensor import Tensor, _as_array, _make_op, _sizes, _wrap

__all__ = [
    "tensor", "as_tensor", "from_numpy", "zeros", "ones", "full", "empty", "eye", "arange", "linspace",
    "zeros_like", "ones_like", "full_like", "empty_like", "rand", "randn", "rand_like", "randn_like",
    "randint", "randint_like", "randperm", "normal", "bernoulli",
]


def _leaf(arr: np.ndarray, requires_grad: bool) -> Tensor:
    D.check_storable(arr.dtype)
    t = _wrap(arr)
    if requires_grad:
        t.requires_grad_(True)
    return t


def _dtype_or_default(dtype) -> np.dtype:
    return D.np_dtype(dtype) if dtype is not None else D.default_np()


def _infer(data: Any) -> np.ndarray:
    """``data`` as a new array with PyTorch's inferred dtype (Python floats -> the default dtype)."""
    if isinstance(data, Tensor):
        return data._data.copy()
    if isinstance(data, (np.ndarray, np.generic)):
        return np.array(data, copy=True)
    if isinstance(data, (list, tuple)) and data and any(isinstance(x, Tensor) for x in data):
        data = [x.tolist() if isinstance(x, Tensor) else x for x in data]
    arr = np.array(data)
    if arr.dtype == np.float64:
        arr = arr.astype(D.default_np())
    if arr.dtype.kind == "O" or arr.dtype.kind in "US":
        raise TypeError(f"Could not infer dtype of {type(data).__name__}")
    return arr


# ----------------------------------------------------------------------------- from data
def tensor(data: Any, dtype=None, device=None, requires_grad: bool = False, pin_memory: bool = False) -> Tensor:
    """A new tensor holding a copy of ``data``.

    Python floats give the default dtype (float32), Python ints int64, bools bool; an
    ``np.ndarray`` keeps its dtype.

    Examples:
        >>> dropcore.tensor([[1.0, 2.0], [3.0, 4.0]]).dtype
        dropcore.float32
    """
    check_device(device)
    arr = _infer(data) if dtype is None else np.array(_as_array(data) if isinstance(data, Tensor) else data,
                                                       dtype=D.np_dtype(dtype))
    return _leaf(arr, requires_grad)


def as_tensor(data: Any, dtype=None, device=None) -> Tensor:
    """``data`` as a tensor, sharing memory with a Tensor or ndarray of the right dtype."""
    check_device(device)
    if isinstance(data, Tensor):
        return data if dtype is None or data.dtype == dtype else data.to(dtype)
    if isinstance(data, np.ndarray):
        return _leaf(data if dtype is None else data.astype(D.np_dtype(dtype), copy=False), False)
    return tensor(data, dtype=dtype)


def from_numpy(ndarray: np.ndarray) -> Tensor:
    """A Tensor sharing memory with ``ndarray`` (no copy; the dtype is kept)."""
    if not isinstance(ndarray, np.ndarray):
        raise TypeError(f"expected np.ndarray (got {type(ndarray).__name__})")
    return _leaf(ndarray, False)


# ----------------------------------------------------------------------------- filled
def _filled(fill, size, dtype, device, requires_grad) -> Tensor:
    check_device(device)
    shape = _sizes(size)
    if any(n < 0 for n in shape):
        raise RuntimeError(f"Trying to create tensor with negative dimension {min(shape)}: {list(shape)}")
    return _leaf(fill(shape, _dtype_or_default(dtype)), requires_grad)


def zeros(*size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A tensor of zeros of shape ``size`` (default dtype float32)."""
    return _filled(np.zeros, size, dtype, device, requires_grad)


def ones(*size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A tensor of ones of shape ``size`` (default dtype float32)."""
    return _filled(np.ones, size, dtype, device, requires_grad)


def empty(*size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """An uninitialised tensor of shape ``size``: fill it (``normal_``, ``uniform_``, ...) before use."""
    return _filled(np.empty, size, dtype, device, requires_grad)


def full(size, fill_value, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A tensor of shape ``size`` filled with ``fill_value`` (its Python type picks the default dtype)."""
    if dtype is None:
        dtype = D.to_dtype(type(fill_value.item() if isinstance(fill_value, (Tensor, np.generic)) else fill_value))
    value = fill_value.item() if isinstance(fill_value, Tensor) else fill_value
    return _filled(lambda shape, d: np.full(shape, value, d), (size,) if isinstance(size, int) else tuple(size),
                   dtype, device, requires_grad)


def eye(n: int, m: int | None = None, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """The ``n x m`` identity matrix (``m = n`` by default)."""
    check_device(device)
    return _leaf(np.eye(n, n if m is None else m, dtype=_dtype_or_default(dtype)), requires_grad)


def arange(start, end=None, step=1, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """``start, start + step, ...`` below ``end``: int64 for integer arguments, else the default float dtype."""
    check_device(device)
    if end is None:
        start, end = 0, start
    if step == 0:
        raise RuntimeError("step must be nonzero")
    if dtype is None:
        is_float = any(isinstance(v, float) or (isinstance(v, Tensor) and v.is_floating_point()) for v in (start, end, step))
        d = D.default_np() if is_float else np.dtype(np.int64)
    else:
        d = D.np_dtype(dtype)
    vals = [v.item() if isinstance(v, Tensor) else v for v in (start, end, step)]
    return _leaf(np.arange(*vals).astype(d, copy=False), requires_grad)


def linspace(start, end, steps: int, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """``steps`` evenly spaced values from ``start`` to ``end`` inclusive."""
    check_device(device)
    if steps < 0:
        raise RuntimeError("number of steps must be non-negative")
    return _leaf(np.linspace(float(start), float(end), int(steps)).astype(_dtype_or_default(dtype)), requires_grad)


def _like(input: Tensor, dtype) -> tuple[tuple[int, ...], np.dtype]:
    return input.shape, (D.np_dtype(dtype) if dtype is not None else input._data.dtype)


def zeros_like(input: Tensor, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    check_device(device)
    shape, d = _like(input, dtype)
    return _leaf(np.zeros(shape, d), requires_grad)


def ones_like(input: Tensor, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    check_device(device)
    shape, d = _like(input, dtype)
    return _leaf(np.ones(shape, d), requires_grad)


def empty_like(input: Tensor, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    check_device(device)
    shape, d = _like(input, dtype)
    return _leaf(np.empty(shape, d), requires_grad)


def full_like(input: Tensor, fill_value, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    check_device(device)
    shape, d = _like(input, dtype)
    return _leaf(np.full(shape, fill_value, d), requires_grad)


# ----------------------------------------------------------------------------- random
def _words(generator, n: int) -> np.ndarray:
    """``n`` consecutive 32-bit Philox words from ``generator`` (the default one if None)."""
    from .random import _draw_words  # MemoryError before drawing; words given back on failure

    return _draw_words(generator, n)


def _uniform_from(generator, n: int, dtype) -> np.ndarray:
    """``n`` uniforms in [0, 1) from the Philox stream (24/53-bit precision)."""
    if np.dtype(dtype) == np.float32:
        w = _words(generator, n)
        return ((w >> np.uint32(8)).astype(np.float32) * np.float32(2.0**-24)).astype(np.float32)
    w = _words(generator, 2 * n).astype(np.uint64).reshape(n, 2)
    bits = (w[:, 0] << np.uint64(21)) ^ (w[:, 1] >> np.uint64(11))
    return (bits & np.uint64((1 << 53) - 1)).astype(np.float64) * 2.0**-53


def _normal_from(generator, n: int) -> np.ndarray:
    """``n`` standard normals (float64): Box-Muller over pairs of 53-bit uniforms."""
    u = _uniform_from(generator, 2 * ((n + 1) // 2), np.float64).reshape(2, -1)
    r = np.sqrt(-2.0 * np.log1p(-u[0]))
    return np.concatenate([r * np.cos(2 * np.pi * u[1]), r * np.sin(2 * np.pi * u[1])])[:n]


def _u64_from(generator, n: int) -> np.ndarray:
    w = _words(generator, 2 * n).astype(np.uint64).reshape(n, 2)
    return (w[:, 0] << np.uint64(32)) | w[:, 1]


def _float_dtype(dtype) -> np.dtype:
    d = _dtype_or_default(dtype)
    if d.kind != "f":
        raise RuntimeError(f"\"check_uniform_bounds\" not implemented for '{D.pytorch_name(d)}'")
    return d


def rand(*size, generator=None, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Uniform [0, 1) samples drawn from dropcore's Philox stream (reproducible per seed)."""
    check_device(device)
    shape = _sizes(size)
    d = _float_dtype(dtype)
    return _leaf(_uniform_from(generator, math.prod(shape), d).reshape(shape), requires_grad)


def randn(*size, generator=None, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Standard normal samples (Box-Muller over Philox uniforms)."""
    check_device(device)
    shape = _sizes(size)
    d = _float_dtype(dtype)
    return _leaf(_normal_from(generator, math.prod(shape)).astype(d).reshape(shape), requires_grad)


def rand_like(input: Tensor, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return rand(*input.shape, dtype=dtype or input.dtype, device=device, requires_grad=requires_grad)


def randn_like(input: Tensor, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return randn(*input.shape, dtype=dtype or input.dtype, device=device, requires_grad=requires_grad)


def _randint_array(low: int, high: int, shape, generator, d) -> np.ndarray:
    if high <= low:
        raise RuntimeError(f"random_ expects 'from' to be less than 'to', but got from={low} >= to={high}")
    n = int(np.prod(shape))
    span = np.uint64(high - low)
    # 64-bit words modulo the span: the bias is below span / 2**64.
    return (np.int64(low) + (_u64_from(generator, n) % span).astype(np.int64)).astype(d).reshape(shape)


def randint(low, high=None, size=None, *, generator=None, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Integers drawn uniformly from ``[low, high)`` (``randint(high, size)`` starts at 0); int64 by default.

    Args:
        low: lowest value (inclusive), 0 if omitted.
        high: one above the highest value.
        size: the output shape (a tuple).
        generator: the :class:`dropcore.Generator` to draw from (the default one if None).

    Example:
        >>> dropcore.randint(0, 10, (3,), generator=dropcore.Generator(0)).shape
        (3,)
    """
    check_device(device)
    if size is None:
        if high is None or not isinstance(high, (tuple, list)):
            raise TypeError("randint() missing required argument 'size'")
        low, high, size = 0, low, high
    elif high is None:
        low, high = 0, low
    d = D.np_dtype(dtype) if dtype is not None else np.dtype(np.int64)
    return _leaf(_randint_array(int(low), int(high), tuple(size), generator, d), requires_grad)


def randint_like(input: Tensor, low=0, high=None, *, dtype=None) -> Tensor:
    if high is None:
        low, high = 0, low
    return _leaf(_randint_array(int(low), int(high), input.shape, None, D.np_dtype(dtype or input.dtype)), False)


def randperm(n: int, *, generator=None, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A random permutation of ``0 .. n-1`` (argsort of 64-bit Philox keys); int64 by default."""
    check_device(device)
    keys = _u64_from(generator, int(n))
    d = D.np_dtype(dtype) if dtype is not None else np.dtype(np.int64)
    return _leaf(np.argsort(keys, kind="stable").astype(d), requires_grad)


def normal(mean, std=1.0, size=None, *, generator=None, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Normal samples with the given mean(s) and standard deviation(s) (tensors broadcast).

    Example (d2l's weight init):
        >>> W1 = dropcore.normal(0, 0.01, size=(784, 256), requires_grad=True)
    """
    check_device(device)
    if size is not None:
        shape = _sizes((size,) if isinstance(size, int) else (tuple(size),))
        d = _float_dtype(dtype)
    else:
        shape = np.broadcast_shapes(np.shape(_as_array(mean)), np.shape(_as_array(std)))
        d = next((t._data.dtype for t in (mean, std) if isinstance(t, Tensor)), D.default_np())
    z = _normal_from(generator, int(np.prod(shape))).reshape(shape)
    return _leaf((_as_array(mean) + _as_array(std) * z).astype(d), requires_grad)


def bernoulli(input: Tensor, p=None, *, generator=None) -> Tensor:
    """0/1 samples with probabilities ``input`` (or the scalar ``p``), in ``input``'s dtype."""
    probs = _as_array(input) if p is None else np.full(input.shape, p)
    u = _uniform_from(generator, int(np.prod(input.shape)), np.float64).reshape(input.shape)
    return _leaf((u < probs).astype(input._data.dtype), False)


# ----------------------------------------------------------------------------- filling in place
def _fill_inplace(self: Tensor, values: np.ndarray | Any, name: str) -> Tensor:
    """Overwrite every element; a recorded graph sees a constant (zero gradient to the old values)."""
    if GM._state.enabled and self.requires_grad:
        arr = np.broadcast_to(np.asarray(values, self._data.dtype), self._data.shape)
        return self._inplace_from(
            lambda s: _make_op(np.array(arr), (s,), lambda g: (np.zeros_like(g),), name, saved=())
        )
    self._check_inplace()
    if not self._data.flags.writeable:
        raise RuntimeError("the tensor's storage is a read-only NumPy array; clone() it first")
    self._data[...] = values
    self._vbox[0] += 1
    return self


def _zero_(self: Tensor) -> Tensor:
    """Fill with zeros, in place."""
    return _fill_inplace(self, 0, "ZeroBackward0")


def _fill_(self: Tensor, value) -> Tensor:
    """Fill with ``value``, in place."""
    if isinstance(value, Tensor):
        if value._data.ndim:
            raise RuntimeError(
                f"fill_ only supports 0-dimension value tensor but got tensor with {value._data.ndim} dimensions."
            )
        value = value.item()
    return _fill_inplace(self, value, "FillBackward0")


def _copy_(self: Tensor, src, non_blocking: bool = False) -> Tensor:
    """Copy ``src`` (broadcast, any dtype) into this tensor; gradients flow back to ``src``."""
    st = src if isinstance(src, Tensor) else None
    s = _as_array(src)
    if np.broadcast_shapes(s.shape, self.shape) != self.shape:
        raise RuntimeError(f"output with shape {list(self.shape)} doesn't match the broadcast shape {list(s.shape)}")
    if st is None or not (GM._state.enabled and st.requires_grad):
        return _fill_inplace(self, s, "CopyBackwards")
    shape = s.shape

    def compute(dst: Tensor) -> Tensor:
        out = np.array(np.broadcast_to(s, dst.shape), dtype=dst._data.dtype)
        return _make_op(out, (dst, st), lambda g: (np.zeros_like(g), _unbroadcast_to(g, shape)), "CopyBackwards", saved=())

    return self._inplace_from(compute, (st,))


def _unbroadcast_to(g, shape):
    from .tensor import _unbroadcast

    return _unbroadcast(g, shape)


def _random_fill(self: Tensor, draw, name: str) -> Tensor:
    if self._data.dtype.kind != "f":
        raise NotImplementedError(f"\"{name}\" not implemented for '{D.pytorch_name(self._data.dtype)}'")
    return _fill_inplace(self, draw(int(self._data.size)).reshape(self.shape).astype(self._data.dtype), name)


def _normal_(self: Tensor, mean: float = 0.0, std: float = 1.0, *, generator=None) -> Tensor:
    """Fill with N(mean, std^2) samples from the Philox stream, in place."""
    if std < 0:
        raise RuntimeError(f"normal expects std >= 0.0, but found std {std}")
    return _random_fill(self, lambda n: mean + std * _normal_from(generator, n), "normal_kernel_cpu")


def _uniform_(self: Tensor, a: float = 0.0, b: float = 1.0, *, generator=None) -> Tensor:
    """Fill with U[a, b) samples from the Philox stream, in place (``from``/``to`` in PyTorch)."""
    if a > b:
        raise RuntimeError(f"uniform_ expects to return a [from, to) range, but found from={a} > to={b}")
    return _random_fill(self, lambda n: a + (b - a) * _uniform_from(generator, n, np.float64), "uniform_kernel_cpu")


def _bernoulli_(self: Tensor, p=0.5, *, generator=None) -> Tensor:
    """Fill with 1 (probability ``p``) or 0, in place; ``p`` may be a tensor of probabilities."""
    probs = _as_array(p) if isinstance(p, Tensor) else p
    if np.any((np.asarray(probs) < 0) | (np.asarray(probs) > 1)):
        raise RuntimeError(f"bernoulli_ expects p to be in [0, 1], but got p={p}")
    u = _uniform_from(generator, int(self._data.size), np.float64).reshape(self.shape)
    return _fill_inplace(self, (u < probs).astype(self._data.dtype), "BernoulliBackward")


def _random_(self: Tensor, from_: int = 0, to: int | None = None, *, generator=None) -> Tensor:
    """Fill with integers drawn uniformly from ``[from, to)``, in place."""
    if to is None:
        from_, to = 0, from_ if from_ else (2**24 if self._data.dtype == np.float32 else 2**53)
    return _fill_inplace(self, _randint_array(int(from_), int(to), self.shape, generator, self._data.dtype), "RandomBackward")


# ----------------------------------------------------------------------------- new_* methods
def _new_factory(fill):
    def method(self: Tensor, *size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
        check_device(device)
        d = D.np_dtype(dtype) if dtype is not None else self._data.dtype
        return _leaf(fill(_sizes(size), d), requires_grad)

    return method


def _new_full(self: Tensor, size, fill_value, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    check_device(device)
    d = D.np_dtype(dtype) if dtype is not None else self._data.dtype
    return _leaf(np.full(tuple(size), fill_value, d), requires_grad)


def _new_tensor(self: Tensor, data, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    check_device(device)
    d = D.np_dtype(dtype) if dtype is not None else self._data.dtype
    return _leaf(np.array(_as_array(data) if isinstance(data, Tensor) else data, dtype=d), requires_grad)


def _bind() -> None:
    T = Tensor
    T.zero_, T.fill_, T.copy_ = _zero_, _fill_, _copy_
    T.normal_, T.uniform_, T.bernoulli_, T.random_ = _normal_, _uniform_, _bernoulli_, _random_
    T.bernoulli = lambda self, p=None, *, generator=None: bernoulli(self, p, generator=generator)
    T.new_zeros = _new_factory(np.zeros)
    T.new_ones = _new_factory(np.ones)
    T.new_empty = _new_factory(np.empty)
    T.new_full = _new_full
    T.new_tensor = _new_tensor


_bind()
