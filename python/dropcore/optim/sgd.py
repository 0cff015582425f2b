"""SGD with momentum, dampening, weight decay and Nesterov, as ``torch.optim.SGD``."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..tensor import Tensor
from .optimizer import Optimizer, _check_non_negative

__all__ = ["SGD"]


class SGD(Optimizer):
    r"""Stochastic gradient descent (optionally with momentum; Sutskever et al. 2013 for Nesterov).

    PyTorch's rule, per parameter: ``g = grad + weight_decay * p``; with momentum,
    ``b = g`` on the first step, else ``b = momentum * b + (1 - dampening) * g``, then
    ``g = g + momentum * b`` (Nesterov) or ``g = b``; finally ``p -= lr * g``
    (``maximize`` negates the gradient first).

    Args:
        params: parameters or parameter groups.
        lr: learning rate. Default: 1e-3.
        momentum: momentum factor. Default: 0.
        dampening: dampening for momentum. Default: 0.
        weight_decay: L2 penalty. Default: 0.
        nesterov: Nesterov momentum. Default: False.
        maximize: ascend instead of descend. Default: False.
        foreach: accepted for compatibility and ignored (each step is whole-array NumPy).

    Examples:
        >>> opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        >>> opt.zero_grad(); loss_fn(model(x), y).backward(); opt.step()
    """

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False, *, maximize: bool = False,
                 foreach: bool | None = None) -> None:
        _check_non_negative("learning rate", lr)
        _check_non_negative("momentum value", momentum)
        _check_non_negative("weight_decay value", weight_decay)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                                      nesterov=nesterov, maximize=maximize, foreach=foreach))

    def step(self, closure: Callable[[], Any] | None = None):
        """One update of every parameter that has a gradient; returns ``closure()``'s loss if given."""
        loss = self._closure_loss(closure)
        for group, p, g, state in self._params_with_grad():
            dt = p._data.dtype.type
            if group["weight_decay"]:
                g = g + dt(group["weight_decay"]) * p._data
            mu = group["momentum"]
            if mu:
                buf = state.get("momentum_buffer")
                if buf is None:
                    buf = state["momentum_buffer"] = Tensor(np.array(g, dtype=p._data.dtype, copy=True))
                else:
                    buf._data *= dt(mu)
                    buf._data += dt(1 - group["dampening"]) * g
                g = g + dt(mu) * buf._data if group["nesterov"] else buf._data
            p._data += dt(-group["lr"]) * g
        return loss
