"""Linear layers: ``Linear``, ``Maxout``, and the shape helpers ``Flatten`` / ``Identity``."""

from __future__ import annotations

import math

import numpy as np

from .. import functional as F
from .._device import check_device
from .._dtypes import np_dtype
from ..tensor import Tensor, get_default_dtype
from . import init
from .module import Module, Parameter

__all__ = ["Linear", "Maxout", "Flatten", "Identity"]


class Linear(Module):
    r"""``y = x W^T + b``.

    Args:
        in_features: size of each input sample.
        out_features: size of each output sample.
        bias: learn an additive bias. Default: ``True``.

    Shape:
        Input ``(*, in_features)``; output ``(*, out_features)``.

    Args ``device`` (``"cpu"`` only) and ``dtype`` (float32 or float64) are PyTorch's.
    Input and weight must share the dtype: a mismatch raises, in training and in eval.

    Weight ``(out_features, in_features)`` and bias start as in PyTorch:
    kaiming_uniform(a=sqrt(5)) and U(-1/sqrt(in_features), 1/sqrt(in_features)).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device=None, dtype=None) -> None:
        super().__init__()
        check_device(device)
        dtype = np_dtype(dtype) if dtype is not None else get_default_dtype()
        self.in_features = in_features
        self.out_features = out_features
        self.weight = Parameter(np.empty((out_features, in_features), dtype))
        if bias:
            self.bias = Parameter(np.empty(out_features, dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_features) if self.in_features > 0 else 0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input: Tensor) -> Tensor:
        return F.linear(input, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Maxout(Module):
    """Maxout units (Goodfellow et al. 2013): the max over ``pieces`` linear pieces.

    ``y[:, j] = max_k (x W_{j,k}^T + b_{j,k})``; weight ``(out_features * pieces, in_features)``
    with rows grouped by output unit.
    """

    def __init__(self, in_features: int, out_features: int, pieces: int, bias: bool = True) -> None:
        super().__init__()
        if pieces < 1:
            raise ValueError(f"pieces must be at least 1, but got {pieces}")
        self.in_features, self.out_features, self.pieces = in_features, out_features, pieces
        inner = Linear(in_features, out_features * pieces, bias)
        self.weight = inner.weight
        if bias:
            self.bias = inner.bias
        else:
            self.register_parameter("bias", None)

    def forward(self, input: Tensor) -> Tensor:
        z = F.linear(input, self.weight, self.bias)
        values, _ = z.reshape(*z.shape[:-1], self.out_features, self.pieces).max(dim=-1)
        return values

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, pieces={self.pieces}"


class Flatten(Module):
    """Flattens dims ``start_dim .. end_dim`` (default: all but the batch dim)."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, input: Tensor) -> Tensor:
        return input.flatten(self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Identity(Module):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__()

    def forward(self, input: Tensor) -> Tensor:
        return input
