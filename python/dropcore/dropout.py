"""Element dropout, functional form, for NumPy arrays and dropcore Tensors.

``dropout(x, p)`` zeroes each element with probability ``p`` (Srivastava et al.,
JMLR 2014) and, in the usual "inverted" form, scales the survivors by ``1/(1-p)`` so
nothing changes at test time. The masks come from the Philox word stream (see
:mod:`dropcore.random`): element ``i`` (C order) of a call reads the 16-bit half-word
``2 * offset + i`` (SPEC §2, contract v2: two elements per word, so a call on ``n``
elements draws ``ceil(n / 2)`` words), so a result depends only on ``(seed, offset)`` -
never on threads or chunking - and backward recomputes the mask instead of storing it.
"""

from __future__ import annotations

import importlib
import math
import numbers
import warnings
from typing import Any, Callable

import numpy as np

from . import _core
from . import random as _random
from .random import Generator, _resolve

__all__ = ["dropout"]

# --- one argument-check path for every entry point ------------------------------------
# The rule for the whole family (documented in the README, "out= and inplace"):
# - Every argument is checked before a single word is drawn; a call that fails leaves
#   the input, ``out`` and the generator as they were (a kernel that fails after the
#   draw, e.g. out of memory, gives its words back to the generator).
# - ``out=`` (keyword-only, every shape-preserving function of the family): NumPy input
#   only (a Tensor input raises TypeError). ``out`` must be an ndarray of the input's
#   dtype and shape, writeable, with no two elements sharing memory, and sharing no
#   memory with the input - unless it *is* the input, which means ``inplace=True``.
#   Any layout works (strided, unaligned or byte-swapped buffers go through a copy).
#   The result is written into ``out`` and ``out`` is returned; identity cases (eval,
#   ``p == 0``) copy the input into it.
# - ``inplace=True`` (where PyTorch has it): the result overwrites the input, which is
#   returned. The input must be writeable and free of self-overlap (a view whose
#   elements share memory, e.g. from ``np.broadcast_to``, would write every result
#   through one cell): ValueError otherwise. ``inplace=True`` with an ``out`` other
#   than the input is a ValueError (two different destinations). On a Tensor it
#   follows PyTorch (see ``_Call``): RuntimeError on a leaf that requires grad,
#   recorded by autograd otherwise.


def _check_p(p: Any, what: str = "dropout probability") -> float:
    """``p`` as a float in [0, 1]: TypeError unless a real number (a str or a bool is
    not), ValueError naming the value otherwise (PyTorch's message)."""
    if type(p) is float and 0.0 <= p <= 1.0:  # the common case, without ABC checks
        return p
    if isinstance(p, (bool, np.bool_)) or not isinstance(p, numbers.Real):
        raise TypeError(f"{what} must be a real number, but got {type(p).__name__}")
    value = float(p)
    if math.isnan(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{what} has to be between 0 and 1, but got {p}")
    return value


def _check_real(value: Any, name: str) -> float:
    """``value`` as a finite non-negative float (TypeError for a str, a bool, ...)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, but got {type(value).__name__}")
    f = float(value)
    if not math.isfinite(f) or f < 0:
        raise ValueError(f"{name} must be finite and non-negative, but got {value}")
    return f


def _check_int(value: Any, name: str) -> int:
    """``value`` as a Python int (an int or NumPy integer; a bool or a float is a TypeError)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, but got {type(value).__name__}")
    return int(value)


def _check_float_array(x: Any, name: str = "input") -> np.ndarray:
    """``x`` if it is a float32/float64 ndarray; TypeError otherwise (never a silent cast)."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray or a dropcore.Tensor, but got {type(x).__name__}")
    dtype = x.dtype
    if dtype.kind != "f" or dtype.itemsize not in (4, 8):
        raise TypeError(f"{name} must be float32 or float64, but got dtype {dtype}")
    return x


def _is_behaved(a: np.ndarray) -> bool:
    """Whether the kernels can read/write ``a`` as one slice: C-contiguous, aligned, native."""
    flags = a.flags
    return flags.c_contiguous and flags.aligned and a.dtype.isnative


def _behaved(x: np.ndarray) -> np.ndarray:
    """``x`` itself if the kernels can read it directly, else a C-contiguous, aligned,
    native-byte-order copy (strided, unaligned and big-endian inputs all work)."""
    if _is_behaved(x):
        return x
    return x.astype(x.dtype.newbyteorder("="), order="C")


def _self_overlapping(a: np.ndarray) -> bool:
    """Whether two elements of ``a`` share memory (zero or interleaved strides). Exact:
    a quick test accepts the usual layouts, the rest are checked element by element."""
    flags = a.flags
    if flags.c_contiguous or flags.f_contiguous or a.size <= 1:
        return False
    dims = sorted((abs(s), n) for s, n in zip(a.strides, a.shape) if n > 1)
    extent = a.itemsize
    for stride, n in dims:
        if stride < extent:
            break
        extent = stride * (n - 1) + extent
    else:
        return False  # each axis steps over everything the smaller axes span
    if dims[0][0] == 0:
        return True
    offsets = np.zeros(1, np.int64)
    for stride, n in dims:
        offsets = np.add.outer(offsets, np.arange(n, dtype=np.int64) * stride).ravel()
    offsets.sort()
    return bool((np.diff(offsets) < a.itemsize).any())


def _element_words(n: int) -> int:
    """Words an element mask on ``n`` elements draws: two elements per word (SPEC §2 v2)."""
    return (n + 1) // 2


def _check_writeable(x: np.ndarray) -> None:
    """The input of an in-place call: writeable, and no two elements in one cell."""
    flags = x.flags
    if not flags.writeable:
        raise ValueError("inplace=True needs a writeable array, but the input is read-only")
    if not flags.c_contiguous and _self_overlapping(x):  # (a C-contiguous array never does)
        raise ValueError(
            "inplace=True needs an array whose elements do not share memory, but the input has zero or "
            "overlapping strides (e.g. from np.broadcast_to or as_strided): pass a copy, or use inplace=False"
        )


def _check_out(out: Any, x: np.ndarray) -> None:
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy.ndarray, but got {type(out).__name__}")
    if out.shape != x.shape or out.dtype != x.dtype:
        raise ValueError(f"out must have the input's dtype and shape {x.dtype}{x.shape}, but has {out.dtype}{out.shape}")
    flags = out.flags
    if not flags.writeable:
        raise ValueError("out must be writeable, but it is read-only")
    if not flags.c_contiguous and _self_overlapping(out):  # (a C-contiguous out never does)
        raise ValueError("out must not have elements that share memory (zero or overlapping strides)")
    if flags.owndata and x.flags.owndata:
        shared = False  # two arrays that each allocated their own memory (out is not x)
    elif np.may_share_memory(out, x):  # bounds overlap: settle it exactly
        try:
            shared = np.shares_memory(out, x, max_work=1_000_000)
        except np.exceptions.TooHardError:  # pragma: no cover - exotic strides only
            shared = True
    else:
        shared = False
    if shared:
        raise ValueError("out must not overlap the input (out=input, or inplace=True, overwrites the input)")


_TENSOR: Any = None
_TENSOR_TYPE: Any = None  # dropcore.Tensor once the module is imported (the fast path's test)
_NDARRAY = np.ndarray
_DEFAULT_GENERATOR = _random.default_generator  # one object for the life of the process
_dropout_call = _core.dropout_call


def _tensor_module():
    """``dropcore.tensor``, imported on first use (it imports this module)."""
    global _TENSOR, _TENSOR_TYPE
    if _TENSOR is None:
        # (``from . import tensor`` would give the package's ``tensor()`` factory.)
        _TENSOR = importlib.import_module(".tensor", __package__)
        _TENSOR_TYPE = _TENSOR.Tensor
    return _TENSOR


class _Call:
    """One checked call: the Tensor (if any), its array, the destination, the mode.

    ``inplace`` on a Tensor follows PyTorch: refused (RuntimeError) on a leaf that
    requires grad; recorded by autograd on a non-leaf (the op runs on a snapshot and
    the tensor's storage takes the result, its ``grad_fn`` becomes the op's node);
    written straight into the storage when nothing records. Either way the version
    counter moves, so a graph that saved the old values refuses to use them.
    """

    __slots__ = ("input", "tensor", "x", "out", "inplace", "needs_graph")

    def __init__(self, input: Any, inplace: bool, out: Any) -> None:
        # (locals rather than attribute reads: this runs on every call of the family)
        self.input = input
        if isinstance(input, np.ndarray):
            tensor, self.needs_graph = None, False
            x = _check_float_array(input)
        else:
            tm = _tensor_module()
            if not isinstance(input, tm.Tensor):
                _check_float_array(input)  # raises the TypeError
            tensor = input
            x = _check_float_array(input._data)
            self.needs_graph = input.requires_grad and tm.is_grad_enabled()
        self.tensor, self.x = tensor, x
        inplace = bool(inplace)
        if out is not None:
            if tensor is not None:
                raise TypeError("out= is for NumPy arrays; a Tensor input gets a new Tensor (or itself with inplace=True)")
            if out is x:
                inplace, out = True, None
            elif inplace:
                raise ValueError("inplace=True and out= name two destinations: pass out=input, or one of the two")
            else:
                _check_out(out, x)
        self.inplace = inplace
        self.out = out
        if inplace:
            if tensor is not None:
                tensor._check_inplace()  # PyTorch's RuntimeErrors, before any draw
            _check_writeable(x)

    def identity(self) -> Any:
        """The result of an identity case (eval mode, ``p == 0``)."""
        if self.out is None:
            return self.input
        self.out[...] = self.x
        return self.out

    def _node(self, y: np.ndarray, parent, backward, name: str):
        """The Tensor result ``y`` of an out-of-place op on ``parent``. The backward
        reads no input values (masks are recomputed), so nothing is saved."""
        return _tensor_module()._make_op(y, (parent,), backward, name, saved=())

    def _tensor_inplace(self, compute: Callable[[Any], Any]) -> Any:
        """Write ``compute(tensor)`` into the Tensor's storage, recorded when autograd
        needs it (see the class docstring)."""
        t = self.tensor
        if self.needs_graph:
            return t._inplace_from(compute)
        compute(t)  # writes into t._data directly (see _forward)
        t._vbox[0] += 1
        return t

    def scaled(self, factor: float) -> Any:
        """``input * factor`` (vanilla dropout at test time), honouring inplace/out=."""
        x = self.x
        f = x.dtype.type(factor)
        if self.tensor is not None:

            def compute(src):
                if self.needs_graph or not self.inplace:
                    return self._node(src._data * f, src, lambda g: (g * g.dtype.type(factor),), "MulBackward0")
                np.multiply(src._data, f, out=src._data)
                return src

            return self._tensor_inplace(compute) if self.inplace else compute(self.tensor)
        dest = x if self.inplace else self.out
        if dest is None:
            return x * f
        np.multiply(x, f, out=dest)
        return dest

    def run(
        self,
        generator: Generator | None,
        n_words: int,
        kernel: Callable[..., np.ndarray],
        backward: Callable[..., np.ndarray] | None,
        name: str,
        inplace_kernel: Callable[..., Any] | None = None,
    ) -> Any:
        """Draw ``n_words`` words and run ``kernel(x, seed, offset, out)`` (``out``: a
        C-contiguous buffer to fill, or None for a new array). A Tensor records
        ``backward(grad, seed, offset, None)`` (None: the gradient passes through)."""
        gen = _resolve(generator)
        if self.tensor is None:
            return _forward(self.x, gen, n_words, kernel, self.inplace, self.out, inplace_kernel)[0]

        def compute(src):
            direct = self.inplace and not self.needs_graph
            y, seed, offset = _forward(src._data, gen, n_words, kernel, direct, None, inplace_kernel)
            if direct:
                return src
            if backward is None:
                return self._node(y, src, lambda g: (g,), name)
            return self._node(y, src, lambda g: (backward(_behaved(g), seed, offset, None) if g.size else g,), name)

        return self._tensor_inplace(compute) if self.inplace else compute(self.tensor)


def _forward(x, gen: Generator, n_words: int, kernel, inplace: bool, out, inplace_kernel=None):
    """The one place words are drawn: returns ``(result, seed, offset)``. If anything
    fails after the draw, the words go back to the generator (unless another call took
    words since) and the destination has not been written."""
    dest = x if inplace else out
    seed, offset = gen.take(n_words)
    try:
        if x.size == 0:
            y = dest if dest is not None else x.copy()
        elif inplace and inplace_kernel is not None and _is_behaved(x):
            inplace_kernel(x, seed, offset)
            y = x
        elif out is not None and _is_behaved(out):
            y = kernel(x if _is_behaved(x) else _behaved(x), seed, offset, out)
        else:
            y = kernel(_behaved(x), seed, offset, None)
            if dest is not None:
                dest[...] = y
                y = dest
    except BaseException:
        gen._untake(seed, offset, n_words)
        raise
    return y, seed, offset


def dropout(
    input: Any,
    p: float = 0.5,
    training: bool = True,
    inplace: bool = False,
    generator: Generator | None = None,
    inverted: bool = True,
    *,
    out: np.ndarray | None = None,
) -> Any:
    """Randomly zero elements of ``input`` with probability ``p``.

    Args:
        input: a float32/float64 ``np.ndarray`` of any shape, strides, alignment and
            byte order (the logical index is the C-order position), or a
            ``dropcore.Tensor``. An ndarray in gives an ndarray out, with the same
            dtype and shape (native byte order).
        p: probability of an element to be zeroed, a real number. Default: 0.5.
        training: apply dropout if ``True``; otherwise the identity (the input object
            itself), or, when ``inverted=False``, the input times ``1 - p``.
        inplace: overwrite ``input`` (an ndarray must be writeable and must not have
            elements that share memory). Tensors follow PyTorch: a leaf that requires
            grad is refused (RuntimeError); on other tensors the write is recorded by
            autograd and bumps the version counter.
        generator: the :class:`dropcore.Generator` to draw from (default: the global one).
        inverted: scale kept elements by ``1/(1-p)`` while training (the usual rule);
            ``False`` is the original rule: no scaling in training, ``* (1-p)`` at test.
        out: NumPy path only: a writeable array of the input's dtype and shape,
            sharing no memory with it, to write the result into (reusing a buffer saves
            the page faults a fresh large array costs). ``out=input`` is the same as
            ``inplace=True``. The rule is the same for every function of the family
            (README, "out= and inplace").

    Returns:
        The result; ``input`` itself for identity cases and successful ``inplace`` calls,
        ``out`` when given.

    Raises:
        TypeError: ``p`` is not a real number; ``input`` is not a float array;
            ``out`` with a Tensor.
        ValueError: ``p`` outside [0, 1]; a read-only or self-overlapping input with
            ``inplace=True``; a bad ``out``. Nothing is drawn or written then.

    Example:
        >>> import numpy as np, dropcore
        >>> x = np.ones(8, dtype=np.float32)
        >>> y = dropcore.nn.functional.dropout(x, p=0.5, generator=dropcore.Generator(0))
        >>> sorted(set(y.tolist())) in ([0.0, 2.0], [0.0], [2.0])
        True
    """
    # The common call in one crossing (issue 11): an exact ndarray or Tensor, the
    # default or a plain Generator, training. ``_core.dropout_call`` checks the rest
    # (p a float in (0, 1], bools, dtype, layout, ``out``) before it draws a word, and
    # returns None for anything else: the general path below then decides, with the
    # same result or the documented error.
    # (Module-level aliases: each global or attribute lookup costs tens of ns here.)
    if training is True:
        gen = _DEFAULT_GENERATOR if generator is None else generator
        if type(gen) is Generator:
            if type(input) is _NDARRAY:
                y = _dropout_call(input, p, gen, inverted, inplace, out)
                if y is not None:
                    return y
            elif inplace is False and out is None and type(input) is (_TENSOR_TYPE or _tensor_module().Tensor):
                r = _dropout_call(input._data, p, gen, inverted, False, None, True)
                if r is not None:
                    return _dropout_node(input, r, p, inverted)
    p = _check_p(p)
    call = _Call(input, inplace, out)
    if not training or p == 0.0:
        return call.identity() if inverted or p == 0.0 else call.scaled(1.0 - p)

    def kernel(x, seed, offset, dest):
        return _core.dropout(x, p, seed, offset, inverted, False, dest)

    def in_place(x, seed, offset):
        return _core.dropout(x, p, seed, offset, inverted, True)

    # (the in-place closure is built only when it can be used: each costs a little)
    return call.run(generator, _element_words(call.x.size), kernel, kernel, "NativeDropoutBackward0",
                    in_place if call.inplace else None)


def _dropout_node(t, result: tuple[np.ndarray, int, int], p: float, inverted: bool):
    """The Tensor that ``dropout`` returns for ``t`` from ``(y, seed, offset)``: what
    ``_Call.run`` records, built without its closures (backward recomputes the mask);
    a plain result Tensor when autograd records nothing."""
    y, seed, offset = result
    tm = _TENSOR
    if not (t.requires_grad and tm.is_grad_enabled()):
        return tm._wrap(y)  # (what _make_op builds when nothing needs a graph)

    def backward(g):
        return (_core.dropout(_behaved(g), p, seed, offset, inverted, False, None) if g.size else g,)

    return _TENSOR._make_op(y, (t,), backward, "NativeDropoutBackward0", saved=())


def _apply(x: np.ndarray, p: float, seed: int, offset: int, inverted: bool, inplace: bool) -> np.ndarray:
    """Element dropout of ``x`` with words ``offset ..`` of ``seed`` (no generator):
    the replay used by DropConnect's shared mask and its backward."""
    if x.size == 0:
        return x if inplace else x.copy()
    if inplace and _is_behaved(x):
        return _core.dropout(x, p, seed, offset, inverted, True)
    y = _core.dropout(_behaved(x), p, seed, offset, inverted, False)
    if inplace:
        x[...] = y
        return x
    return y


# --- the dropout family (issue 4) ----------------------------------------------------
# Every variant draws from the Philox stream through its generator and records only
# (seed, offset) for backward. Which word a unit reads is part of the definition:
# channel dropout and DropPath one word per group (C order), Gaussian noise one word
# per element (a Box-Muller pair per two elements: 2 * ceil(n / 2) words), DropBlock one
# word per position; element masks (dropout, alpha dropout, DropConnect's weight
# entries) one 16-bit half-word per element.

_ALPHA_PRIME = -1.7580993408473766  # -lambda * alpha of SELU (Klambauer et al. 2017)


def _bernoulli(call: _Call, p: float, generator, n_words: int, inner, a, b, dropped, grad_a, name: str):
    """Kept units ``a x + b``, dropped ones ``dropped``; one word per element
    (``inner=None``) or per contiguous group of ``inner`` elements. Backward: ``g * a``
    on kept units, 0 on dropped ones."""

    def kernel(x, seed, offset, dest):
        return _core.bernoulli_map(x, p, a, b, dropped, seed, offset, inner, dest)

    def backward(g, seed, offset, dest):
        return _core.bernoulli_map(g, p, grad_a, 0.0, 0.0, seed, offset, inner, dest)

    return call.run(generator, n_words, kernel, backward, name)


def _zeros(call: _Call, generator, name: str):
    """Every unit dropped, no word drawn (``p == 1`` where no mask is needed)."""
    return call.run(generator, 0, lambda x, s, o, dest: np.zeros_like(x) if dest is None else _fill0(dest),
                    lambda g, s, o, dest: np.zeros_like(g), name)


def _fill0(dest: np.ndarray) -> np.ndarray:
    dest[...] = 0
    return dest


_FEATURE_DIMS = "Feature dropout requires at least 2 dimensions in the input"
# PyTorch 2.x's warning for 3-D input to dropout2d (read as (N, C, L)).
_DROPOUT2D_3D = (
    "dropout2d: Received a 3D input to dropout2d and assuming that channel-wise "
    "1D dropout behavior is desired - input is interpreted as shape (N, C, L), where C "
    "is the channel dim. This behavior will change in a future release to interpret the "
    "input as one without a batch dimension, i.e. shape (C, H, W). To maintain the 1D "
    "channel-wise dropout behavior, please switch to using dropout1d instead."
)


def _feature_dropout(call: _Call, p: float, training: bool, generator, batched: bool, name: str):
    """PyTorch's ``feature_dropout`` on ``input`` (``batched``) or on ``input[None]``:
    one word per (sample, channel) = the first two dims; kept units scaled by 1/(1-p)."""
    x = call.x
    if not training or p == 0.0 or x.size == 0:
        return call.identity()
    groups = x.shape[:2] if batched else x.shape[:1]
    if len(groups) + (0 if batched else 1) < 2:
        if p == 1.0:
            return _zeros(call, generator, name)
        raise RuntimeError(_FEATURE_DIMS)
    n_groups = math.prod(groups)
    s = 1.0 / (1.0 - p) if p < 1.0 else 0.0
    return _bernoulli(call, p, generator, n_groups, x.size // n_groups, s, 0.0, 0.0, s, name)


def dropout1d(input, p: float = 0.5, training: bool = True, inplace: bool = False, generator=None, *, out=None):
    """Zero whole channels of (N, C, L) or (C, L) input with probability ``p`` (one word
    per (sample, channel)); survivors scaled by 1/(1-p). Other ranks raise PyTorch's
    RuntimeError. ``inplace``/``out``: as for :func:`dropout`."""
    p = _check_p(p)
    call = _Call(input, inplace, out)
    ndim = call.x.ndim
    if ndim not in (2, 3):
        raise RuntimeError(
            f"dropout1d: Expected 2D or 3D input, but received a {ndim}D input. "
            "Note that dropout1d exists to provide channel-wise dropout on inputs with 1 "
            "spatial dimension, a channel dimension, and an optional batch dimension "
            "(i.e. 2D or 3D inputs)."
        )
    return _feature_dropout(call, p, training, generator, ndim == 3, "FeatureDropoutBackward0")


def _warn_deprecated_rank(name: str, ndim: int, spatial: int) -> None:
    """PyTorch 2.x's warning for a rank ``dropout2d``/``dropout3d`` does not document
    (its text verbatim); ``stacklevel`` points at the user's call."""
    warnings.warn(
        f"{name}: Received a {ndim}-D input to {name}, which is deprecated "
        "and will result in an error in a future release. To retain the behavior "
        f"and silence this warning, please use dropout instead. Note that {name} "
        f"exists to provide channel-wise dropout on inputs with {spatial} spatial dimensions, "
        f"a channel dimension, and an optional batch dimension (i.e. {spatial + 1}D or {spatial + 2}D inputs).",
        stacklevel=3,
    )


def dropout2d(input, p: float = 0.5, training: bool = True, inplace: bool = False, generator=None, *, out=None):
    """Zero whole channels (SpatialDropout, Tompson et al. 2015) of (N, C, H, W) input
    with probability ``p``; survivors scaled by 1/(1-p).

    As in PyTorch 2.x, 3-D input is read as (N, C, L) (channel-wise 1-D dropout, with
    PyTorch's warning), and other ranks warn that they are deprecated and then drop
    dims (0, 1) as a unit (2-D input: every element on its own; fewer than 2 dims:
    RuntimeError while training). ``inplace``/``out``: as for :func:`dropout`."""
    p = _check_p(p)
    call = _Call(input, inplace, out)
    ndim = call.x.ndim
    if ndim not in (3, 4):
        _warn_deprecated_rank("dropout2d", ndim, 2)
    if ndim == 3:
        warnings.warn(_DROPOUT2D_3D, stacklevel=2)
    return _feature_dropout(call, p, training, generator, True, "FeatureDropoutBackward0")


def dropout3d(input, p: float = 0.5, training: bool = True, inplace: bool = False, generator=None, *, out=None):
    """Zero whole channels of (N, C, D, H, W) or (C, D, H, W) input with probability
    ``p``; survivors scaled by 1/(1-p). Other ranks warn as in PyTorch 2.x and are
    read as unbatched (dim 0 is the channel). ``inplace``/``out``: as for :func:`dropout`."""
    p = _check_p(p)
    call = _Call(input, inplace, out)
    ndim = call.x.ndim
    if ndim not in (4, 5):
        _warn_deprecated_rank("dropout3d", ndim, 3)
    return _feature_dropout(call, p, training, generator, ndim == 5, "FeatureDropoutBackward0")


def _alpha_constants(p: float) -> tuple[float, float, float]:
    """PyTorch's affine correction: (a, b, value of a dropped unit)."""
    a = ((1.0 - p) * (1.0 + p * _ALPHA_PRIME**2)) ** -0.5
    b = -a * _ALPHA_PRIME * p
    return a, b, a * _ALPHA_PRIME + b


def alpha_dropout(input, p: float = 0.5, training: bool = False, inplace: bool = False, generator=None, *, out=None):
    """Alpha dropout (Klambauer et al. 2017): dropped units take SELU's negative
    saturation value and an affine correction keeps mean 0 and variance 1.
    ``inplace``/``out``: as for :func:`dropout`."""
    p = _check_p(p)
    call = _Call(input, inplace, out)
    if not training or p == 0.0:
        return call.identity()
    if p == 1.0:
        return _zeros(call, generator, "AlphaDropoutBackward")
    a, b, d = _alpha_constants(p)
    return _bernoulli(call, p, generator, _element_words(call.x.size), None, a, b, d, a, "AlphaDropoutBackward")


def feature_alpha_dropout(input, p: float = 0.5, training: bool = False, inplace: bool = False, generator=None, *,
                          out=None):
    """Alpha dropout of whole channels (dims 0 and 1 share a word); fewer than 2 dims
    raise PyTorch's RuntimeError while training. ``inplace``/``out``: as for :func:`dropout`."""
    p = _check_p(p)
    call = _Call(input, inplace, out)
    x = call.x
    if not training or p == 0.0 or x.size == 0:
        return call.identity()
    if p == 1.0:
        return _zeros(call, generator, "FeatureAlphaDropoutBackward")
    if x.ndim < 2:
        raise RuntimeError(_FEATURE_DIMS)
    a, b, d = _alpha_constants(p)
    n_groups = math.prod(x.shape[:2])
    return _bernoulli(call, p, generator, n_groups, x.size // n_groups, a, b, d, a, "FeatureAlphaDropoutBackward")


def _gaussian_words(n: int) -> int:
    """Words a Gaussian call on ``n`` elements draws: ``2 * ceil(n / 2)`` (elements
    ``2k`` and ``2k + 1`` share the Box-Muller pair of words ``2k``, ``2k + 1``)."""
    return n + (n & 1)


def gaussian_dropout(input, p: float = 0.5, training: bool = True, generator=None, *, out=None):
    """Multiply by noise ~ N(1, p/(1-p)) (Srivastava et al. 2014, §10): the Gaussian
    version of dropout, with the same mean and variance as the Bernoulli mask.
    ``out``: as for :func:`dropout`."""
    p = _check_p(p)
    if p == 1.0:
        raise ValueError("gaussian_dropout needs p < 1 (the noise variance p/(1-p) is infinite at p = 1)")
    call = _Call(input, False, out)
    if not training or p == 0.0:
        return call.identity()
    sigma = math.sqrt(p / (1.0 - p))

    def kernel(x, seed, offset, dest):
        return _core.gaussian_map(x, sigma, True, seed, offset, dest)

    return call.run(generator, _gaussian_words(call.x.size), kernel, kernel, "GaussianDropoutBackward")


def gaussian_noise(input, stddev: float, training: bool = True, generator=None, *, out=None):
    """Add N(0, stddev^2) noise while training (identity in eval). ``stddev``: a finite
    non-negative real number. ``out``: as for :func:`dropout`."""
    stddev = _check_real(stddev, "stddev")
    call = _Call(input, False, out)
    if not training or stddev == 0.0:
        return call.identity()

    def kernel(x, seed, offset, dest):
        return _core.gaussian_map(x, stddev, False, seed, offset, dest)

    return call.run(generator, _gaussian_words(call.x.size), kernel, None, "GaussianNoiseBackward")


def drop_block2d(input, p: float, block_size: int, inplace: bool = False, training: bool = True, generator=None, *,
                 out=None):
    """DropBlock (Ghiasi et al. 2018) on (N, C, H, W): square blocks of side
    ``block_size`` (an int) dropped so that about ``p`` of the units are; the rest are
    scaled by numel / kept. ``inplace``/``out``: as for :func:`dropout`."""
    p = _check_p(p, "drop probability")
    block_size = _check_int(block_size, "block_size")
    call = _Call(input, inplace, out)
    x = call.x
    if x.ndim != 4:
        raise ValueError(f"drop_block2d expects (N, C, H, W) input, but got shape {x.shape}")
    if not 1 <= block_size <= min(x.shape[2:]):
        raise ValueError(f"block_size must be an int between 1 and {min(x.shape[2:])}, but got {block_size}")
    if not training or p == 0.0:
        return call.identity()

    def kernel(arr, seed, offset, dest):
        return _core.drop_block2d(arr, p, block_size, seed, offset, dest)

    return call.run(generator, x.size, kernel, kernel, "DropBlock2dBackward")


def drop_path(x, p: float = 0.0, training: bool = False, scale_by_keep: bool = True, generator=None, *, out=None):
    """Stochastic depth (Huang et al. 2016): drop whole samples (dim 0) with probability
    ``p``, one word per sample; survivors scaled by 1/(1-p) if ``scale_by_keep``.
    ``out``: as for :func:`dropout`."""
    p = _check_p(p, "drop_path probability")
    call = _Call(x, False, out)
    arr = call.x
    if arr.ndim < 1:
        raise ValueError("drop_path needs at least 1-D input (samples on dim 0)")
    if not training or p == 0.0 or arr.size == 0:
        return call.identity()
    s = (1.0 / (1.0 - p) if p < 1.0 else 0.0) if scale_by_keep else 1.0
    n = arr.shape[0]
    return _bernoulli(call, p, generator, n, arr.size // n, s, 0.0, 0.0, s, "DropPathBackward")


def _linear_operand(value, name: str, dtype=None):
    """A DropConnect operand as ``(tensor_or_None, behaved array)``, checked."""
    from .tensor import Tensor

    is_tensor = isinstance(value, Tensor)
    arr = _check_float_array(value._data if is_tensor else value, name)
    if dtype is not None and arr.dtype.newbyteorder("=") != dtype:
        raise TypeError(f"{name} must have the input's dtype {dtype}, but got {arr.dtype}")
    return (value if is_tensor else None), _behaved(arr)


def dropconnect_linear(input, weight, bias=None, p: float = 0.5, training: bool = True, per_sample: bool = False,
                       generator=None):
    """DropConnect (Wan et al. 2013): ``input @ (M * W).T * 1/(1-p) + bias`` with a
    Bernoulli mask ``M`` on the weights (half-word ``o * in + i``). ``per_sample=True`` gives
    every example its own mask (half-words ``b * out * in + o * in + i``), generated inside
    the kernel without materialising ``B`` weight matrices. Eval: the plain layer.

    ``input`` (B, in), ``weight`` (out, in) and ``bias`` (out,) are Tensors or float
    ndarrays of one dtype; with no Tensor among them the result is an ndarray."""
    from ._ops_linalg import linear
    from .tensor import Tensor, _make_op

    p = _check_p(p, "dropconnect probability")
    tx, x = _linear_operand(input, "input")
    tw, w = _linear_operand(weight, "weight", x.dtype)
    tb, bv = (None, None) if bias is None else _linear_operand(bias, "bias", x.dtype)
    if x.ndim != 2 or w.ndim != 2 or x.shape[1] != w.shape[1]:
        raise ValueError(f"dropconnect_linear expects input (B, in) and weight (out, in), but got {x.shape} and {w.shape}")
    if bv is not None and bv.shape != (w.shape[0],):
        raise ValueError(f"dropconnect_linear expects bias ({w.shape[0]},), but got {bv.shape}")
    arrays_only = tx is None and tw is None and tb is None
    as_tensor = [t if t is not None else Tensor(a) for t, a in ((tx, x), (tw, w), (tb, bv)) if a is not None]
    input, weight = as_tensor[0], as_tensor[1]
    bias = as_tensor[2] if bv is not None else None
    if not training or p == 0.0:
        y = linear(input, weight, bias)
        return y._data if arrays_only else y
    gen = _resolve(generator)
    parents = (input, weight) if bias is None else (input, weight, bias)
    if not per_sample:
        n_words = _element_words(w.size)
        seed, offset = gen.take(n_words)
        try:
            wm = _apply(w, p, seed, offset, True, False)
            out = x @ wm.T
            if bv is not None:
                out += bv
        except BaseException:
            gen._untake(seed, offset, n_words)
            raise

        def backward(g):
            gx = g @ _apply(w, p, seed, offset, True, False) if input.requires_grad else None
            gw = _apply(np.ascontiguousarray(g.T @ x), p, seed, offset, True, False) if weight.requires_grad else None
            return (gx, gw) if bias is None else (gx, gw, g.sum(0))

        y = _make_op(out, parents, backward, "DropConnectBackward")
        return y._data if arrays_only else y
    n_words = _element_words(x.shape[0] * w.size)
    seed, offset = gen.take(n_words)
    try:
        out = _core.dropconnect_forward(x, w, bv, p, seed, offset)
    except BaseException:
        gen._untake(seed, offset, n_words)
        raise

    def backward_per_sample(g):
        gx, gw = _core.dropconnect_backward(_behaved(g), x, w, p, seed, offset)
        return (gx, gw) if bias is None else (gx, gw, g.sum(0))

    y = _make_op(out, parents, backward_per_sample, "DropConnectPerSampleBackward")
    return y._data if arrays_only else y


__all__ += [
    "dropout1d",
    "dropout2d",
    "dropout3d",
    "alpha_dropout",
    "feature_alpha_dropout",
    "gaussian_dropout",
    "gaussian_noise",
    "drop_block2d",
    "drop_path",
    "dropconnect_linear",
]
