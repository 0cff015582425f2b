"""RMSprop (Hinton's lecture 6e; centred form from Graves 2013), as ``torch.optim.RMSprop``."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .optimizer import Optimizer, _check_non_negative, _state_tensor, _step_tensor

__all__ = ["RMSprop"]


class RMSprop(Optimizer):
    r"""RMSprop with PyTorch's update.

    Per parameter: ``g = grad (+ weight_decay * p)``; ``s = alpha s + (1 - alpha) g^2``;
    centred: ``a = lerp(a, g, 1 - alpha)`` and ``avg = sqrt(s - a^2) + eps``, else
    ``avg = sqrt(s) + eps``; with momentum ``b = momentum b + g / avg`` and
    ``p -= lr * b``, else ``p -= lr * g / avg``. Note ``eps`` is added outside the root.

    Args:
        params: parameters or parameter groups.
        lr: learning rate. Default: 1e-2.
        alpha: smoothing constant. Default: 0.99.
        eps: added to the denominator. Default: 1e-8.
        weight_decay: L2 penalty. Default: 0.
        momentum: momentum factor. Default: 0.
        centered: normalise by the estimated variance instead of the raw second moment. Default: False.
        maximize: ascend instead of descend. Default: False.
        foreach: accepted for compatibility and ignored.
    """

    def __init__(self, params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8, weight_decay: float = 0.0,
                 momentum: float = 0.0, centered: bool = False, foreach: bool | None = None,
                 maximize: bool = False) -> None:
        _check_non_negative("learning rate", lr)
        _check_non_negative("epsilon value", eps)
        _check_non_negative("momentum value", momentum)
        _check_non_negative("weight_decay value", weight_decay)
        _check_non_negative("alpha value", alpha)
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                                      centered=centered, maximize=maximize, foreach=foreach))

    def step(self, closure: Callable[[], Any] | None = None):
        """One RMSprop update of every parameter that has a gradient."""
        loss = self._closure_loss(closure)
        for group, p, g, state in self._params_with_grad():
            dt = p._data.dtype.type
            alpha, mu = group["alpha"], group["momentum"]
            if not state:
                state["step"] = _step_tensor()
                state["square_avg"] = _state_tensor(p._data)
                if mu > 0:
                    state["momentum_buffer"] = _state_tensor(p._data)
                if group["centered"]:
                    state["grad_avg"] = _state_tensor(p._data)
            state["step"]._data += 1
            if group["weight_decay"]:
                g = g + dt(group["weight_decay"]) * p._data
            s = state["square_avg"]._data
            s *= dt(alpha)
            s += dt(1 - alpha) * g * g
            if group["centered"]:
                a = state["grad_avg"]._data
                a += dt(1 - alpha) * (g - a)
                avg = np.sqrt(s - a * a) + dt(group["eps"])
            else:
                avg = np.sqrt(s) + dt(group["eps"])
            if mu > 0:
                buf = state["momentum_buffer"]._data
                buf *= dt(mu)
                buf += g / avg
                p._data += dt(-group["lr"]) * buf
            else:
                p._data += dt(-group["lr"]) * (g / avg)
        return loss
