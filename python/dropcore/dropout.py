"""Element dropout, functional form, for NumPy arrays and dropcore Tensors.

``dropout(x, p)`` zeroes each element with probability ``p`` (Srivastava et al.,
JMLR 2014) and, in the usual "inverted" form, scales the survivors by ``1/(1-p)`` so
nothing changes at test time. The masks come from the Philox word stream (see
:mod:`dropcore.random`): element ``i`` (C order) of a call reads word ``offset + i``,
so a result depends only on ``(seed, offset)`` - never on threads or chunking - and
backward recomputes the mask instead of storing it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import _core
from .random import Generator, _resolve

__all__ = ["dropout"]


def _check_p(p: Any, what: str = "dropout probability") -> float:
    """``p`` as a float in [0, 1], or a ValueError naming it (PyTorch's message)."""
    try:
        value = float(p)
    except (TypeError, ValueError):
        raise TypeError(f"{what} must be a real number, but got {type(p).__name__}") from None
    if math.isnan(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{what} has to be between 0 and 1, but got {p}")
    return value


def _check_float_array(x: Any, name: str = "input") -> np.ndarray:
    """``x`` if it is a float32/float64 ndarray; TypeError otherwise (never a silent cast)."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray or a dropcore.Tensor, but got {type(x).__name__}")
    if x.dtype.kind != "f" or x.dtype.itemsize not in (4, 8):
        raise TypeError(f"{name} must be float32 or float64, but got dtype {x.dtype}")
    return x


def _contiguous(x: np.ndarray) -> np.ndarray:
    """A C-contiguous, native-byte-order view of ``x``; copies only when it must."""
    if not x.dtype.isnative:
        x = x.astype(x.dtype.newbyteorder("="))
    # (np.ascontiguousarray would turn a 0-d array into a 1-d one.)
    return x if x.flags.c_contiguous else np.ascontiguousarray(x)


def _check_writeable(x: np.ndarray) -> None:
    if not x.flags.writeable:
        raise ValueError("inplace=True needs a writeable array, but the input is read-only")


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
        input: a float32/float64 ``np.ndarray`` of any shape and strides (the logical
            index is the C-order position), or a ``dropcore.Tensor``. An ndarray in
            gives an ndarray out, with the same dtype and shape.
        p: probability of an element to be zeroed. Default: 0.5.
        training: apply dropout if ``True``; otherwise the identity (the input object
            itself), or, when ``inverted=False``, the input times ``1 - p``.
        inplace: overwrite ``input`` (an ndarray must be writeable). For a Tensor that
            takes part in autograd the result is computed out of place.
        generator: the :class:`dropcore.Generator` to draw from (default: the global one).
        inverted: scale kept elements by ``1/(1-p)`` while training (the usual rule);
            ``False`` is the original rule: no scaling in training, ``* (1-p)`` at test.
        out: NumPy path only: a writeable C-contiguous array of the input's dtype and
            shape to write the result into (reusing a buffer saves the page faults a
            fresh large array costs). ``out=input`` is the same as ``inplace=True``.

    Returns:
        The result; ``input`` itself for identity cases and successful ``inplace`` calls.

    Example:
        >>> import numpy as np, dropcore
        >>> x = np.ones(8, dtype=np.float32)
        >>> y = dropcore.nn.functional.dropout(x, p=0.5, generator=dropcore.Generator(0))
        >>> sorted(set(y.tolist())) in ([0.0, 2.0], [0.0], [2.0])
        True
    """
    p = _check_p(p)
    gen = _resolve(generator)
    if not isinstance(input, np.ndarray):
        from .tensor import Tensor

        if isinstance(input, Tensor):
            return _dropout_tensor(input, p, training, inplace, gen, inverted)
    x = _check_float_array(input)
    if out is not None:
        if out is x:
            inplace, out = True, None
        else:
            _check_out(out, x)
    if inplace:
        _check_writeable(x)
    if not training or p == 0.0:
        y = _eval_scale(x, p, inverted if not training else True, inplace)
        if out is None:
            return y
        out[...] = y
        return out
    seed, offset = gen.take(x.size)
    if out is not None and x.flags.c_contiguous and x.dtype.isnative:
        return _core.dropout(x, p, seed, offset, inverted, False, out) if x.size else out
    y = _apply(x, p, seed, offset, inverted, inplace)
    if out is not None:
        out[...] = y
        return out
    return y


def _check_out(out: Any, x: np.ndarray) -> None:
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy.ndarray, but got {type(out).__name__}")
    if out.dtype != x.dtype or out.shape != x.shape:
        raise ValueError(f"out must have the input's dtype and shape {x.dtype}{x.shape}, but has {out.dtype}{out.shape}")
    if not out.flags.c_contiguous or not out.flags.writeable:
        raise ValueError("out must be C-contiguous and writeable")
    if np.may_share_memory(out, x):
        raise ValueError("out must not overlap the input (use inplace=True)")


def _eval_scale(x: np.ndarray, p: float, inverted: bool, inplace: bool) -> np.ndarray:
    """Test-time dropout: identity, or ``x * (1-p)`` for the original rule."""
    if inverted or p == 0.0:
        return x
    factor = x.dtype.type(1.0 - p)
    if inplace:
        np.multiply(x, factor, out=x)
        return x
    return x * factor


def _apply(x: np.ndarray, p: float, seed: int, offset: int, inverted: bool, inplace: bool) -> np.ndarray:
    """Run the Rust kernel on words ``offset ..`` of ``seed`` (GIL released inside)."""
    if x.size == 0:
        return x if inplace else x.copy()
    if inplace and x.flags.c_contiguous and x.dtype.isnative:
        return _core.dropout(x, p, seed, offset, inverted, True)
    out = _core.dropout(_contiguous(x), p, seed, offset, inverted, False)
    if inplace:
        x[...] = out
        return x
    return out


def _dropout_tensor(x, p: float, training: bool, inplace: bool, gen: Generator, inverted: bool):
    """Tensor dropout: records ``(seed, offset)`` and recomputes the mask in backward."""
    from .tensor import _make_op, is_grad_enabled

    _check_float_array(x.data)
    needs_graph = x.requires_grad and is_grad_enabled()
    if not training:
        if inverted or p == 0.0:
            return x
        if inplace and not needs_graph:
            _eval_scale(x.data, p, inverted, True)
            return x
        factor = 1.0 - p
        return _make_op(x.data * x.data.dtype.type(factor), (x,), lambda g: (g * g.dtype.type(factor),), "dropout")
    if p == 0.0:
        return x
    seed, offset = gen.take(x.data.size)
    if inplace and not needs_graph:
        _apply(x.data, p, seed, offset, inverted, True)
        return x
    out = _apply(x.data, p, seed, offset, inverted, False)
    # The same map on the gradient: dx = dy * keep * s, with the mask recomputed.
    return _make_op(out, (x,), lambda g: (_apply(g, p, seed, offset, inverted, False),), "dropout")
