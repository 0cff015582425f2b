"""Shape, indexing, joining and selection ops, each with its backward, bound as Tensor methods.

Views (``reshape``/``view``, ``permute``/``transpose``, ``squeeze``/``unsqueeze``,
``expand``, ``narrow``, ``split``/``chunk``, basic indexing) share memory and the
version counter with their base, as in PyTorch, so an in-place write through a view is
seen everywhere and checked by autograd.
"""

from __future__ import annotations

from collections import namedtuple
from typing import Any, Iterable, Sequence

import numpy as np

from . import _dtypes as D
from . import _grad_mode as GM
from .tensor import Tensor, _as_array, _dim_tuple, _make_op, _sizes, _unbroadcast, _wrap

__all__ = [
    "reshape", "flatten", "unflatten", "permute", "transpose", "swapaxes", "t", "squeeze", "unsqueeze",
    "narrow", "split", "chunk", "cat", "concat", "concatenate", "stack", "gather", "scatter", "scatter_add",
    "index_select", "masked_fill", "topk", "sort", "argsort", "flip", "clone", "movedim",
]

topk_return = namedtuple("topk", ["values", "indices"])
sort_return = namedtuple("sort", ["values", "indices"])
topk_return.__module__ = sort_return.__module__ = "dropcore.return_types"


def _axis(dim: int, ndim: int) -> int:
    return _dim_tuple(dim, ndim)[0]


# ----------------------------------------------------------------------------- views
def reshape(input: Tensor, *shape) -> Tensor:
    """The same elements in a new shape (a view when the memory layout allows)."""
    shape = _sizes(shape)
    a = input._data
    try:
        out = a.reshape(shape)
    except ValueError:
        raise RuntimeError(f"shape '{list(shape)}' is invalid for input of size {a.size}") from None
    src = a.shape
    return _make_op(out, (input,), lambda g: (g.reshape(src),), "ViewBackward0", saved=(), view_of=input)


def _view(self: Tensor, *shape) -> Tensor:
    if len(shape) == 1 and not isinstance(shape[0], (int, np.integer, tuple, list)):
        raise NotImplementedError("view(dtype) (reinterpreting the bits) is not supported; use .to(dtype) to convert")
    return reshape(self, *shape)


def flatten(input: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    shape = input._data.shape
    if not shape:
        return reshape(input, 1)
    s, e = _axis(start_dim, len(shape)), _axis(end_dim, len(shape))
    if s > e:
        raise RuntimeError("flatten() has invalid args: start_dim cannot come after end_dim")
    return reshape(input, shape[:s] + (int(np.prod(shape[s : e + 1])),) + shape[e + 1 :])


def unflatten(input: Tensor, dim: int, sizes: Sequence[int]) -> Tensor:
    shape = input._data.shape
    d = _axis(dim, len(shape))
    return reshape(input, shape[:d] + tuple(sizes) + shape[d + 1 :])


def permute(input: Tensor, *dims, _name: str = "PermuteBackward0") -> Tensor:
    """The dimensions reordered as ``dims`` (a view)."""
    dims = _sizes(dims)
    a = input._data
    if len(dims) != a.ndim:
        raise RuntimeError(
            f"permute(sparse_coo): number of dimensions in the tensor input does not match the length of the "
            f"desired ordering of dimensions i.e. input.dim() = {a.ndim} is not equal to len(dims) = {len(dims)}"
        )
    dims = tuple(_axis(d, a.ndim) for d in dims)
    inv = tuple(np.argsort(dims))
    return _make_op(np.transpose(a, dims), (input,), lambda g: (np.transpose(g, inv),), _name,
                    saved=(), view_of=input)


def transpose(input: Tensor, dim0: int, dim1: int, _name: str = "TransposeBackward0") -> Tensor:
    """``dim0`` and ``dim1`` swapped (a view)."""
    n = input._data.ndim
    if n == 0:
        return reshape(input, ())
    dims = list(range(n))
    d0, d1 = _axis(dim0, n), _axis(dim1, n)
    dims[d0], dims[d1] = dims[d1], dims[d0]
    return permute(input, *dims, _name=_name)


swapaxes = transpose


def movedim(input: Tensor, source: int, destination: int) -> Tensor:
    n = input._data.ndim
    dims = list(range(n))
    s = dims.pop(_axis(source, n))
    dims.insert(_axis(destination, n), s)
    return permute(input, *dims)


def t(input: Tensor) -> Tensor:
    """Transpose of a 2-D tensor (0-D and 1-D tensors come back as they are)."""
    if input._data.ndim > 2:
        raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is {input._data.ndim}D")
    return transpose(input, 0, 1, _name="TBackward0") if input._data.ndim == 2 else reshape(input, input._data.shape)


def unsqueeze(input: Tensor, dim: int) -> Tensor:
    n = input._data.ndim
    if not -n - 1 <= dim <= n:
        raise IndexError(f"Dimension out of range (expected to be in range of [{-n - 1}, {n}], but got {dim})")
    d = dim if dim >= 0 else dim + n + 1
    shape = input._data.shape
    return reshape(input, shape[:d] + (1,) + shape[d:])


def squeeze(input: Tensor, dim=None) -> Tensor:
    shape = input._data.shape
    if dim is None:
        return reshape(input, tuple(n for n in shape if n != 1))
    dims = set(_dim_tuple(dim, len(shape))) if shape else set()
    return reshape(input, tuple(n for i, n in enumerate(shape) if not (i in dims and n == 1)))


def _expand(self: Tensor, *sizes) -> Tensor:
    """A read-only broadcast view to ``sizes`` (-1 keeps a dimension)."""
    shape = _sizes(sizes)
    a = self._data
    lead = len(shape) - a.ndim
    if lead < 0:
        raise RuntimeError(
            f"expand: the number of sizes provided ({len(shape)}) must be greater or equal to the number of "
            f"dimensions in the tensor ({a.ndim})"
        )
    shape = tuple(a.shape[i - lead] if n == -1 and i >= lead else n for i, n in enumerate(shape))
    try:
        out = np.broadcast_to(a, shape)
    except ValueError:
        raise RuntimeError(
            f"The expanded size of the tensor must match the existing size at non-singleton dimensions; "
            f"target sizes {list(shape)}, tensor sizes {list(a.shape)}"
        ) from None
    src = a.shape
    return _make_op(out, (self,), lambda g: (_unbroadcast(g, src),), "ExpandBackward0", saved=(), view_of=self)


def narrow(input: Tensor, dim: int, start: int, length: int) -> Tensor:
    """The slice ``start:start+length`` of ``dim`` (a view sharing storage).

    Example:
        >>> dropcore.arange(10).narrow(0, 2, 3)
        tensor([2, 3, 4])
    """
    a = input._data
    d = _axis(dim, a.ndim)
    n = a.shape[d]
    start = int(start)
    if start < 0:
        start += n
    if not 0 <= start <= n or length < 0 or start + length > n:
        raise RuntimeError(f"start ({start}) + length ({length}) exceeds dimension size ({n}).")
    index = (slice(None),) * d + (slice(start, start + int(length)),)
    return _getitem(input, index)


def split(tensor: Tensor, split_size_or_sections, dim: int = 0) -> tuple[Tensor, ...]:
    """Views of consecutive pieces along ``dim``: equal ``split_size`` pieces (the last may be
    smaller) or the given list of ``sections``."""
    a = tensor._data
    d = _axis(dim, a.ndim)
    n = a.shape[d]
    if isinstance(split_size_or_sections, (int, np.integer)):
        size = int(split_size_or_sections)
        if size <= 0 and n:
            raise RuntimeError(f"split_size can only be 0 if dimension size is 0, but got dimension size of {n}")
        sizes = [size] * (n // size) + ([n % size] if n % size else []) if size else [0]
    else:
        sizes = [int(s) for s in split_size_or_sections]
        if sum(sizes) != n:
            raise RuntimeError(
                f"split_with_sizes expects split_sizes to sum exactly to {n} (input tensor's size at dimension "
                f"{d}), but got split_sizes={sizes}"
            )
    out, start = [], 0
    for s in sizes:
        out.append(_getitem(tensor, (slice(None),) * d + (slice(start, start + s),)))
        start += s
    return tuple(out)


def chunk(input: Tensor, chunks: int, dim: int = 0) -> tuple[Tensor, ...]:
    """``chunks`` views along ``dim`` of size ``ceil(n / chunks)`` (so possibly fewer chunks)."""
    if chunks <= 0:
        raise RuntimeError("chunk expects `chunks` to be greater than 0, got: " + str(chunks))
    n = input._data.shape[_axis(dim, input._data.ndim)]
    return split(input, -(-n // chunks), dim) if n else split(input, [0], dim)


# ----------------------------------------------------------------------------- indexing
def _index(index: Any):
    """Tensors in an index as NumPy arrays (bool tensors are masks, others are indices)."""
    if isinstance(index, Tensor):
        return index._data
    if isinstance(index, tuple):
        return tuple(i._data if isinstance(i, Tensor) else i for i in index)
    if isinstance(index, list):
        return np.asarray([i.item() if isinstance(i, Tensor) else i for i in index])
    return index


def _is_basic(index: Any) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return all(i is None or i is Ellipsis or isinstance(i, (int, np.integer, slice)) and not isinstance(i, bool)
               for i in items)


def _getitem(self: Tensor, index: Any) -> Tensor:
    index = _index(index)
    a = self._data
    try:
        out = a[index]
    except IndexError as e:
        raise IndexError(str(e)) from None
    basic = _is_basic(index)

    def backward(g):
        full = np.zeros(a.shape, g.dtype)
        if basic:
            full[index] = g
        else:
            np.add.at(full, index, g)
        return (full,)

    view = _make_op(np.asarray(out), (self,), backward, "SliceBackward0" if basic else "IndexBackward0", saved=(),
                    view_of=self if basic else None)
    if view._base is not None:
        view._view_src = (self, index)  # lets a recorded in-place write go through the parent
    return view


def _setitem(self: Tensor, index: Any, value: Any) -> None:
    """``self[index] = value``: in place; recorded (grads to the old values and to ``value``) when needed."""
    index = _index(index)
    vt = value if isinstance(value, Tensor) else None
    recording = GM._state.enabled and (self.requires_grad or (vt is not None and vt.requires_grad))
    if not recording:
        self._check_inplace()
        if not self._data.flags.writeable:
            raise RuntimeError("the tensor's storage is a read-only NumPy array; clone() it first")
        self._data[index] = vt._data if vt is not None else value
        self._vbox[0] += 1
        return

    def compute(src: Tensor) -> Tensor:
        out = src._data.copy()
        v = _as_array(value)
        out[index] = v
        vshape = np.shape(v)

        def backward(g):
            gs = g.copy()
            gs[index] = 0
            if vt is None:
                return (gs,)
            return gs, _unbroadcast(np.asarray(g[index]), vshape)

        parents = (src,) if vt is None else (src, vt)
        return _make_op(out, parents, backward, "CopySlices", saved=())

    self._inplace_from(compute, (value,))


def index_select(input: Tensor, dim: int, index: Tensor) -> Tensor:
    d = _axis(dim, input._data.ndim)
    idx = _as_array(index)
    if idx.dtype.kind not in "iu":
        raise IndexError("index_select(): Expected dtype int32/int64 for index")
    return _getitem(input, (slice(None),) * d + (idx.reshape(-1),))


def _mesh(index: np.ndarray, d: int):
    """Full index tuples for gather/scatter: ``index`` on axis ``d``, the position elsewhere."""
    grids = list(np.indices(index.shape, sparse=True))
    grids[d] = index
    return tuple(grids)


def _check_gather_index(a: np.ndarray, idx: np.ndarray, d: int, name: str) -> np.ndarray:
    if idx.dtype.kind not in "iu":
        raise RuntimeError(f"{name}(): Expected dtype int64 for index")
    if idx.ndim != a.ndim:
        raise RuntimeError(f"Index tensor must have the same number of dimensions as input tensor")
    n = a.shape[d]
    if idx.size and (idx.min() < -n or idx.max() >= n):
        raise RuntimeError(f"index {int(idx.max() if idx.max() >= n else idx.min())} is out of bounds for dimension {d} with size {n}")
    return idx


def gather(input: Tensor, dim: int, index: Tensor) -> Tensor:
    """``out[i][j] = input[index[i][j]][j]`` for ``dim=0`` (``input[i][index[i][j]]`` for ``dim=1``).

    Args:
        input: the source tensor.
        dim: the axis to index along.
        index: an integer tensor with ``input``'s number of dimensions; the output has its shape.

    Example:
        >>> dropcore.tensor([[1, 2], [3, 4]]).gather(1, dropcore.tensor([[0, 0], [1, 0]]))
        tensor([[1, 1],
                [4, 3]])
    """
    a = input._data
    d = _axis(dim, a.ndim)
    idx = _check_gather_index(a, _as_array(index), d, "gather")
    mesh = _mesh(idx, d)
    out = a[mesh]

    def backward(g):
        full = np.zeros(a.shape, g.dtype)
        np.add.at(full, mesh, g)
        return (full,)

    return _make_op(np.asarray(out), (input,), backward, "GatherBackward0", saved=())


def _scatter(input: Tensor, dim: int, index: Tensor, src, add: bool, name: str) -> Tensor:
    a = input._data
    d = _axis(dim, a.ndim)
    idx = _check_gather_index(a, _as_array(index), d, name)
    mesh = _mesh(idx, d)
    st = src if isinstance(src, Tensor) else None
    if st is not None:
        s = st._data
        s = s[tuple(slice(0, k) for k in idx.shape)].astype(a.dtype, copy=False)
    else:
        s = np.asarray(src, a.dtype)
    out = a.copy()
    if add:
        np.add.at(out, mesh, s)
    else:
        out[mesh] = s

    def backward(g):
        gi = g.copy()
        if not add:
            gi[mesh] = 0
        res = [gi]
        if st is not None:
            gs = np.zeros(st._data.shape, g.dtype)
            gs[tuple(slice(0, k) for k in idx.shape)] = g[mesh]
            res.append(gs)
        return res

    parents = (input,) if st is None else (input, st)
    return _make_op(out, parents, backward, "ScatterAddBackward0" if add else "ScatterBackward0", saved=())


def scatter(input: Tensor, dim: int, index: Tensor, src=None, *, value=None) -> Tensor:
    """A copy of ``input`` with ``out[index[i][j]][j] = src[i][j]`` (for ``dim=0``)."""
    if src is None:
        src = value
    if src is None:
        raise TypeError("scatter() needs src or value")
    return _scatter(input, dim, index, src, False, "scatter")


def scatter_add(input: Tensor, dim: int, index: Tensor, src: Tensor) -> Tensor:
    """A copy of ``input`` with ``src`` added at ``index`` along ``dim`` (repeats accumulate)."""
    return _scatter(input, dim, index, src, True, "scatter_add")


def masked_fill(input: Tensor, mask: Tensor, value) -> Tensor:
    """``value`` where ``mask`` is True, ``input`` elsewhere (the mask broadcasts)."""
    m = _as_array(mask)
    if m.dtype != np.bool_:
        raise RuntimeError(f"masked_fill_ only supports boolean masks, but got mask with dtype {D.pytorch_name(m.dtype)}")
    if isinstance(value, Tensor):
        if value._data.ndim:
            raise RuntimeError(
                f"masked_fill_ only supports a 0-dimensional value tensor, but got tensor with {value._data.ndim} dimension(s)."
            )
        value = value.item()
    a = input._data
    out = np.where(m, np.asarray(value).astype(a.dtype), a)
    if out.shape != a.shape:
        raise RuntimeError(f"The size of the mask {list(m.shape)} must be broadcastable to the tensor size {list(a.shape)}")
    return _make_op(out, (input,), lambda g: (np.where(m, 0, g).astype(g.dtype, copy=False),), "MaskedFillBackward0",
                    saved=())


# ----------------------------------------------------------------------------- joining
def cat(tensors: Iterable[Tensor], dim: int = 0) -> Tensor:
    """Join tensors along an existing ``dim`` (dtypes promote as in PyTorch)."""
    ts = [t if isinstance(t, Tensor) else _wrap(_as_array(t)) for t in tensors]
    if not ts:
        raise RuntimeError("torch.cat(): expected a non-empty list of Tensors")
    rt = D.result_type(tuple(t._data for t in ts if t._data.ndim), ())
    if rt is None:
        raise RuntimeError("zero-dimensional tensor (at position 0) cannot be concatenated")
    arrays = [t._data.astype(rt, copy=False) for t in ts]
    d = _axis(dim, arrays[0].ndim)
    try:
        out = np.concatenate(arrays, axis=d)
    except ValueError as e:
        raise RuntimeError(f"Sizes of tensors must match except in dimension {d}: {e}") from None
    bounds = np.cumsum([x.shape[d] for x in arrays])[:-1]
    return _make_op(out, tuple(ts), lambda g: tuple(np.split(g, bounds, axis=d)), "CatBackward0", saved=())


concat = concatenate = cat


def stack(tensors: Iterable[Tensor], dim: int = 0) -> Tensor:
    """Join same-shape tensors along a new ``dim``."""
    ts = [t if isinstance(t, Tensor) else _wrap(_as_array(t)) for t in tensors]
    if not ts:
        raise RuntimeError("stack expects a non-empty TensorList")
    shapes = {t._data.shape for t in ts}
    if len(shapes) > 1:
        raise RuntimeError(f"stack expects each tensor to be equal size, but got {[list(t.shape) for t in ts]}")
    n = ts[0]._data.ndim
    if not -n - 1 <= dim <= n:
        raise IndexError(f"Dimension out of range (expected to be in range of [{-n - 1}, {n}], but got {dim})")
    return cat([unsqueeze(t, dim) for t in ts], dim if dim >= 0 else dim + n + 1)


def _repeat(self: Tensor, *sizes) -> Tensor:
    """Tile the tensor ``sizes[i]`` times along each dimension (PyTorch's repeat, NumPy's tile)."""
    reps = _sizes(sizes)
    a = self._data
    if len(reps) < a.ndim:
        raise RuntimeError(
            "Number of dimensions of repeat dims can not be smaller than number of dimensions of tensor"
        )
    base = (1,) * (len(reps) - a.ndim) + a.shape
    out = np.tile(a.reshape(base), reps)

    def backward(g):
        inter = []
        for r, s in zip(reps, base):
            inter += [r, s]
        return (g.reshape(inter).sum(axis=tuple(range(0, 2 * len(reps), 2))).reshape(a.shape),)

    return _make_op(out, (self,), backward, "RepeatBackward0", saved=())


def flip(input: Tensor, dims) -> Tensor:
    axes = _dim_tuple(dims, input._data.ndim)
    return _make_op(np.flip(input._data, axes).copy(), (input,), lambda g: (np.flip(g, axes),), "FlipBackward0", saved=())


def _contiguous_copy(input: Tensor) -> Tensor:
    return _make_op(np.ascontiguousarray(input._data), (input,), lambda g: (g,), "CloneBackward0", saved=())


def clone(input: Tensor) -> Tensor:
    """A copy with its own storage; gradients flow back to ``input``."""
    return _make_op(input._data.copy(), (input,), lambda g: (g,), "CloneBackward0", saved=())


# ----------------------------------------------------------------------------- selection
def _select_backward(shape, idx, d):
    def backward(g):
        full = np.zeros(shape, g.dtype)
        np.put_along_axis(full, idx, g, axis=d)
        return (full,)

    return backward


def sort(input: Tensor, dim: int = -1, descending: bool = False, stable: bool = False):
    """Values sorted along ``dim`` and their indices (a ``(values, indices)`` namedtuple)."""
    a = input._data
    if a.ndim == 0:
        return sort_return(clone(input), _wrap(np.zeros((), np.int64)))
    d = _axis(dim, a.ndim)
    idx = np.argsort(-a if descending and a.dtype.kind != "b" else a, axis=d, kind="stable")
    if descending and a.dtype.kind == "b":
        idx = np.flip(np.argsort(a, axis=d, kind="stable"), d)
    values = np.take_along_axis(a, idx, axis=d)
    return sort_return(_make_op(values, (input,), _select_backward(a.shape, idx, d), "SortBackward0", saved=()),
                       _wrap(idx.astype(np.int64)))


def argsort(input: Tensor, dim: int = -1, descending: bool = False, stable: bool = False) -> Tensor:
    return sort(input, dim, descending, stable).indices


def topk(input: Tensor, k: int, dim: int = -1, largest: bool = True, sorted: bool = True):  # noqa: A002
    """The ``k`` largest (or smallest) values along ``dim`` and their indices."""
    a = input._data
    d = _axis(dim, a.ndim) if a.ndim else 0
    n = a.shape[d] if a.ndim else 1
    if not 0 <= k <= n:
        raise RuntimeError("selected index k out of range")
    x = a if a.ndim else a.reshape(1)
    order = np.argsort(-x if largest else x, axis=d, kind="stable")
    idx = np.take(order, np.arange(k), axis=d)
    values = np.take_along_axis(x, idx, axis=d)
    if not a.ndim:
        values, idx = values.reshape(()), idx.reshape(())
    vt = _make_op(values, (input,), _select_backward(x.shape, idx.reshape(values.shape) if a.ndim else idx.reshape(1), d)
                  if a.ndim else (lambda g: (g.reshape(a.shape),)), "TopkBackward0", saved=())
    return topk_return(vt, _wrap(idx.astype(np.int64)))


# ----------------------------------------------------------------------------- binding
def _bind() -> None:
    T = Tensor
    for name in ("reshape", "flatten", "unflatten", "permute", "transpose", "swapaxes", "t", "squeeze", "unsqueeze",
                 "narrow", "split", "chunk", "gather", "scatter", "scatter_add", "index_select", "masked_fill",
                 "topk", "sort", "argsort", "flip", "clone", "movedim"):
        setattr(T, name, globals()[name])
    T.view = _view
    T.view_as = lambda self, other: reshape(self, other.shape)
    T.reshape_as = lambda self, other: reshape(self, other.shape)
    T.expand = _expand
    T.expand_as = lambda self, other: _expand(self, other.shape)
    T.repeat = _repeat
    T.contiguous = lambda self, memory_format=None: self if self._data.flags.c_contiguous else _contiguous_copy(self)
    T.is_contiguous = lambda self, memory_format=None: bool(self._data.flags.c_contiguous)
    T.T = property(lambda self: permute(self, *reversed(range(self._data.ndim))))
    T.mT = property(lambda self: transpose(self, -2, -1))
    T.__getitem__ = _getitem
    T.__setitem__ = _setitem
    T.masked_fill_ = lambda self, mask, value: self._inplace_from(lambda s: masked_fill(s, mask, value), (value,))
    T.scatter_ = lambda self, dim, index, src=None, *, value=None: self._inplace_from(
        lambda s: scatter(s, dim, index, src, value=value), (src,))
    T.scatter_add_ = lambda self, dim, index, src: self._inplace_from(lambda s: scatter_add(s, dim, index, src), (src,))
    T.squeeze_ = lambda self, dim=None: _set_shape(self, squeeze(self, dim))
    T.unsqueeze_ = lambda self, dim: _set_shape(self, unsqueeze(self, dim))
    T.t_ = lambda self: _set_shape(self, t(self))
    T.transpose_ = lambda self, d0, d1: _set_shape(self, transpose(self, d0, d1))


def _set_shape(self: Tensor, view: Tensor) -> Tensor:
    """The shape-changing in-place methods: this tensor now is ``view`` (metadata only)."""
    if GM._state.enabled and self.requires_grad:
        raise RuntimeError("dropcore does not record in-place shape changes of a tensor that requires grad")
    self._data = view._data
    return self


_bind()
