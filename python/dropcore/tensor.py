"""Tensor and its autograd engine, in the spirit of micrograd, over NumPy arrays.

Every operation builds its output with :func:`_make_op`, which (when grad mode is on
and an input requires grad) attaches a :class:`Node` - the output's ``grad_fn`` - with a
``backward`` closure that maps the output's gradient to one gradient per input, and
edges (``next_functions``) to the inputs' nodes. :meth:`Tensor.backward` sorts the
nodes topologically and walks them in reverse, summing gradients; leaves that require
grad collect theirs through an ``AccumulateGrad`` node into ``.grad`` (accumulated
across calls, as in PyTorch).

Storage and versions. A Tensor holds a NumPy array (``_data``; package-internal code
reads it directly, users get ``.numpy()`` or ``.data``). Views share their base's
version counter; every in-place write bumps it, and a node that saved a tensor for
backward checks the version first, so a gradient is never computed from overwritten
values (PyTorch's "modified by an inplace operation" error instead).

The operations themselves live one kind per module - :mod:`._ops_elementwise`
(pointwise maths and reductions), :mod:`._ops_shape` (shape, indexing, joining),
:mod:`._creation` (factories, random) - each written once as a function with its
backward beside it and bound here as a method.
"""

from __future__ import annotations

import sys
import weakref
from typing import Any, Callable, Sequence

import numpy as np

from . import _dtypes as D
from . import _grad_mode as GM
from ._device import check_device, device

__all__ = ["Tensor", "Size", "is_tensor", "numel"]

Backward = Callable[[np.ndarray], Sequence["np.ndarray | None"]]


class Size(tuple):
    """A tensor's shape: a tuple (compares equal to plain tuples) that prints like PyTorch's."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"dropcore.Size({list(self)})"

    def numel(self) -> int:
        n = 1
        for d in self:
            n *= d
        return n


# ----------------------------------------------------------------------------- graph nodes
class Node:
    """A recorded operation: a tensor's ``grad_fn``.

    ``name()`` is PyTorch's node name (``"MulBackward0"``); ``next_functions`` holds one
    ``(node, 0)`` pair per input (``node`` is ``None`` for inputs that need no gradient).
    """

    __slots__ = ("_name", "_backward", "next_functions", "_saved", "_dtype", "_retained", "__weakref__")

    def __init__(self, name: str, backward: Backward | None, next_functions: tuple, saved: tuple, dtype) -> None:
        self._name = name
        self._backward = backward
        self.next_functions = next_functions
        self._saved = saved  # ((version box, version, shape, dtype, producer), ...)
        self._dtype = dtype
        self._retained = None  # weakref to a non-leaf tensor that called retain_grad()

    def name(self) -> str:
        return self._name

    def __repr__(self) -> str:
        return f"<{self._name} object at {hex(id(self))}>"

    def _check_saved(self) -> None:
        for box, version, shape, dtype, producer in self._saved:
            if box[0] != version:
                what = f"output 0 of {producer}" if producer else "a leaf"
                raise RuntimeError(
                    "one of the variables needed for gradient computation has been modified by an "
                    f"inplace operation: [dropcore.{D.pytorch_name(dtype)}Tensor {list(shape)}], which is "
                    f"{what}, is at version {box[0]}; expected version {version} instead. Hint: the "
                    "operation that saved it must see it unchanged; clone() it before changing it in place."
                )


class AccumulateGrad(Node):
    """The node of a leaf that requires grad: adds the incoming gradient to ``variable.grad``."""

    __slots__ = ("variable",)

    def __init__(self, variable: "Tensor") -> None:
        super().__init__("AccumulateGrad", None, (), (), variable._data.dtype)
        self.variable = variable


def _freed_backward(g):
    raise RuntimeError(
        "Trying to backward through the graph a second time (or directly access saved tensors after "
        "they have already been freed); specify retain_graph=True if you need to backward through it again"
    )


def _edge(t: "Tensor") -> Node | None:
    if t.grad_fn is not None:
        return t.grad_fn
    if t._requires_grad:
        acc = t._accumulator
        if acc is None:
            acc = t._accumulator = AccumulateGrad(t)
        return acc
    return None


def _make_op(
    data: np.ndarray,
    parents: tuple["Tensor", ...],
    backward: Backward,
    op: str,
    saved: tuple["Tensor", ...] | None = None,
    saves_output: bool = False,
    view_of: "Tensor | None" = None,
) -> "Tensor":
    """The output of an operation; records a node when grad mode is on and an input needs it.

    ``backward(g)`` receives the output's gradient (an array of ``data``'s shape) and
    returns one gradient per parent, in that parent's shape (``None`` skips it).
    ``saved`` are the inputs whose values backward reads (all parents if omitted);
    ``saves_output`` says backward reads the output; both are version-checked.
    ``view_of``: the output may share memory with this input (a view), so it shares the
    input's version counter.
    """
    out = Tensor.__new__(Tensor)
    out._data = data
    out.grad = None
    out._requires_grad = False
    out.grad_fn = None
    out._accumulator = None
    out._base = None
    out._view_src = None
    if view_of is not None and np.may_share_memory(data, view_of._data):
        out._vbox = view_of._vbox
        out._base = view_of._base if view_of._base is not None else view_of
    else:
        out._vbox = [0]
    if GM._state.enabled:
        for p in parents:
            if p.grad_fn is not None or p._requires_grad:
                break
        else:
            return out
        rec = tuple(
            (t._vbox, t._vbox[0], t._data.shape, t._data.dtype, t.grad_fn._name if t.grad_fn is not None else "")
            for t in (parents if saved is None else saved)
        )
        if saves_output:
            rec += ((out._vbox, out._vbox[0], data.shape, data.dtype, op),)
        out.grad_fn = Node(op, backward, tuple((_edge(p), 0) for p in parents), rec, data.dtype)
    return out


def _topological_order(root: Node) -> list[Node]:
    """Nodes reachable from ``root``, each before every node it feeds (iterative DFS)."""
    order: list[Node] = []
    seen: set[int] = set()  # marked when expanded, not when pushed: a node pushed early may be
    stack: list[tuple[Node, bool]] = [(root, False)]  # reached again by a longer path first
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        for nxt, _ in node.next_functions:
            if nxt is not None and id(nxt) not in seen:
                stack.append((nxt, False))
    order.reverse()
    return order


def _run_backward(root: Node, g0: np.ndarray, retain_graph: bool) -> None:
    grads: dict[Node, np.ndarray] = {root: g0}
    handed_out: set[int] = {id(g0)}  # arrays a .grad or the caller may hold
    for node in _topological_order(root):
        g = grads.pop(node, None)
        if g is None:
            continue
        if type(node) is AccumulateGrad:
            node.variable._accumulate(g, handed_out)
            continue
        if node._retained is not None:
            t = node._retained()
            if t is not None:
                t._accumulate(g, handed_out)
        if node._backward is None:
            _freed_backward(g)
        node._check_saved()
        if g.dtype != node._dtype:
            g = g.astype(node._dtype)
        parent_grads = node._backward(g)
        for (nxt, _), pg in zip(node.next_functions, parent_grads):
            if nxt is None or pg is None:
                continue
            if nxt in grads:
                grads[nxt] = grads[nxt] + pg
            else:
                grads[nxt] = pg
        if not retain_graph and node._saved:
            node._backward = None


# ----------------------------------------------------------------------------- helpers
def _as_array(x: Any, dtype=None) -> np.ndarray:
    """A Tensor's array, or ``x`` as an array (Python floats become the default dtype)."""
    if isinstance(x, Tensor):
        return x._data
    if isinstance(x, np.ndarray):
        return x if dtype is None else x.astype(dtype, copy=False)
    arr = np.asarray(x)
    if dtype is not None:
        return arr.astype(dtype, copy=False)
    if arr.dtype == np.float64 and not isinstance(x, np.floating):
        arr = arr.astype(D.default_np())
    return arr


def _wrap(arr: np.ndarray) -> "Tensor":
    """A leaf Tensor around ``arr`` (no copy, no checks): the fast constructor for results."""
    t = Tensor.__new__(Tensor)
    t._data = arr
    t._vbox = [0]
    t.grad = None
    t._requires_grad = False
    t.grad_fn = None
    t._accumulator = None
    t._base = None
    t._view_src = None
    return t


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


def _dim_tuple(dim, ndim: int):
    """``dim`` (an int, a sequence, or None for all) as a tuple of non-negative axes."""
    if dim is None:
        return None
    dims = (dim,) if isinstance(dim, (int, np.integer)) else tuple(dim)
    out = []
    for d in dims:
        n = max(ndim, 1)
        if not -n <= d < n:
            raise IndexError(f"Dimension out of range (expected to be in range of [{-n}, {n - 1}], but got {d})")
        out.append(int(d) % n if ndim else 0)
    return tuple(out)


def _sizes(size: tuple) -> tuple[int, ...]:
    """``(2, 3)`` or ``((2, 3),)`` as a shape tuple."""
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        return tuple(int(n) for n in size[0])
    return tuple(int(n) for n in size)


# ----------------------------------------------------------------------------- Tensor
class Tensor:
    """A multi-dimensional array with autograd, PyTorch's ``torch.Tensor`` over NumPy.

    ``Tensor(ndarray)`` wraps the array without a copy, keeping its dtype. As in
    PyTorch, ``Tensor(2, 3)`` is an uninitialised float tensor of shape (2, 3) and
    ``Tensor([1, 2])`` a float tensor holding those values (use :func:`dropcore.tensor`
    to infer the dtype).

    Args:
        *args: an ndarray, a Tensor, a (nested) sequence, or sizes.
        requires_grad: record operations on this tensor for :meth:`backward`.
        dtype: store as this dtype.
    """

    __slots__ = (
        "_data", "_vbox", "grad", "_requires_grad", "grad_fn", "_accumulator", "_base", "_view_src", "__weakref__"
    )
    __array_priority__ = 1000  # ndarray (op) Tensor -> Tensor's reflected op

    def __init__(self, *args: Any, requires_grad: bool = False, dtype=None, device=None) -> None:
        check_device(device)
        if len(args) == 1 and not (isinstance(args[0], int) and not isinstance(args[0], bool)):
            data = args[0]
            if isinstance(data, Tensor):
                arr = data._data if dtype is None else data._data.astype(D.np_dtype(dtype), copy=False)
            elif isinstance(data, (np.ndarray, np.generic)):
                arr = np.asarray(data) if dtype is None else np.asarray(data, dtype=D.np_dtype(dtype))
            else:
                if isinstance(data, (float, int)):
                    raise TypeError(f"new(): data must be a sequence (got {type(data).__name__})")
                arr = np.array(data, dtype=D.np_dtype(dtype) if dtype is not None else D.default_np())
        else:
            if not all(isinstance(n, (int, np.integer)) and not isinstance(n, bool) for n in args):
                raise TypeError(f"Tensor() takes an array, a sequence or sizes, but got {args!r}")
            arr = np.empty(tuple(int(n) for n in args), D.np_dtype(dtype) if dtype is not None else D.default_np())
        D.check_storable(arr.dtype)
        self._data: np.ndarray = arr
        self._vbox = [0]
        self.grad: Tensor | None = None
        self._requires_grad = False
        self.grad_fn: Node | None = None
        self._accumulator: AccumulateGrad | None = None
        self._base: Tensor | None = None
        self._view_src: tuple | None = None  # (parent, index) for views made by basic indexing
        if requires_grad:
            self.requires_grad_(True)

    # -- storage
    @property
    def data(self) -> "Tensor":
        """The same storage as a Tensor cut from the graph; changes to it are not tracked."""
        return _wrap(self._data)

    @data.setter
    def data(self, value: "Tensor") -> None:
        if not isinstance(value, Tensor):
            raise TypeError(f"Variable data has to be a tensor, but got {type(value).__name__}")
        # Nodes that saved the old array keep reading it, unchanged: no version conflict.
        self._data = value._data
        self._vbox = [0]

    @property
    def _version(self) -> int:
        return self._vbox[0]

    def numpy(self, *, force: bool = False) -> np.ndarray:
        """The NumPy array behind this tensor (shared memory, no copy)."""
        if self.requires_grad and not force:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() instead.")
        return self._data

    # -- basic properties
    @property
    def shape(self) -> Size:
        return Size(self._data.shape)

    @property
    def dtype(self) -> D.dtype:
        return D.to_dtype(self._data.dtype)

    @property
    def device(self) -> device:
        return device("cpu")

    is_cuda = False

    @property
    def ndim(self) -> int:
        return self._data.ndim

    @property
    def is_leaf(self) -> bool:
        return self.grad_fn is None

    @property
    def requires_grad(self) -> bool:
        return self._requires_grad or self.grad_fn is not None

    @requires_grad.setter
    def requires_grad(self, value: bool) -> None:
        self.requires_grad_(value)

    def is_floating_point(self) -> bool:
        return self._data.dtype.kind == "f"

    def size(self, dim: int | None = None):
        if dim is None:
            return Size(self._data.shape)
        return self._data.shape[_dim_tuple(dim, self._data.ndim)[0]]

    def dim(self) -> int:
        return self._data.ndim

    ndimension = dim

    def numel(self) -> int:
        return int(self._data.size)

    nelement = numel

    def element_size(self) -> int:
        return self._data.itemsize

    def __len__(self) -> int:
        if self._data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return len(self._data)

    def __iter__(self):
        if self._data.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(len(self._data)))

    # -- conversions to Python
    def item(self):
        if self._data.size != 1:
            raise RuntimeError(f"a Tensor with {self._data.size} elements cannot be converted to Scalar")
        return self._data.reshape(()).item()

    def tolist(self):
        return self._data.tolist()

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __index__(self) -> int:
        if self._data.dtype.kind not in "iub" or self._data.size != 1:
            raise TypeError("only integer tensors of a single element can be converted to an index")
        return int(self.item())

    def __bool__(self) -> bool:
        if self._data.size != 1:
            raise RuntimeError(f"Boolean value of Tensor with more than one value is ambiguous")
        return bool(self._data.reshape(()).item())

    def __format__(self, spec: str) -> str:
        if self._data.ndim == 0:
            return self.item().__format__(spec)
        return object.__format__(self, spec)

    def __array__(self, dtype=None, copy=None):
        if copy:
            return np.array(self._data, dtype=dtype, copy=True)
        return self._data if dtype is None else self._data.astype(dtype, copy=False)

    def __hash__(self) -> int:
        return id(self)

    def __deepcopy__(self, memo: dict) -> "Tensor":
        """A leaf with copies of the values and ``.grad`` (PyTorch refuses non-leaves, so do we)."""
        if self.grad_fn is not None:
            raise RuntimeError(
                "Only Tensors created explicitly by the user (graph leaves) support the deepcopy protocol at the moment."
            )
        new = type(self).__new__(type(self))
        memo[id(self)] = new
        new._data = self._data.copy()
        new._vbox = [0]
        new.grad = None if self.grad is None else self.grad.__deepcopy__(memo)
        new._requires_grad = self._requires_grad
        new.grad_fn = None
        new._accumulator = None
        new._base = None
        new._view_src = None
        return new

    def __repr__(self) -> str:
        body = np.array2string(self._data, separator=", ", prefix="tensor(")
        extra = ""
        dt = self._data.dtype
        if self._data.size == 0:
            extra += f", size={tuple(self._data.shape)}"
        if (dt.kind == "f" and dt != D.default_np()) or (dt.kind in "iu" and dt != np.int64):
            extra += f", dtype={D.to_dtype(dt)}"
        if self.grad_fn is not None:
            extra += f", grad_fn=<{self.grad_fn._name}>"
        elif self._requires_grad:
            extra += ", requires_grad=True"
        return f"tensor({body}{extra})"

    # -- dtype and device
    def to(self, *args: Any, **kwargs: Any) -> "Tensor":
        """``to(dtype)``, ``to(device)``, ``to(device, dtype)`` or ``to(other)``; ``copy=`` forces a copy."""
        copy = kwargs.pop("copy", False)
        kwargs.pop("non_blocking", None)
        dtype = kwargs.pop("dtype", None)
        dev = kwargs.pop("device", None)
        if kwargs:
            raise TypeError(f"to() got unexpected keyword arguments {sorted(kwargs)}")
        for a in args:
            if isinstance(a, Tensor):
                dtype = a.dtype
            elif isinstance(a, (str, device)):
                dev = a
            elif isinstance(a, bool):
                continue  # non_blocking
            else:
                dtype = a
        check_device(dev)
        if dtype is None:
            return self.clone() if copy else self
        d = D.np_dtype(dtype)
        if d == self._data.dtype:
            return self.clone() if copy else self
        src = self._data.dtype
        return _make_op(self._data.astype(d), (self,), lambda g: (g.astype(src),), "ToCopyBackward0", saved=())

    def type(self, dtype=None):
        """The type name (no argument) or this tensor converted to ``dtype``."""
        if dtype is None:
            return f"dropcore.{D.pytorch_name(self._data.dtype)}Tensor"
        return self.to(dtype)

    def type_as(self, other: "Tensor") -> "Tensor":
        return self.to(other.dtype)

    def float(self) -> "Tensor":
        return self.to(D.float32)

    def double(self) -> "Tensor":
        return self.to(D.float64)

    def half(self) -> "Tensor":
        return self.to(D.float16)

    def long(self) -> "Tensor":
        return self.to(D.int64)

    def int(self) -> "Tensor":
        return self.to(D.int32)

    def bool(self) -> "Tensor":
        return self.to(D.bool)

    def cpu(self) -> "Tensor":
        return self

    def cuda(self, *args: Any, **kwargs: Any) -> "Tensor":
        check_device("cuda")
        return self  # not reached: check_device raises

    # -- autograd
    def requires_grad_(self, requires_grad: bool = True) -> "Tensor":
        if self.grad_fn is not None:
            if not requires_grad:
                raise RuntimeError(
                    "you can only change requires_grad flags of leaf variables. If you want to use a computed "
                    "variable in a subgraph that doesn't require differentiation use var_no_grad = var.detach()."
                )
            return self
        if requires_grad and self._data.dtype.kind != "f":
            raise RuntimeError("only Tensors of floating point dtype can require gradients")
        self._requires_grad = bool(requires_grad)
        return self

    def retain_grad(self) -> "Tensor":
        """Keep ``.grad`` on this non-leaf tensor after backward."""
        if self.grad_fn is None:
            if not self._requires_grad:
                raise RuntimeError("can't retain_grad on Tensor that has requires_grad=False")
            return self
        self.grad_fn._retained = weakref.ref(self)
        return self

    @property
    def retains_grad(self) -> bool:
        return self.grad_fn is not None and self.grad_fn._retained is not None

    def detach(self) -> "Tensor":
        """The same storage, cut from the graph (in-place changes are still seen by autograd)."""
        t = _wrap(self._data)
        t._vbox = self._vbox
        return t

    def detach_(self) -> "Tensor":
        self.grad_fn = None
        self._requires_grad = False
        return self

    def backward(self, gradient: Any = None, retain_graph: bool | None = None, create_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into every leaf's ``.grad``.

        Args:
            gradient: d(loss)/d(self); may be omitted for a one-element tensor.
            retain_graph: keep the graph so backward can run through it again.
            create_graph: not supported (no higher-order gradients); must be False.
        """
        if create_graph:
            raise NotImplementedError("dropcore does not record the backward pass (create_graph=True)")
        if not self.requires_grad:
            raise RuntimeError("element 0 of tensors does not require grad and does not have a grad_fn")
        if gradient is None:
            if self._data.size != 1:
                raise RuntimeError("grad can be implicitly created only for scalar outputs")
            g0 = np.ones_like(self._data)
        else:
            g0 = _as_array(gradient).astype(self._data.dtype, copy=False)
            if g0.shape != self._data.shape:
                raise RuntimeError(
                    f"Mismatch in shape: grad_output[0] has a shape of {list(g0.shape)} and output[0] has a "
                    f"shape of {list(self._data.shape)}."
                )
        _run_backward(_edge(self), g0, bool(retain_graph))

    def _accumulate(self, g: np.ndarray, handed_out: set[int]) -> None:
        g = np.asarray(g, dtype=self._data.dtype)
        if g.shape != self._data.shape:
            g = np.broadcast_to(g, self._data.shape)
        if self.grad is None:
            # Keep a fresh gradient array as it is; copy one that is a view or that
            # another .grad (or the caller) may hold, so no two .grad share memory.
            if g.base is not None or id(g) in handed_out or not g.flags.writeable:
                g = g.copy()
            handed_out.add(id(g))
            self.grad = _wrap(g)
        else:
            self.grad._data += g
            self.grad._vbox[0] += 1

    # -- in-place machinery
    def _check_inplace(self) -> None:
        """PyTorch's refusals for an in-place write while grad mode records."""
        if not GM._state.enabled:
            return
        if self.grad_fn is None and self._requires_grad:
            raise RuntimeError("a leaf Variable that requires grad is being used in an in-place operation.")
        base = self._base
        if base is not None and base.grad_fn is None and base._requires_grad:
            raise RuntimeError("a view of a leaf Variable that requires grad is being used in an in-place operation.")

    def _inplace_from(self, compute: Callable[["Tensor"], "Tensor"], others: tuple = ()) -> "Tensor":
        """Run ``compute(self)`` out of place and write the result into this tensor's storage.

        When the op is recorded, it runs on a snapshot of the current values (so its
        backward reads them, not the overwritten storage) and this tensor's ``grad_fn``
        becomes the op's node; earlier users of the tensor keep their edges to the old node.
        """
        self._check_inplace()
        recording = GM._state.enabled and (
            self.requires_grad or any(isinstance(o, Tensor) and o.requires_grad for o in others)
        )
        src = self
        if recording:
            src = _wrap(self._data.copy())
            src.grad_fn = self.grad_fn
        result = compute(src)
        if recording and self._base is not None:
            return self._write_through_view(result)
        self._write(result._data)
        if recording and result.grad_fn is not None:
            self.grad_fn = result.grad_fn
        return self

    def _write_through_view(self, result: "Tensor") -> "Tensor":
        """A recorded in-place op on a view: ``parent[index] = result`` on the tensor it was
        cut from (recorded there, recursively), then this view re-reads the parent."""
        if self._view_src is None:
            raise RuntimeError(
                "dropcore records in-place operations on views made by indexing, narrow, split or chunk; "
                "this view (reshape/permute/expand) cannot be written in place while autograd records: clone() it first"
            )
        self._check_values(result._data)
        parent, index = self._view_src
        parent[index] = result
        self.grad_fn = parent[index].grad_fn
        return self

    def _check_values(self, values: np.ndarray) -> None:
        """PyTorch's checks before writing ``values`` in place: same-category cast, broadcastable shape."""
        dst = self._data
        if values.dtype != dst.dtype and D.promote_types(values.dtype, dst.dtype) != dst.dtype:
            raise RuntimeError(
                f"result type {D.pytorch_name(values.dtype)} can't be cast to the desired output type "
                f"{D.pytorch_name(dst.dtype)}"
            )
        if values.shape != dst.shape:
            shape = np.broadcast_shapes(values.shape, dst.shape) if _broadcastable(values.shape, dst.shape) else values.shape
            if shape != dst.shape:
                raise RuntimeError(f"output with shape {list(dst.shape)} doesn't match the broadcast shape {list(shape)}")

    def _write(self, values: np.ndarray) -> None:
        """Copy ``values`` into the storage (broadcast, same-category cast) and bump the version."""
        self._check_values(values)
        dst = self._data
        if not dst.flags.writeable:
            raise RuntimeError("the tensor's storage is a read-only NumPy array; clone() it first")
        np.copyto(dst, values, casting="unsafe")
        self._vbox[0] += 1


def _broadcastable(a, b) -> bool:
    try:
        np.broadcast_shapes(a, b)
        return True
    except ValueError:
        return False


# ----------------------------------------------------------------------------- gradient buffers
# ``zero_grad(set_to_none=True)`` drops every ``.grad``; the next backward allocates them
# again. For the d2l MLP that is 1 MB per step, and glibc hands such blocks back to the
# kernel and faults them in again (measured on the 2-core Zen 1 machine: ~550 page
# faults and 8 brk calls per training step; none with the buffers kept). So a dropped
# gradient array that nothing else can reach is kept aside for its tensor, and the
# backward of ``linear`` writes the weight gradient into it (``np.matmul(out=)``, the
# same BLAS call and the same values). "Nothing else can reach it": only the ``.grad``
# Tensor refers to the array and only ``.grad`` to that Tensor (reference counts,
# compared with the counts of a freshly made Tensor on the same code path, so any
# interpreter that counts differently simply never recycles); a view, a ``.numpy()``
# result or a Python variable holding either keeps the array out of reach.
# (Keyed by id with a weak reference: Tensor's ``==`` is elementwise, so a
# WeakKeyDictionary cannot compare its keys; the entry goes when the tensor does.)
_SPARE_GRADS: dict[int, tuple[weakref.ref, np.ndarray]] = {}
_SPARE_MIN_BYTES = 1 << 16  # smaller blocks come from malloc's free lists: nothing to save


def _ref_counts(g: "Tensor") -> tuple[int, int]:
    arr = g._data
    return sys.getrefcount(g), sys.getrefcount(arr)


def _fresh_ref_counts() -> tuple[int, int]:
    g = _wrap(np.empty(1))
    return _ref_counts(g)


def _release_grad(t: "Tensor") -> None:
    """``t.grad = None``, keeping the array for ``t``'s next gradient if only ``.grad`` held it."""
    g = t.grad
    t.grad = None
    if g is None or type(g) is not Tensor:
        return
    arr = g._data
    if arr.nbytes >= _SPARE_MIN_BYTES and arr.base is None and arr.flags.c_contiguous and arr.flags.writeable:
        del arr
        if _ref_counts(g) == _FRESH_REF_COUNTS:
            key = id(t)
            _SPARE_GRADS[key] = (weakref.ref(t, lambda _, key=key: _SPARE_GRADS.pop(key, None)), g._data)


def _spare_grad(t: "Tensor", shape: tuple, dtype) -> np.ndarray | None:
    """The array :func:`_release_grad` kept for ``t``, if ``t`` has no gradient yet and it
    fits ``shape`` and ``dtype`` (it leaves the pool either way)."""
    if t.grad is not None or not _SPARE_GRADS:
        return None
    entry = _SPARE_GRADS.pop(id(t), None)
    if entry is None or entry[0]() is not t:
        return None
    arr = entry[1]
    return arr if arr.shape == shape and arr.dtype == dtype else None


def is_tensor(obj: Any) -> bool:
    """``True`` if ``obj`` is a dropcore Tensor."""
    return isinstance(obj, Tensor)


def numel(input: Tensor) -> int:
    """The number of elements of ``input``."""
    return input.numel()


# The operations bind themselves to Tensor as methods when their modules load.
from . import _creation, _ops_elementwise, _ops_linalg, _ops_shape  # noqa: E402,F401

_FRESH_REF_COUNTS = _fresh_ref_counts()

# Names other dropcore modules import from here (package-internal compatibility).
from ._creation import _uniform_from, randn  # noqa: E402,F401
from ._dtypes import float32, float64, get_default_dtype, set_default_dtype  # noqa: E402,F401
from ._grad_mode import enable_grad, is_grad_enabled, no_grad, set_grad_enabled  # noqa: E402,F401
from ._ops_shape import cat, stack  # noqa: E402,F401
