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


def _element_words(n: int) -> int:
    """Words an element mask on ``n`` elements draws: two elements per word (SPEC §2 v2)."""
    return (n + 1) // 2


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
    seed, offset = gen.take(_element_words(x.size))
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

    _check_float_array(x._data)
    needs_graph = x.requires_grad and is_grad_enabled()
    if not training:
        if inverted or p == 0.0:
            return x
        if inplace and not needs_graph:
            _eval_scale(x._data, p, inverted, True)
            return x
        factor = 1.0 - p
        return _make_op(x._data * x._data.dtype.type(factor), (x,), lambda g: (g * g.dtype.type(factor),), "MulBackward0")
    if p == 0.0:
        return x
    seed, offset = gen.take(_element_words(x._data.size))
    if inplace and not needs_graph:
        _apply(x._data, p, seed, offset, inverted, True)
        return x
    out = _apply(x._data, p, seed, offset, inverted, False)
    # The same map on the gradient: dx = dy * keep * s, with the mask recomputed.
    return _make_op(out, (x,), lambda g: (_apply(g, p, seed, offset, inverted, False),), "NativeDropoutBackward0")


# --- the dropout family (issue 4) ----------------------------------------------------
# Every variant draws from the Philox stream through its generator and records only
# (seed, offset) for backward. Which word a unit reads is part of the definition:
# channel dropout and DropPath one word per group (C order), Gaussian noise two words
# per element, DropBlock one word per position; element masks (dropout, alpha dropout,
# DropConnect's weight entries) one 16-bit half-word per element.

_ALPHA_PRIME = -1.7580993408473766  # -lambda * alpha of SELU (Klambauer et al. 2017)


def _random_op(input, gen: Generator, n_words: int, fwd, bwd, name: str, inplace: bool = False):
    """Run ``fwd(x, seed, offset)`` on an ndarray or a Tensor; a Tensor records
    ``bwd(grad, seed, offset)`` (``None``: the gradient passes through unchanged)."""
    from .tensor import Tensor, _make_op

    is_tensor = isinstance(input, Tensor)
    x = input._data if is_tensor else input
    if inplace and not is_tensor:
        _check_writeable(x)
    seed, offset = gen.take(n_words)
    out = fwd(_contiguous(x), seed, offset) if x.size else x.copy()
    if not is_tensor:
        if inplace:
            x[...] = out
            return x
        return out
    if bwd is None:
        return _make_op(out, (input,), lambda g: (g,), name)
    return _make_op(out, (input,), lambda g: (bwd(_contiguous(g), seed, offset) if g.size else g,), name)


def _array_of(input, name: str = "input") -> np.ndarray:
    from .tensor import Tensor

    return _check_float_array(input._data if isinstance(input, Tensor) else input, name)


def _grouped(input, p, training, inplace, generator, groups_shape, a, b, dropped, grad_a, name, out=None):
    """Bernoulli dropout of whole groups: ``groups_shape`` leading dims share one word.

    ``out`` (NumPy path only) receives the result instead of a new array.
    """
    x = _array_of(input)
    if out is not None:
        if not isinstance(input, np.ndarray):
            raise TypeError("out= is for NumPy arrays; Tensors get a new result")
        _check_out(out, x)
    if not training or p == 0.0:
        if out is None:
            return input
        out[...] = x
        return out
    groups = int(np.prod(groups_shape)) if groups_shape else 1
    inner = x.size // groups if groups else 1

    def fwd(arr, seed, offset):
        return _core.bernoulli_map(arr, p, a, b, dropped, seed, offset, max(inner, 1), out)

    def bwd(g, seed, offset):
        return _core.bernoulli_map(g, p, grad_a, 0.0, 0.0, seed, offset, max(inner, 1))

    return _random_op(input, _resolve(generator), groups, fwd, bwd, name, inplace)


def _channel_groups(x: np.ndarray, name: str, batched_rank: int) -> tuple[int, ...]:
    """(N, C) or (C,): the dims that share one word, for PyTorch's accepted shapes."""
    if x.ndim == batched_rank:
        return x.shape[:2]
    if x.ndim == batched_rank - 1:
        return x.shape[:1]
    raise ValueError(
        f"{name}: expected {batched_rank - 1}-D or {batched_rank}-D input, but got input of shape {x.shape}"
    )


def _channel_dropout(input, p, training, inplace, generator, name, batched_rank, out):
    p = _check_p(p)
    x = _array_of(input)
    groups = _channel_groups(x, name, batched_rank)
    s = 1.0 / (1.0 - p) if p < 1.0 else 0.0
    return _grouped(input, p, training, inplace, generator, groups, s, 0.0, 0.0, s, name, out)


def dropout1d(input, p: float = 0.5, training: bool = True, inplace: bool = False, generator=None, *, out=None):
    """Zero whole channels of (N, C, L) or (C, L) input with probability ``p``
    (one word per (sample, channel)); survivors scaled by 1/(1-p). ``out``: as for
    :func:`dropout` (NumPy path)."""
    return _channel_dropout(input, p, training, inplace, generator, "dropout1d", 3, out)


def dropout2d(input, p: float = 0.5, training: bool = True, inplace: bool = False, generator=None, *, out=None):
    """Zero whole channels (SpatialDropout, Tompson et al. 2015) of (N, C, H, W) or
    (C, H, W) input with probability ``p``; survivors scaled by 1/(1-p)."""
    return _channel_dropout(input, p, training, inplace, generator, "dropout2d", 4, out)


def dropout3d(input, p: float = 0.5, training: bool = True, inplace: bool = False, generator=None, *, out=None):
    """Zero whole channels of (N, C, D, H, W) or (C, D, H, W) input with probability ``p``."""
    return _channel_dropout(input, p, training, inplace, generator, "dropout3d", 5, out)


def _alpha_constants(p: float) -> tuple[float, float, float]:
    """PyTorch's affine correction: (a, b, value of a dropped unit)."""
    a = ((1.0 - p) * (1.0 + p * _ALPHA_PRIME**2)) ** -0.5
    b = -a * _ALPHA_PRIME * p
    return a, b, a * _ALPHA_PRIME + b


def alpha_dropout(input, p: float = 0.5, training: bool = False, inplace: bool = False, generator=None):
    """Alpha dropout (Klambauer et al. 2017): dropped units take SELU's negative
    saturation value and an affine correction keeps mean 0 and variance 1."""
    p = _check_p(p)
    x = _array_of(input)
    if not training or p == 0.0:
        return input
    if p == 1.0:
        return _random_op(input, _resolve(generator), 0, lambda arr, s, o: np.zeros_like(arr), lambda g, s, o: np.zeros_like(g), "AlphaDropout", inplace)
    a, b, d = _alpha_constants(p)
    return _random_op(
        input,
        _resolve(generator),
        _element_words(x.size),
        lambda arr, seed, off: _core.bernoulli_map(arr, p, a, b, d, seed, off),
        lambda g, seed, off: _core.bernoulli_map(g, p, a, 0.0, 0.0, seed, off),
        "AlphaDropoutBackward",
        inplace,
    )


def feature_alpha_dropout(input, p: float = 0.5, training: bool = False, inplace: bool = False, generator=None):
    """Alpha dropout of whole channels (dims 0 and 1 share a word)."""
    p = _check_p(p)
    x = _array_of(input)
    if x.ndim < 2:
        raise ValueError(f"feature_alpha_dropout needs at least 2-D input, but got shape {x.shape}")
    if not training or p == 0.0:
        return input
    if p == 1.0:
        return _random_op(input, _resolve(generator), 0, lambda arr, s, o: np.zeros_like(arr), lambda g, s, o: np.zeros_like(g), "FeatureAlphaDropout", inplace)
    a, b, d = _alpha_constants(p)
    return _grouped(input, p, training, inplace, generator, x.shape[:2], a, b, d, a, "FeatureAlphaDropoutBackward")


def gaussian_dropout(input, p: float = 0.5, training: bool = True, generator=None):
    """Multiply by noise ~ N(1, p/(1-p)) (Srivastava et al. 2014, §10): the Gaussian
    version of dropout, with the same mean and variance as the Bernoulli mask."""
    p = _check_p(p)
    if p == 1.0:
        raise ValueError("gaussian_dropout needs p < 1 (the noise variance p/(1-p) is infinite at p = 1)")
    _array_of(input)
    if not training or p == 0.0:
        return input
    sigma = math.sqrt(p / (1.0 - p))
    x = _array_of(input)

    def fwd(arr, seed, off):
        return _core.gaussian_map(arr, sigma, True, seed, off)

    return _random_op(input, _resolve(generator), 2 * x.size, fwd, fwd, "GaussianDropoutBackward")


def gaussian_noise(input, stddev: float, training: bool = True, generator=None):
    """Add N(0, stddev^2) noise while training (identity in eval)."""
    stddev = float(stddev)
    if not math.isfinite(stddev) or stddev < 0:
        raise ValueError(f"stddev must be finite and non-negative, but got {stddev}")
    x = _array_of(input)
    if not training or stddev == 0.0:
        return input
    return _random_op(
        input, _resolve(generator), 2 * x.size, lambda arr, seed, off: _core.gaussian_map(arr, stddev, False, seed, off), None,
        "GaussianNoiseBackward",
    )


def drop_block2d(input, p: float, block_size: int, inplace: bool = False, training: bool = True, generator=None):
    """DropBlock (Ghiasi et al. 2018) on (N, C, H, W): square blocks of side
    ``block_size`` dropped so that about ``p`` of the units are; the rest are scaled by
    numel / kept."""
    p = _check_p(p, "drop probability")
    x = _array_of(input)
    if x.ndim != 4:
        raise ValueError(f"drop_block2d expects (N, C, H, W) input, but got shape {x.shape}")
    if not isinstance(block_size, (int, np.integer)) or not 1 <= block_size <= min(x.shape[2:]):
        raise ValueError(f"block_size must be an int between 1 and {min(x.shape[2:])}, but got {block_size}")
    if not training or p == 0.0:
        return input

    def fwd(arr, seed, off):
        return _core.drop_block2d(arr, p, int(block_size), seed, off)

    return _random_op(input, _resolve(generator), x.size, fwd, fwd, "DropBlock2dBackward", inplace)


def drop_path(x, p: float = 0.0, training: bool = False, scale_by_keep: bool = True, generator=None):
    """Stochastic depth (Huang et al. 2016): drop whole samples (dim 0) with probability
    ``p``, one word per sample; survivors scaled by 1/(1-p) if ``scale_by_keep``."""
    p = _check_p(p, "drop_path probability")
    arr = _array_of(x)
    if arr.ndim < 1:
        raise ValueError("drop_path needs at least 1-D input (samples on dim 0)")
    if not training or p == 0.0:
        return x
    s = (1.0 / (1.0 - p) if p < 1.0 else 0.0) if scale_by_keep else 1.0
    return _grouped(x, p, training, False, generator, arr.shape[:1], s, 0.0, 0.0, s, "DropPathBackward")


def dropconnect_linear(input, weight, bias=None, p: float = 0.5, training: bool = True, per_sample: bool = False,
                       generator=None):
    """DropConnect (Wan et al. 2013): ``input @ (M * W).T * 1/(1-p) + bias`` with a
    Bernoulli mask ``M`` on the weights (half-word ``o * in + i``). ``per_sample=True`` gives
    every example its own mask (half-words ``b * out * in + o * in + i``), generated inside
    the kernel without materialising ``B`` weight matrices. Eval: the plain layer."""
    from ._ops_linalg import linear
    from .tensor import _make_op

    p = _check_p(p, "dropconnect probability")
    if not training or p == 0.0:
        return linear(input, weight, bias)
    x, w = input._data, weight._data
    if x.ndim != 2 or w.ndim != 2 or x.shape[1] != w.shape[1]:
        raise ValueError(f"dropconnect_linear expects input (B, in) and weight (out, in), but got {x.shape} and {w.shape}")
    gen = _resolve(generator)
    parents = (input, weight) if bias is None else (input, weight, bias)
    if not per_sample:
        seed, offset = gen.take(_element_words(w.size))
        wm = _apply(w, p, seed, offset, True, False)
        out = x @ wm.T
        if bias is not None:
            out += bias._data

        def backward(g):
            gx = g @ _apply(w, p, seed, offset, True, False) if input.requires_grad else None
            gw = _apply(np.ascontiguousarray(g.T @ x), p, seed, offset, True, False) if weight.requires_grad else None
            return (gx, gw) if bias is None else (gx, gw, g.sum(0))

        return _make_op(out, parents, backward, "DropConnectBackward")
    seed, offset = gen.take(_element_words(x.shape[0] * w.size))
    xc, wc = _contiguous(x), _contiguous(w)
    out = _core.dropconnect_forward(xc, wc, None if bias is None else _contiguous(bias._data), p, seed, offset)

    def backward_per_sample(g):
        gx, gw = _core.dropconnect_backward(_contiguous(g), xc, wc, p, seed, offset)
        return (gx, gw) if bias is None else (gx, gw, g.sum(0))

    return _make_op(out, parents, backward_per_sample, "DropConnectPerSampleBackward")


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
