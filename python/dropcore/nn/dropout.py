"""The dropout family as modules: each checks its arguments once and, in ``forward``,
calls its functional twin with ``self.training`` (PyTorch's ``_DropoutNd`` pattern).
"""

from __future__ import annotations

from .. import dropout as _F
from ..tensor import Tensor
from .module import Module

__all__ = ["Dropout"]


class _DropoutNd(Module):
    """Base of the dropout modules: validates ``p`` and gives the repr."""

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
