"""The dropout family as modules: each checks its arguments once and, in ``forward``,
calls its functional twin with ``self.training`` (PyTorch's ``_DropoutNd`` pattern).
"""

from __future__ import annotations

from .. import dropout as _F
from ..tensor import Tensor
from .module import Module

__all__ = ["Dropout"]


class _DropoutNd(Module):
    """Base of the dropout modules: validates ``p`` (a real number in [0, 1]: a str or
    a bool is a TypeError, as the functional forms check it) and gives the repr."""

    _mc_active = True  # stays stochastic under MC-dropout prediction

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__()
        self.p = _F._check_p(p)
        self.inplace = inplace

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


class Dropout(_DropoutNd):
    r"""Zeroes each element with probability ``p`` while training (Srivastava et al., JMLR 2014).

    Args:
        p: probability of an element to be zeroed. Default: 0.5.
        inplace: do the operation in place. Default: ``False``.
        inverted: scale kept elements by ``1/(1-p)`` in training, identity in eval (the
            usual rule). ``False`` gives the original rule: no scaling in training,
            outputs multiplied by ``1-p`` in eval.
        generator: draw the masks from this :class:`dropcore.Generator`.

    Shape:
        Any; output has the input's shape.

    Example:
        >>> m = dropcore.nn.Dropout(p=0.2)
        >>> y = m(dropcore.randn(20, 16))
    """

    def __init__(self, p: float = 0.5, inplace: bool = False, inverted: bool = True, generator=None) -> None:
        super().__init__(p, inplace)
        self.inverted = inverted
        self.generator = generator

    def forward(self, input: Tensor) -> Tensor:
        return _F.dropout(input, self.p, self.training, self.inplace, self.generator, self.inverted)

    def extra_repr(self) -> str:
        return super().extra_repr() + ("" if self.inverted else ", inverted=False")


class _ChannelDropout(_DropoutNd):
    _fn = None

    def __init__(self, p: float = 0.5, inplace: bool = False, generator=None) -> None:
        super().__init__(p, inplace)
        self.generator = generator

    def forward(self, input: Tensor) -> Tensor:
        return type(self)._fn(input, self.p, self.training, self.inplace, self.generator)


class Dropout1d(_ChannelDropout):
    """Zero whole channels of (N, C, L) / (C, L) input with probability ``p`` (one word
    per (sample, channel)); survivors scaled by 1/(1-p).

    Shape:
        (N, C, L) or (C, L); other ranks raise RuntimeError (PyTorch's message).
    """

    _fn = staticmethod(_F.dropout1d)


class Dropout2d(_ChannelDropout):
    """SpatialDropout (Tompson et al. 2015): zero whole channels of (N, C, H, W) input;
    correlated neighbours make element dropout ineffective there.

    Shape:
        (N, C, H, W). As in PyTorch 2.x, (N, C, L) input gets channel-wise 1-D dropout
        with PyTorch's warning (it is *not* read as unbatched (C, H, W)); other ranks
        warn that they are deprecated and drop dims (0, 1) as a unit.
    """

    _fn = staticmethod(_F.dropout2d)


class Dropout3d(_ChannelDropout):
    """Zero whole channels of (N, C, D, H, W) / (C, D, H, W) input.

    Shape:
        (N, C, D, H, W) or (C, D, H, W); other ranks warn as in PyTorch 2.x and are read
        as unbatched (dim 0 is the channel).
    """

    _fn = staticmethod(_F.dropout3d)


class AlphaDropout(_ChannelDropout):
    """Alpha dropout for SELU networks (Klambauer et al. 2017): keeps mean 0 and
    variance 1 of standardised inputs by setting dropped units to SELU's saturation
    value and applying PyTorch's affine correction."""

    _fn = staticmethod(_F.alpha_dropout)


class FeatureAlphaDropout(_ChannelDropout):
    """Alpha dropout of whole channels."""

    _fn = staticmethod(_F.feature_alpha_dropout)


class GaussianDropout(_DropoutNd):
    """Multiplicative Gaussian noise N(1, p/(1-p)) while training (Srivastava et al.
    2014, §10); identity in eval. Same mean and variance as Bernoulli dropout's mask."""

    def __init__(self, p: float = 0.5, generator=None) -> None:
        super().__init__(p, False)
        if self.p == 1.0:
            raise ValueError("GaussianDropout needs p < 1")
        self.generator = generator

    def forward(self, input: Tensor) -> Tensor:
        return _F.gaussian_dropout(input, self.p, self.training, self.generator)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class GaussianNoise(Module):
    """Additive N(0, stddev^2) noise while training; identity in eval."""

    _mc_active = True

    def __init__(self, stddev: float, generator=None) -> None:
        super().__init__()
        self.stddev = _F._check_real(stddev, "stddev")
        self.generator = generator

    def forward(self, input: Tensor) -> Tensor:
        return _F.gaussian_noise(input, self.stddev, self.training, self.generator)

    def extra_repr(self) -> str:
        return f"stddev={self.stddev}"


class DropBlock2d(_DropoutNd):
    """DropBlock (Ghiasi et al., NeurIPS 2018): drop square ``block_size`` regions of
    (N, C, H, W) feature maps so that about ``p`` of the units are dropped; the kept
    ones are rescaled by numel / kept."""

    def __init__(self, p: float, block_size: int, inplace: bool = False, generator=None) -> None:
        super().__init__(p, inplace)
        block_size = _F._check_int(block_size, "block_size")
        if block_size < 1:
            raise ValueError(f"block_size must be at least 1, but got {block_size}")
        self.block_size = block_size
        self.generator = generator

    def forward(self, input: Tensor) -> Tensor:
        return _F.drop_block2d(input, self.p, self.block_size, self.inplace, self.training, self.generator)

    def extra_repr(self) -> str:
        return f"p={self.p}, block_size={self.block_size}, inplace={self.inplace}"


class DropPath(_DropoutNd):
    """Stochastic depth (Huang et al. 2016): zero whole samples of a residual branch
    with probability ``p``; survivors scaled by 1/(1-p) if ``scale_by_keep``."""

    def __init__(self, p: float = 0.0, scale_by_keep: bool = True, generator=None) -> None:
        super().__init__(p, False)
        self.scale_by_keep = scale_by_keep
        self.generator = generator

    def forward(self, input: Tensor) -> Tensor:
        return _F.drop_path(input, self.p, self.training, self.scale_by_keep, self.generator)

    def extra_repr(self) -> str:
        return f"p={self.p}, scale_by_keep={self.scale_by_keep}"


__all__ += [
    "Dropout1d",
    "Dropout2d",
    "Dropout3d",
    "AlphaDropout",
    "FeatureAlphaDropout",
    "GaussianDropout",
    "GaussianNoise",
    "DropBlock2d",
    "DropPath",
]
