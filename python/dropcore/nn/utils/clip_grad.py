"""Gradient clipping with PyTorch's rules (``torch.nn.utils.clip_grad``)."""

from __future__ import annotations

import math
from typing import Iterable

import numpy as np

from ...tensor import Tensor

__all__ = ["clip_grad_norm_", "clip_grad_value_"]


def _grads(parameters: Tensor | Iterable[Tensor]) -> list[np.ndarray]:
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    return [p.grad._data for p in parameters if p.grad is not None]


def _vector_norm(a: np.ndarray, norm_type: float) -> np.ndarray:
    """The ``norm_type``-norm of all of ``a``'s elements, in ``a``'s dtype."""
    flat = a.reshape(-1)
    if norm_type == math.inf:
        return np.abs(flat).max(initial=0).astype(a.dtype)
    if norm_type == -math.inf:
        return np.abs(flat).min(initial=np.inf).astype(a.dtype)
    if norm_type == 0:
        return np.asarray(np.count_nonzero(flat), a.dtype)
    if norm_type == 2:
        return np.sqrt(np.dot(flat, flat)).astype(a.dtype)
    if norm_type == 1:
        return np.abs(flat).sum(dtype=a.dtype)
    return (np.abs(flat) ** norm_type).sum(dtype=a.dtype) ** (1.0 / norm_type)


def clip_grad_norm_(parameters: Tensor | Iterable[Tensor], max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False, foreach: bool | None = None) -> Tensor:
    """Scale the gradients so their joint norm is at most ``max_norm``; returns the norm before.

    As in PyTorch: the total norm is the ``norm_type``-norm of the per-parameter norms,
    ``coef = max_norm / (total + 1e-6)`` is clamped to 1, and every gradient is
    multiplied by it (also when it is 1), so clipping twice leaves gradients equal.

    Args:
        parameters: a Tensor or an iterable of Tensors (those without ``.grad`` are skipped).
        max_norm: the largest allowed norm.
        norm_type: p of the p-norm; ``float('inf')`` for the max norm. Default: 2.0.
        error_if_nonfinite: raise RuntimeError when the total norm is nan or inf
            (else the gradients are scaled by it anyway). Default: False.
        foreach: accepted for compatibility; ignored.

    Examples:
        >>> loss.backward()
        >>> total = nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
        >>> optimizer.step()
    """
    grads = _grads(parameters)
    norm_type = float(norm_type)
    if not grads:
        return Tensor(np.asarray(0.0, np.float32))
    norms = [_vector_norm(g, norm_type) for g in grads]
    dtype = np.result_type(*norms)
    total = _vector_norm(np.stack([n.astype(dtype) for n in norms]), norm_type)
    if error_if_nonfinite and not np.isfinite(total):
        raise RuntimeError(
            f"The total norm of order {norm_type} for gradients from `parameters` is non-finite, so it "
            "cannot be clipped. To disable this error and scale the gradients by the non-finite norm "
            "anyway, set `error_if_nonfinite=False`"
        )
    coef = np.minimum(dtype.type(max_norm) / (total + dtype.type(1e-6)), dtype.type(1.0))
    for g in grads:
        g *= coef.astype(g.dtype)
    return Tensor(np.asarray(total))


def clip_grad_value_(parameters: Tensor | Iterable[Tensor], clip_value: float, foreach: bool | None = None) -> None:
    """Clamp every gradient element into ``[-clip_value, clip_value]`` in place."""
    clip_value = float(clip_value)
    for g in _grads(parameters):
        np.clip(g, -clip_value, clip_value, out=g)
