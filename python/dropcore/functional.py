"""Functional forms of dropcore's layers (``dropcore.nn.functional``), PyTorch's names.

Each takes Tensors (recording the graph) and returns a Tensor; the dropout family
also takes plain NumPy arrays. Fused ops (``linear``, ``batch_norm``, ``cross_entropy``)
record one node with a hand-written backward instead of a chain of small ones.
"""

from __future__ import annotations

import numpy as np

from .dropout import *  # noqa: F401,F403  (the dropout family)
from .dropout import __all__ as _dropout_all
from .losses import *  # noqa: F401,F403  (losses live in losses.py)
from .losses import __all__ as _losses_all
from ._ops_linalg import linear
from .tensor import Tensor, _as_array, _make_op, cat

__all__ = [
    "relu",
    "leaky_relu",
    "crelu",
    "sigmoid",
    "tanh",
    "softmax",
    "log_softmax",
    "linear",
    "batch_norm",
    *_losses_all,
    *_dropout_all,
]


def relu(input: Tensor, inplace: bool = False) -> Tensor:
    """``max(input, 0)``; ``inplace=True`` writes into ``input`` (recorded like any in-place op)."""
    return input.relu_() if inplace else input.relu()


def leaky_relu(input: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    """``input`` where positive, ``negative_slope * input`` elsewhere."""
    if inplace:
        return input._inplace_from(lambda s: leaky_relu(s, negative_slope))
    a = input._data
    slope = a.dtype.type(negative_slope)
    pos = a > 0
    return _make_op(np.where(pos, a, a * slope), (input,), lambda g: (np.where(pos, g, g * slope),), "LeakyReluBackward0",
                    saved=())


def crelu(input: Tensor, dim: int = 1) -> Tensor:
    """Concatenated ReLU (Shang et al. 2016): ``cat([relu(x), relu(-x)], dim)``."""
    return cat([input.relu(), (-input).relu()], dim)


def sigmoid(input: Tensor) -> Tensor:
    return input.sigmoid()


def tanh(input: Tensor) -> Tensor:
    return input.tanh()


def softmax(input: Tensor, dim: int = -1) -> Tensor:
    return input.softmax(dim)


def log_softmax(input: Tensor, dim: int = -1) -> Tensor:
    return input.log_softmax(dim)


def batch_norm(
    input: Tensor,
    running_mean: np.ndarray | None,
    running_var: np.ndarray | None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Batch normalisation (Ioffe & Szegedy 2015) over dim 1 of (N, C) or (N, C, L).

    In training the batch statistics normalise (biased variance) and the running ones
    are updated in place with PyTorch's rule (``(1-momentum) * old + momentum * new``,
    unbiased variance); otherwise the running statistics normalise.
    """
    x = input._data
    if x.ndim not in (2, 3):
        raise ValueError(f"expected 2D or 3D input (got {x.ndim}D input)")
    others = [t._data if isinstance(t, Tensor) else t for t in (running_mean, running_var, weight, bias)]
    if any(o is not None and o.dtype != x.dtype for o in others):
        raise RuntimeError("mixed dtype (CPU): all inputs must share same datatype.")
    axes = (0,) if x.ndim == 2 else (0, 2)
    shape = (1, -1) if x.ndim == 2 else (1, -1, 1)
    m = x.size // x.shape[1]
    if training:
        if m <= 1:
            raise ValueError(f"Expected more than 1 value per channel when training, got input size {x.shape}")
        mean = x.mean(axis=axes)
        var = x.var(axis=axes)
        if running_mean is not None:
            running_mean *= 1 - momentum
            running_mean += momentum * mean
        if running_var is not None:
            running_var *= 1 - momentum
            running_var += momentum * var * (m / (m - 1))
    else:
        mean, var = running_mean, running_var
    inv_std = (1.0 / np.sqrt(var + eps)).astype(x.dtype)
    xhat = (x - mean.astype(x.dtype).reshape(shape)) * inv_std.reshape(shape)
    gamma = weight._data.reshape(shape) if weight is not None else None
    out = xhat * gamma if gamma is not None else xhat.copy()
    if bias is not None:
        out += bias._data.reshape(shape)
    parents = tuple(t for t in (input, weight, bias) if t is not None)

    def backward(g):
        dxhat = g * gamma if gamma is not None else g
        if training:
            # d/dx of (x - mean) / std with the batch statistics depending on x.
            s1 = dxhat.sum(axis=axes, keepdims=True)
            s2 = (dxhat * xhat).sum(axis=axes, keepdims=True)
            gx = inv_std.reshape(shape) / m * (m * dxhat - s1 - xhat * s2)
        else:
            gx = dxhat * inv_std.reshape(shape)
        grads = [gx.astype(x.dtype, copy=False)]
        if weight is not None:
            grads.append((g * xhat).sum(axis=axes))
        if bias is not None:
            grads.append(g.sum(axis=axes))
        return tuple(grads)

    return _make_op(out, parents, backward, "NativeBatchNormBackward0")
