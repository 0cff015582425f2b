"""``dropcore.autograd``: grad-mode switches and the legacy ``Variable``.

``Variable(t)`` is what PyTorch 0.4+ made it: the tensor itself (optionally marked
``requires_grad``), so pre-0.4 code such as ``x = Variable(x)`` runs unchanged.
"""

from __future__ import annotations

from typing import Any

from ._grad_mode import (  # noqa: F401
    enable_grad,
    inference_mode,
    is_grad_enabled,
    is_inference_mode_enabled,
    no_grad,
    set_grad_enabled,
)
from .tensor import Node, Tensor

__all__ = ["Variable", "Node", "no_grad", "enable_grad", "set_grad_enabled", "inference_mode", "is_grad_enabled"]


def Variable(data: Any, requires_grad: bool = False, volatile: bool = False) -> Tensor:  # noqa: N802
    """The tensor ``data`` itself (marked ``requires_grad`` if asked), as ``torch.autograd.Variable`` now is."""
    t = data if isinstance(data, Tensor) else Tensor(data)
    if requires_grad:
        t.requires_grad_(True)
    return t
