"""Tensor: a NumPy array with a recorded graph, in the spirit of micrograd.

Each operation builds its output with :func:`_make_op`, which records the parents
and a ``_backward`` closure mapping the output's gradient to one gradient per parent.
:meth:`Tensor.backward` sorts the graph topologically and walks it in reverse,
summing gradients; only leaves that require grad get ``.grad`` (accumulated across
calls, as in PyTorch). Elementwise work is NumPy's or the Rust engine's: no Python
loops over elements.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any, Callable, Iterable, Sequence

import numpy as np

__all__ = [
    "Tensor",
    "tensor",
    "from_numpy",
    "zeros",
    "ones",
    "full",
    "zeros_like",
    "ones_like",
    "rand",
    "randn",
    "arange",
    "cat",
    "stack",
    "no_grad",
    "enable_grad",
    "is_grad_enabled",
    "set_grad_enabled",
    "float32",
    "float64",
    "get_default_dtype",
    "set_default_dtype",
]

float32 = np.float32
float64 = np.float64
_default_dtype = np.dtype(np.float32)

Backward = Callable[[np.ndarray], Sequence["np.ndarray | None"]]


# ----------------------------------------------------------------------------- grad mode
class _GradMode(threading.local):
    enabled = True


_grad_mode = _GradMode()


def is_grad_enabled() -> bool:
    return _grad_mode.enabled


class set_grad_enabled(contextlib.ContextDecorator):
    """Context manager / decorator that sets grad mode (thread-local, as in PyTorch)."""

    def __init__(self, mode: bool) -> None:
        self.mode = bool(mode)
        self.prev = _grad_mode.enabled
        _grad_mode.enabled = self.mode

    def __enter__(self) -> "set_grad_enabled":
        return self

    def __exit__(self, *exc: Any) -> None:
        _grad_mode.enabled = self.prev


class _GradModeContext(contextlib.ContextDecorator):
    """Sets grad mode to ``_mode`` inside a ``with`` block or a decorated function."""

    _mode = True

    def __enter__(self):
        self.prev = _grad_mode.enabled
        _grad_mode.enabled = self._mode
        return self

    def __exit__(self, *exc: Any) -> None:
        _grad_mode.enabled = self.prev


class no_grad(_GradModeContext):
    """Disable graph recording: ``with dropcore.no_grad(): ...`` or ``@dropcore.no_grad()``."""

    _mode = False


class enable_grad(_GradModeContext):
    """Enable graph recording inside a ``no_grad`` region."""

    _mode = True


def get_default_dtype():
    return _default_dtype.type


def set_default_dtype(dtype) -> None:
    global _default_dtype
    d = np.dtype(dtype)
    if d not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise TypeError(f"only float32 and float64 are supported as default dtype, but got {d}")
    _default_dtype = d


# ----------------------------------------------------------------------------- helpers
def _as_array(x: Any, dtype=None) -> np.ndarray:
    """A Tensor's data, or ``x`` as an array (Python floats become the default dtype)."""
    if isinstance(x, Tensor):
        return x.data
    if isinstance(x, np.ndarray):
        return x if dtype is None else x.astype(dtype, copy=False)
    arr = np.asarray(x)
    if dtype is not None:
        return arr.astype(dtype, copy=False)
    if arr.dtype == np.float64 and not isinstance(x, np.floating):
        arr = arr.astype(_default_dtype)
    return arr


def _unbroadcast(g: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum ``g`` down to ``shape`` (the reverse of NumPy broadcasting)."""
    if g.shape == shape:
        return g
    extra = g.ndim - len(shape)
    if extra:
        g = g.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    return g.reshape(shape)


def _operand(other: Any, like: np.ndarray) -> "Tensor":
    """``other`` as a Tensor; Python scalars take ``like``'s dtype (never upcast)."""
    if isinstance(other, Tensor):
        return other
    if isinstance(other, (bool, int, float)):
        return Tensor(np.asarray(other, dtype=like.dtype if like.dtype.kind == "f" else None))
    return Tensor(np.asarray(other))


def _make_op(data: np.ndarray, parents: tuple["Tensor", ...], backward: Backward, op: str) -> "Tensor":
    """The output of an operation; records the graph when grad mode is on and a parent needs it.

    ``backward(g)`` receives the output's gradient (an array of ``data``'s shape) and
    returns one gradient per parent, already in that parent's shape (``None`` skips it).
    """
    out = Tensor(data)
    if _grad_mode.enabled and any(p.requires_grad for p in parents):
        out.requires_grad = True
        out._prev = parents
        out._backward = backward
        out._op = op
    return out


def _dim_tuple(dim, ndim: int):
    if dim is None:
        return None
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    return tuple(d % ndim if ndim else d for d in dims)


# ----------------------------------------------------------------------------- Tensor
class Tensor:
    """A float32/float64 (or integer, for labels) array with autograd.

    Args:
        data: an ``np.ndarray`` (wrapped without a copy) or anything ``np.asarray`` takes.
        requires_grad: record operations on this tensor for :meth:`backward`.
    """

    __slots__ = ("data", "grad", "requires_grad", "_prev", "_backward", "_op", "_retain", "__weakref__")
    __array_priority__ = 1000  # ndarray (op) Tensor -> Tensor's reflected op

    def __init__(self, data: Any, requires_grad: bool = False, dtype=None) -> None:
        arr = _as_array(data, dtype)
        self.data: np.ndarray = arr
        self.grad: Tensor | None = None
        self.requires_grad = False
        self._prev: tuple[Tensor, ...] = ()
        self._backward: Backward | None = None
        self._op = ""
        self._retain = False
        if requires_grad:
            self.requires_grad_(True)

    # -- basic properties
    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def T(self) -> "Tensor":
        return self.permute(*reversed(range(self.ndim)))

    @property
    def is_leaf(self) -> bool:
        return self._backward is None

    @property
    def grad_fn(self) -> str | None:
        return self._op or None

    def size(self, dim: int | None = None):
        return self.data.shape if dim is None else self.data.shape[dim]

    def dim(self) -> int:
        return self.data.ndim

    def numel(self) -> int:
        return int(self.data.size)

    def __len__(self) -> int:
        return len(self.data)

    def numpy(self) -> np.ndarray:
        if self.requires_grad:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() instead.")
        return self.data

    def item(self) -> float:
        if self.data.size != 1:
            raise ValueError(f"a Tensor with {self.data.size} elements cannot be converted to Scalar")
        return self.data.reshape(()).item()

    def tolist(self):
        return self.data.tolist()

    def __repr__(self) -> str:
        body = np.array2string(self.data, separator=", ", prefix="tensor(")
        extra = ""
        if self.data.dtype != _default_dtype and self.data.dtype.kind == "f":
            extra += f", dtype=dropcore.{self.data.dtype}"
        if self._op:
            extra += f", grad_fn=<{self._op}>"
        elif self.requires_grad:
            extra += ", requires_grad=True"
        return f"tensor({body}{extra})"

    def __array__(self, dtype=None, copy=None):
        return self.data if dtype is None else self.data.astype(dtype)

    def __bool__(self) -> bool:
        return bool(self.data)

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __hash__(self) -> int:
        return id(self)

    # -- autograd
    def requires_grad_(self, requires_grad: bool = True) -> "Tensor":
        if requires_grad and self.data.dtype.kind != "f":
            raise RuntimeError("only Tensors of floating point dtype can require gradients")
        if not self.is_leaf and not requires_grad:
            raise RuntimeError("you can only change requires_grad flags of leaf variables")
        self.requires_grad = bool(requires_grad)
        return self

    def retain_grad(self) -> "Tensor":
        """Keep ``.grad`` on this non-leaf tensor after backward."""
        self._retain = True
        return self

    def detach(self) -> "Tensor":
        """The same data, cut from the graph."""
        return Tensor(self.data)

    def detach_(self) -> "Tensor":
        self._prev, self._backward, self._op, self.requires_grad = (), None, "", False
        return self

    def clone(self) -> "Tensor":
        return _make_op(self.data.copy(), (self,), lambda g: (g,), "CloneBackward")

    def backward(self, gradient: Any = None, retain_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into every leaf's ``.grad``.

        Args:
            gradient: d(loss)/d(self); may be omitted for a one-element tensor.
            retain_graph: keep the graph so backward can run through it again.
        """
        if not self.requires_grad:
            raise RuntimeError("element 0 of tensors does not require grad and does not have a grad_fn")
        if gradient is None:
            if self.data.size != 1:
                raise RuntimeError("grad can be implicitly created only for scalar outputs")
            g0 = np.ones_like(self.data)
        else:
            g0 = _as_array(gradient).astype(self.data.dtype, copy=False)
            if g0.shape != self.data.shape:
                raise ValueError(f"gradient has shape {g0.shape} but the tensor has shape {self.data.shape}")
        order = self._topological_order()
        grads: dict[int, np.ndarray] = {id(self): g0}
        handed_out: set[int] = {id(g0)}  # arrays some .grad may already hold
        for node in order:
            g = grads.pop(id(node), None)
            if g is None:
                continue
            if node._backward is None or node._retain:
                node._accumulate(g, handed_out)
                if node._backward is None:
                    continue
            parent_grads = node._backward(g)
            for parent, pg in zip(node._prev, parent_grads):
                if pg is None or not parent.requires_grad:
                    continue
                key = id(parent)
                if key in grads:
                    grads[key] = grads[key] + pg
                else:
                    grads[key] = pg
            if not retain_graph:
                node._backward = _freed_backward
        return None

    def _accumulate(self, g: np.ndarray, handed_out: set[int]) -> None:
        g = np.asarray(g, dtype=self.data.dtype)
        if g.shape != self.data.shape:
            g = g.reshape(self.data.shape)
        if self.grad is None:
            # Keep a fresh gradient array as it is; copy one that is a view or that
            # another .grad (or the caller) may hold, so no two .grad share memory.
            if g.base is not None or id(g) in handed_out:
                g = g.copy()
            handed_out.add(id(g))
            self.grad = Tensor(g)
        else:
            self.grad = Tensor(self.grad.data + g)

    def _topological_order(self) -> list["Tensor"]:
        """Nodes reachable from self, each after every node that uses it (iterative DFS)."""
        order: list[Tensor] = []
        seen: set[int] = set()
        stack: list[tuple[Tensor, bool]] = [(self, False)]
        while stack:
            node, expanded = stack.pop()
            if expanded:
                order.append(node)
                continue
            if id(node) in seen:
                continue
            seen.add(id(node))
            stack.append((node, True))
            for p in node._prev:
                if p.requires_grad and id(p) not in seen:
                    stack.append((p, False))
        order.reverse()
        return order

    # -- arithmetic (broadcasting, gradients summed back to each operand's shape)
    def __add__(self, other: Any) -> "Tensor":
        o = _operand(other, self.data)
        a, b = self.data, o.data
        return _make_op(a + b, (self, o), lambda g: (_unbroadcast(g, a.shape), _unbroadcast(g, b.shape)), "AddBackward0")

    __radd__ = __add__

    def __sub__(self, other: Any) -> "Tensor":
        o = _operand(other, self.data)
        a, b = self.data, o.data
        return _make_op(a - b, (self, o), lambda g: (_unbroadcast(g, a.shape), _unbroadcast(-g, b.shape)), "SubBackward0")

    def __rsub__(self, other: Any) -> "Tensor":
        return _operand(other, self.data) - self

    def __mul__(self, other: Any) -> "Tensor":
        o = _operand(other, self.data)
        a, b = self.data, o.data
        return _make_op(
            a * b, (self, o), lambda g: (_unbroadcast(g * b, a.shape), _unbroadcast(g * a, b.shape)), "MulBackward0"
        )

    __rmul__ = __mul__

    def __truediv__(self, other: Any) -> "Tensor":
        o = _operand(other, self.data)
        a, b = self.data, o.data
        return _make_op(
            a / b,
            (self, o),
            lambda g: (_unbroadcast(g / b, a.shape), _unbroadcast(-g * a / (b * b), b.shape)),
            "DivBackward0",
        )

    def __rtruediv__(self, other: Any) -> "Tensor":
        return _operand(other, self.data) / self

    def __neg__(self) -> "Tensor":
        return _make_op(-self.data, (self,), lambda g: (-g,), "NegBackward0")

    def __pos__(self) -> "Tensor":
        return self

    def __pow__(self, exponent: Any) -> "Tensor":
        a = self.data
        if isinstance(exponent, Tensor):
            e = exponent.data
            out = a**e
            return _make_op(
                out,
                (self, exponent),
                lambda g: (
                    _unbroadcast(g * e * a ** (e - 1), a.shape),
                    _unbroadcast(g * out * np.log(np.where(a > 0, a, 1)), e.shape),
                ),
                "PowBackward1",
            )
        e = exponent
        return _make_op(a**e, (self,), lambda g: (g * e * a ** (e - 1),), "PowBackward0")

    def __rpow__(self, base: Any) -> "Tensor":
        return _operand(base, self.data) ** self

    def __matmul__(self, other: Any) -> "Tensor":
        o = _operand(other, self.data)
        a, b = self.data, o.data

        def backward(g):
            # 1-D operands act as a row (left) or a column (right), as in np.matmul.
            a2 = a[None, :] if a.ndim == 1 else a
            b2 = b[:, None] if b.ndim == 1 else b
            g2 = np.expand_dims(g, -2) if a.ndim == 1 else g
            g2 = np.expand_dims(g2, -1) if b.ndim == 1 else g2
            ga = _unbroadcast(g2 @ np.swapaxes(b2, -1, -2), a2.shape).reshape(a.shape)
            gb = _unbroadcast(np.swapaxes(a2, -1, -2) @ g2, b2.shape).reshape(b.shape)
            return ga, gb

        return _make_op(a @ b, (self, o), backward, "MmBackward0")

    def __rmatmul__(self, other: Any) -> "Tensor":
        return _operand(other, self.data) @ self

    # -- comparisons (no gradient)
    def _cmp(self, other: Any, fn) -> "Tensor":
        return Tensor(fn(self.data, _as_array(other)))

    def __eq__(self, other: Any) -> "Tensor":  # type: ignore[override]
        return self._cmp(other, np.equal)

    def __ne__(self, other: Any) -> "Tensor":  # type: ignore[override]
        return self._cmp(other, np.not_equal)

    def __lt__(self, other: Any) -> "Tensor":
        return self._cmp(other, np.less)

    def __le__(self, other: Any) -> "Tensor":
        return self._cmp(other, np.less_equal)

    def __gt__(self, other: Any) -> "Tensor":
        return self._cmp(other, np.greater)

    def __ge__(self, other: Any) -> "Tensor":
        return self._cmp(other, np.greater_equal)

    # -- reductions
    def sum(self, dim=None, keepdim: bool = False) -> "Tensor":
        a = self.data
        axes = _dim_tuple(dim, a.ndim)
        out = a.sum(axis=axes, keepdims=keepdim)

        def backward(g):
            if axes is not None and not keepdim:
                g = np.expand_dims(g, axes)
            return (np.broadcast_to(g, a.shape).copy(),)

        return _make_op(np.asarray(out, dtype=a.dtype), (self,), backward, "SumBackward0")

    def mean(self, dim=None, keepdim: bool = False) -> "Tensor":
        a = self.data
        axes = _dim_tuple(dim, a.ndim)
        count = a.size if axes is None else int(np.prod([a.shape[d] for d in axes]))
        return self.sum(dim, keepdim) * (1.0 / max(count, 1))

    def max(self, dim: int | None = None, keepdim: bool = False):
        """Max over everything (a Tensor), or over ``dim``: ``(values, indices)`` like PyTorch."""
        a = self.data
        if dim is None:
            idx = int(np.argmax(a))

            def backward_all(g):
                out = np.zeros_like(a)
                out.flat[idx] = g
                return (out,)

            return _make_op(np.asarray(a.flat[idx]), (self,), backward_all, "MaxBackward1")
        d = dim % a.ndim
        idx = np.argmax(a, axis=d)
        vals = np.take_along_axis(a, np.expand_dims(idx, d), axis=d)

        def backward(g):
            out = np.zeros_like(a)
            gi = g if keepdim else np.expand_dims(g, d)
            np.put_along_axis(out, np.expand_dims(idx, d), gi, axis=d)
            return (out,)

        values = _make_op(vals if keepdim else vals.squeeze(d), (self,), backward, "MaxBackward0")
        indices = Tensor(idx if not keepdim else np.expand_dims(idx, d))
        return values, indices

    def argmax(self, dim: int | None = None, keepdim: bool = False) -> "Tensor":
        if dim is None:
            return Tensor(np.asarray(np.argmax(self.data)))
        r = np.argmax(self.data, axis=dim)
        return Tensor(np.expand_dims(r, dim) if keepdim else r)

    def norm(self, p: float = 2, dim=None, keepdim: bool = False) -> "Tensor":
        """The p-norm over ``dim`` (all elements by default); p = 2 is the Euclidean norm."""
        a = self.data
        axes = _dim_tuple(dim, a.ndim)
        if p == 2:
            n = np.sqrt((a * a).sum(axis=axes, keepdims=True))
        elif p == 1:
            n = np.abs(a).sum(axis=axes, keepdims=True)
        else:
            n = (np.abs(a) ** p).sum(axis=axes, keepdims=True) ** (1.0 / p)

        def backward(g):
            gk = g.reshape(n.shape)  # g has the reduced shape; n kept the reduced axes
            with np.errstate(invalid="ignore", divide="ignore"):
                if p == 1:
                    r = np.sign(a)
                else:
                    r = np.where(n > 0, np.sign(a) * np.abs(a) ** (p - 1) / n ** (p - 1), 0)
            return ((gk * r).astype(a.dtype, copy=False),)

        out = n if keepdim else (n.reshape(()) if axes is None else n.squeeze(axes))
        return _make_op(np.asarray(out, dtype=a.dtype), (self,), backward, "NormBackward1")

    # -- shape
    def reshape(self, *shape) -> "Tensor":
        shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        a = self.data
        return _make_op(a.reshape(shape), (self,), lambda g: (g.reshape(a.shape),), "ViewBackward0")

    view = reshape

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> "Tensor":
        shape = self.data.shape
        if not shape:
            return self.reshape(1)
        s, e = start_dim % len(shape), end_dim % len(shape)
        new = shape[:s] + (int(np.prod(shape[s : e + 1])),) + shape[e + 1 :]
        return self.reshape(new)

    def permute(self, *dims) -> "Tensor":
        dims = tuple(dims[0]) if len(dims) == 1 and isinstance(dims[0], (tuple, list)) else dims
        inv = np.argsort(dims)
        return _make_op(np.transpose(self.data, dims), (self,), lambda g: (np.transpose(g, inv),), "PermuteBackward0")

    def transpose(self, dim0: int, dim1: int) -> "Tensor":
        dims = list(range(self.ndim))
        dims[dim0], dims[dim1] = dims[dim1], dims[dim0]
        return self.permute(*dims)

    def t(self) -> "Tensor":
        return self.transpose(0, 1) if self.ndim == 2 else self

    def unsqueeze(self, dim: int) -> "Tensor":
        d = dim if dim >= 0 else dim + self.ndim + 1
        return self.reshape(self.shape[:d] + (1,) + self.shape[d:])

    def squeeze(self, dim: int | None = None) -> "Tensor":
        if dim is None:
            return self.reshape(tuple(n for n in self.shape if n != 1))
        d = dim % max(self.ndim, 1)
        if self.ndim and self.shape[d] == 1:
            return self.reshape(self.shape[:d] + self.shape[d + 1 :])
        return self

    def expand(self, *shape) -> "Tensor":
        shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        a = self.data
        shape = tuple(a.shape[i - (len(shape) - a.ndim)] if n == -1 else n for i, n in enumerate(shape))
        return _make_op(np.broadcast_to(a, shape), (self,), lambda g: (_unbroadcast(g, a.shape),), "ExpandBackward0")

    def contiguous(self) -> "Tensor":
        return self

    def __getitem__(self, index) -> "Tensor":
        if isinstance(index, Tensor):
            index = index.data
        elif isinstance(index, tuple):
            index = tuple(i.data if isinstance(i, Tensor) else i for i in index)
        a = self.data

        def backward(g):
            out = np.zeros_like(a)
            np.add.at(out, index, g)
            return (out,)

        return _make_op(np.asarray(a[index]), (self,), backward, "IndexBackward0")

    # -- elementwise functions
    def exp(self) -> "Tensor":
        out = np.exp(self.data)
        return _make_op(out, (self,), lambda g: (g * out,), "ExpBackward0")

    def log(self) -> "Tensor":
        a = self.data
        return _make_op(np.log(a), (self,), lambda g: (g / a,), "LogBackward0")

    def sqrt(self) -> "Tensor":
        out = np.sqrt(self.data)
        return _make_op(out, (self,), lambda g: (g / (2 * out),), "SqrtBackward0")

    def abs(self) -> "Tensor":
        a = self.data
        return _make_op(np.abs(a), (self,), lambda g: (g * np.sign(a),), "AbsBackward0")

    def relu(self) -> "Tensor":
        a = self.data
        return _make_op(np.maximum(a, 0), (self,), lambda g: (np.where(a > 0, g, 0).astype(g.dtype, copy=False),), "ReluBackward0")

    def sigmoid(self) -> "Tensor":
        a = self.data
        out = np.where(a >= 0, 1 / (1 + np.exp(-np.abs(a))), np.exp(-np.abs(a)) / (1 + np.exp(-np.abs(a)))).astype(a.dtype)
        return _make_op(out, (self,), lambda g: (g * out * (1 - out),), "SigmoidBackward0")

    def tanh(self) -> "Tensor":
        out = np.tanh(self.data)
        return _make_op(out, (self,), lambda g: (g * (1 - out * out),), "TanhBackward0")

    def clamp(self, min=None, max=None) -> "Tensor":
        a = self.data
        out = np.clip(a, min, max)
        inside = np.ones(a.shape, bool)
        if min is not None:
            inside &= a >= min
        if max is not None:
            inside &= a <= max
        return _make_op(out, (self,), lambda g: (np.where(inside, g, 0).astype(g.dtype, copy=False),), "ClampBackward1")

    def softmax(self, dim: int = -1) -> "Tensor":
        a = self.data
        z = np.exp(a - a.max(axis=dim, keepdims=True))
        out = z / z.sum(axis=dim, keepdims=True)
        return _make_op(
            out, (self,), lambda g: (out * (g - (g * out).sum(axis=dim, keepdims=True)),), "SoftmaxBackward0"
        )

    def log_softmax(self, dim: int = -1) -> "Tensor":
        a = self.data
        shifted = a - a.max(axis=dim, keepdims=True)
        out = shifted - np.log(np.exp(shifted).sum(axis=dim, keepdims=True))
        return _make_op(
            out, (self,), lambda g: (g - np.exp(out) * g.sum(axis=dim, keepdims=True),), "LogSoftmaxBackward0"
        )

    # -- dtype
    def to(self, dtype) -> "Tensor":
        d = np.dtype(dtype)
        if d == self.data.dtype:
            return self
        src = self.data.dtype
        return _make_op(self.data.astype(d), (self,), lambda g: (g.astype(src),), "ToCopyBackward0")

    def float(self) -> "Tensor":
        return self.to(np.float32)

    def double(self) -> "Tensor":
        return self.to(np.float64)

    def long(self) -> "Tensor":
        return Tensor(self.data.astype(np.int64))

    def type_as(self, other: "Tensor") -> "Tensor":
        return self.to(other.dtype)

    # -- in-place helpers used by optimizers and init (no graph)
    def zero_(self) -> "Tensor":
        self.data[...] = 0
        return self

    def fill_(self, value: float) -> "Tensor":
        self.data[...] = value
        return self

    def copy_(self, src: Any) -> "Tensor":
        self.data[...] = _as_array(src)
        return self


def _freed_backward(g):
    raise RuntimeError(
        "Trying to backward through the graph a second time; specify retain_graph=True "
        "if you need to backward through it again"
    )


# ----------------------------------------------------------------------------- factories
def _factory_dtype(dtype):
    return np.dtype(dtype) if dtype is not None else _default_dtype


def tensor(data: Any, dtype=None, requires_grad: bool = False) -> Tensor:
    """A new Tensor holding a copy of ``data`` (floats default to float32, as in PyTorch)."""
    if isinstance(data, Tensor):
        data = data.data
    arr = np.array(data, dtype=dtype, copy=True)
    if dtype is None and arr.dtype == np.float64 and not (isinstance(data, np.ndarray) and data.dtype == np.float64):
        arr = arr.astype(_default_dtype)
    return Tensor(arr, requires_grad=requires_grad)


def from_numpy(array: np.ndarray) -> Tensor:
    """A Tensor sharing memory with ``array`` (no copy)."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"expected np.ndarray, but got {type(array).__name__}")
    return Tensor(array)


def _shape(size) -> tuple[int, ...]:
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        return tuple(size[0])
    return tuple(size)


def zeros(*size, dtype=None, requires_grad: bool = False) -> Tensor:
    return Tensor(np.zeros(_shape(size), _factory_dtype(dtype)), requires_grad=requires_grad)


def ones(*size, dtype=None, requires_grad: bool = False) -> Tensor:
    return Tensor(np.ones(_shape(size), _factory_dtype(dtype)), requires_grad=requires_grad)


def full(size, fill_value: float, dtype=None, requires_grad: bool = False) -> Tensor:
    return Tensor(np.full(tuple(size), fill_value, _factory_dtype(dtype)), requires_grad=requires_grad)


def zeros_like(t: Tensor, dtype=None) -> Tensor:
    return Tensor(np.zeros_like(_as_array(t), dtype=dtype))


def ones_like(t: Tensor, dtype=None) -> Tensor:
    return Tensor(np.ones_like(_as_array(t), dtype=dtype))


def arange(*args, dtype=None) -> Tensor:
    return Tensor(np.arange(*args, dtype=dtype))


def _uniform_from(generator, n: int, dtype) -> np.ndarray:
    """``n`` uniforms in [0, 1) from the Philox stream (24/53-bit precision)."""
    from . import _core
    from .random import _resolve

    gen = _resolve(generator)
    if np.dtype(dtype) == np.float32:
        seed, offset = gen.take(n)
        w = _core.philox_words(seed, offset, n)
        return ((w >> np.uint32(8)).astype(np.float32) * np.float32(2.0**-24)).astype(np.float32)
    seed, offset = gen.take(2 * n)
    w = _core.philox_words(seed, offset, 2 * n).astype(np.uint64).reshape(n, 2)
    bits = (w[:, 0] << np.uint64(21)) ^ (w[:, 1] >> np.uint64(11))
    return (bits & np.uint64((1 << 53) - 1)).astype(np.float64) * 2.0**-53


def rand(*size, dtype=None, generator=None, requires_grad: bool = False) -> Tensor:
    """Uniform [0, 1) samples drawn from dropcore's Philox stream (reproducible per seed)."""
    shape = _shape(size)
    d = _factory_dtype(dtype)
    n = int(np.prod(shape)) if shape else 1
    return Tensor(_uniform_from(generator, n, d).reshape(shape), requires_grad=requires_grad)


def randn(*size, dtype=None, generator=None, requires_grad: bool = False) -> Tensor:
    """Standard normal samples (Box-Muller over Philox uniforms)."""
    shape = _shape(size)
    d = _factory_dtype(dtype)
    n = int(np.prod(shape)) if shape else 1
    u = _uniform_from(generator, 2 * ((n + 1) // 2), np.float64).reshape(2, -1)
    r = np.sqrt(-2.0 * np.log1p(-u[0]))
    z = np.concatenate([r * np.cos(2 * np.pi * u[1]), r * np.sin(2 * np.pi * u[1])])[:n]
    return Tensor(z.astype(d).reshape(shape), requires_grad=requires_grad)


def cat(tensors: Iterable[Tensor], dim: int = 0) -> Tensor:
    ts = [t if isinstance(t, Tensor) else Tensor(t) for t in tensors]
    arrays = [t.data for t in ts]
    d = dim % arrays[0].ndim
    bounds = np.cumsum([a.shape[d] for a in arrays])[:-1]
    return _make_op(
        np.concatenate(arrays, axis=d), tuple(ts), lambda g: tuple(np.split(g, bounds, axis=d)), "CatBackward0"
    )


def stack(tensors: Iterable[Tensor], dim: int = 0) -> Tensor:
    ts = [t if isinstance(t, Tensor) else Tensor(t) for t in tensors]
    return cat([t.unsqueeze(dim) for t in ts], dim)

