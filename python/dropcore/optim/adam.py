"""Adam and AdamW (Kingma & Ba 2015; Loshchilov & Hutter 2019), as ``torch.optim``."""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from .optimizer import Optimizer, _check_non_negative, _state_tensor, _step_tensor

__all__ = ["Adam", "AdamW"]


class Adam(Optimizer):
    r"""Adam with PyTorch's bias corrections.

    Per parameter, at step ``t``: ``g = grad (+ weight_decay * p)``;
    ``m = lerp(m, g, 1 - beta1)``; ``v = beta2 v + (1 - beta2) g^2``;
    ``denom = sqrt(v) / sqrt(1 - beta2^t) + eps`` (``v`` replaced by its running max with
    ``amsgrad``); ``p -= lr / (1 - beta1^t) * m / denom``. With
    ``decoupled_weight_decay=True`` (AdamW) the decay is ``p *= 1 - lr * weight_decay`` instead.

    Args:
        params: parameters or parameter groups.
        lr: learning rate. Default: 1e-3.
        betas: coefficients of the running averages of the gradient and its square. Default: (0.9, 0.999).
        eps: added to the denominator. Default: 1e-8.
        weight_decay: L2 penalty (decoupled for AdamW). Default: 0.
        amsgrad: use the AMSGrad variant (Reddi et al. 2018). Default: False.
        maximize: ascend instead of descend. Default: False.
        foreach: accepted for compatibility and ignored.
        decoupled_weight_decay: AdamW's decay. Default: False.
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False, *, foreach: bool | None = None,
                 maximize: bool = False, decoupled_weight_decay: bool = False) -> None:
        _check_non_negative("learning rate", lr)
        _check_non_negative("epsilon value", eps)
        if not 0.0 <= betas[0] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 0: {betas[0]}")
        if not 0.0 <= betas[1] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 1: {betas[1]}")
        _check_non_negative("weight_decay value", weight_decay)
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                                      maximize=maximize, foreach=foreach,
                                      decoupled_weight_decay=decoupled_weight_decay))

    def step(self, closure: Callable[[], Any] | None = None):
        """One Adam update of every parameter that has a gradient."""
        loss = self._closure_loss(closure)
        for group, p, g, state in self._params_with_grad():
            dt = p._data.dtype.type
            lr, (b1, b2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
            if not state:
                state["step"] = _step_tensor()
                state["exp_avg"] = _state_tensor(p._data)
                state["exp_avg_sq"] = _state_tensor(p._data)
                if group["amsgrad"]:
                    state["max_exp_avg_sq"] = _state_tensor(p._data)
            state["step"]._data += 1
            t = float(state["step"]._data)
            if wd:
                if group["decoupled_weight_decay"]:
                    p._data *= dt(1 - lr * wd)
                else:
                    g = g + dt(wd) * p._data
            m, v = state["exp_avg"]._data, state["exp_avg_sq"]._data
            m += dt(1 - b1) * (g - m)  # lerp(m, g, 1 - beta1), PyTorch's form for weights < 0.5
            v *= dt(b2)
            v += dt(1 - b2) * g * g
            bc2_sqrt = math.sqrt(1 - b2**t)
            if group["amsgrad"]:
                vmax = state["max_exp_avg_sq"]._data
                np.maximum(vmax, v, out=vmax)
                denom = np.sqrt(vmax) / dt(bc2_sqrt) + dt(eps)
            else:
                denom = np.sqrt(v) / dt(bc2_sqrt) + dt(eps)
            p._data += dt(-lr / (1 - b1**t)) * (m / denom)
        return loss


class AdamW(Adam):
    """Adam with decoupled weight decay: ``p *= 1 - lr * weight_decay`` before the Adam step.

    Same arguments as :class:`Adam`, with ``weight_decay`` defaulting to 1e-2.
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False, *, foreach: bool | None = None,
                 maximize: bool = False) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, foreach=foreach, maximize=maximize,
                         decoupled_weight_decay=True)
