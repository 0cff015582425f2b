"""DropConnect (Wan et al., ICML 2013): a linear layer whose weights, not units, drop."""

from __future__ import annotations

import math

import numpy as np

from .. import dropout as _F
from ..tensor import Tensor, get_default_dtype
from . import init
from .module import Module, Parameter

__all__ = ["DropConnectLinear"]


class DropConnectLinear(Module):
    r"""``y = x (M * W)^T / (1-p) + b`` while training, with a Bernoulli mask ``M``.

    Args:
        in_features, out_features, bias: as for :class:`Linear` (same initialisation).
        p: probability of a weight to be dropped.
        per_sample: ``False`` shares one mask across the batch (one masked GEMM);
            ``True`` draws a mask per example inside the Rust kernel, never
            materialising the ``B`` masked matrices.
        generator: draw the masks from this :class:`dropcore.Generator`.

    Kept weights are scaled by ``1/(1-p)``, so eval mode is the plain linear layer
    (the paper's Gaussian moment matching at test time is not done here).
    """

    _mc_active = True

    def __init__(self, in_features: int, out_features: int, p: float = 0.5, bias: bool = True,
                 per_sample: bool = False, generator=None) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.p = _F._check_p(p, "dropconnect probability")
        self.per_sample = per_sample
        self.generator = generator
        dtype = get_default_dtype()
        self.weight = Parameter(np.empty((out_features, in_features), dtype))
        if bias:
            self.bias = Parameter(np.empty(out_features, dtype))
        else:
            self.register_parameter("bias", None)
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(in_features) if in_features else 0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input: Tensor) -> Tensor:
        return _F.dropconnect_linear(input, self.weight, self.bias, self.p, self.training, self.per_sample, self.generator)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, p={self.p}, "
                f"bias={self.bias is not None}, per_sample={self.per_sample}")
