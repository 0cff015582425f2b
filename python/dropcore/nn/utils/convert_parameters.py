"""Flatten parameters into one vector and back (``torch.nn.utils.convert_parameters``)."""

from __future__ import annotations

from typing import Iterable

from ...tensor import Tensor, cat

__all__ = ["parameters_to_vector", "vector_to_parameters"]


def parameters_to_vector(parameters: Iterable[Tensor]) -> Tensor:
    """All parameters flattened and concatenated in order (a new Tensor, in the graph).

    Examples:
        >>> vec = nn.utils.parameters_to_vector(model.parameters())   # shape (n_params,)
    """
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    return cat([p.reshape(-1) for p in parameters])


def vector_to_parameters(vec: Tensor, parameters: Iterable[Tensor]) -> None:
    """Copy consecutive slices of ``vec`` into the parameters (the inverse of
    :func:`parameters_to_vector`). The values are copied into each parameter's existing
    array, so references to it (an optimizer's) stay valid."""
    if not isinstance(vec, Tensor):
        raise TypeError(f"expected dropcore.Tensor, but got: {type(vec).__name__}")
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    params = list(parameters)
    need = sum(p._data.size for p in params)
    if vec._data.size != need:
        raise RuntimeError(f"vector has {vec._data.size} elements but the parameters hold {need}")
    flat = vec._data.reshape(-1)
    start = 0
    for p in params:
        n = p._data.size
        p._data[...] = flat[start : start + n].reshape(p._data.shape).astype(p._data.dtype, copy=False)
        p._vbox[0] += 1  # an in-place write, as PyTorch counts it
        start += n
