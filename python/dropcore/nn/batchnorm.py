"""Batch normalisation (Ioffe & Szegedy 2015) for (N, C) and (N, C, L) inputs."""

from __future__ import annotations

import numpy as np

from .. import functional as F
from .._device import check_device
from .._dtypes import np_dtype
from ..tensor import Tensor, get_default_dtype
from .module import Module, Parameter

__all__ = ["BatchNorm1d"]


class BatchNorm1d(Module):
    r"""``y = (x - E[x]) / sqrt(Var[x] + eps) * gamma + beta`` per channel (dim 1).

    Args:
        num_features: C.
        eps: added to the variance for stability. Default: 1e-5.
        momentum: weight of the new batch in the running statistics. Default: 0.1.
        affine: learn gamma (``weight``) and beta (``bias``). Default: ``True``.
        track_running_stats: keep running mean/variance for eval mode. Default: ``True``.

    Shape:
        Input ``(N, C)`` or ``(N, C, L)``; output the same.

    Training normalises with the batch's (biased) variance and updates the running
    variance with the unbiased one, as PyTorch does; eval mode uses the running ones.
    The input must have the layer's dtype (float32 by default): a mismatch raises, in
    training and in eval, as in PyTorch.
    """

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        check_device(device)
        dtype = np_dtype(dtype) if dtype is not None else get_default_dtype()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        if affine:
            self.weight = Parameter(np.ones(num_features, dtype))
            self.bias = Parameter(np.zeros(num_features, dtype))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", np.zeros(num_features, dtype))
            self.register_buffer("running_var", np.ones(num_features, dtype))
            self.register_buffer("num_batches_tracked", np.zeros((), np.int64))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def forward(self, input: Tensor) -> Tensor:
        if input.ndim not in (2, 3):
            raise ValueError(f"expected 2D or 3D input (got {input.ndim}D input)")
        if input.shape[1] != self.num_features:
            raise ValueError(f"expected {self.num_features} channels in dim 1, but got input shape {input.shape}")
        use_batch = self.training or not self.track_running_stats
        if self.training and self.track_running_stats:
            self.num_batches_tracked[...] += 1
        return F.batch_norm(
            input,
            self.running_mean if (self.training or not use_batch) else None,
            self.running_var if (self.training or not use_batch) else None,
            self.weight,
            self.bias,
            use_batch,
            self.momentum,
            self.eps,
        )

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
            f"track_running_stats={self.track_running_stats}"
        )
