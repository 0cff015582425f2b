"""Adagrad (Duchi et al. 2011), as ``torch.optim.Adagrad``."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .optimizer import Optimizer, _check_non_negative, _state_tensor, _step_tensor

__all__ = ["Adagrad"]


class Adagrad(Optimizer):
    r"""Adagrad with PyTorch's learning-rate decay.

    Per parameter at step ``t``: ``g = grad (+ weight_decay * p)``;
    ``clr = lr / (1 + (t - 1) * lr_decay)``; ``s += g^2``; ``p -= clr * g / (sqrt(s) + eps)``.
    As in PyTorch the state (``sum`` = ``initial_accumulator_value``, ``step`` = 0) exists
    from construction, so ``state_dict()`` holds it before the first step.

    Args:
        params: parameters or parameter groups.
        lr: learning rate. Default: 1e-2.
        lr_decay: learning-rate decay. Default: 0.
        weight_decay: L2 penalty. Default: 0.
        initial_accumulator_value: starting value of the sum of squares. Default: 0.
        eps: added to the denominator. Default: 1e-10.
        foreach: accepted for compatibility and ignored.
        maximize: ascend instead of descend. Default: False.
    """

    def __init__(self, params, lr: float = 1e-2, lr_decay: float = 0.0, weight_decay: float = 0.0,
                 initial_accumulator_value: float = 0.0, eps: float = 1e-10, foreach: bool | None = None, *,
                 maximize: bool = False) -> None:
        _check_non_negative("learning rate", lr)
        _check_non_negative("lr_decay value", lr_decay)
        _check_non_negative("weight_decay value", weight_decay)
        _check_non_negative("initial_accumulator_value value", initial_accumulator_value)
        _check_non_negative("epsilon value", eps)
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value, foreach=foreach,
                                      maximize=maximize))

    def _init_group_state(self, group: dict[str, Any]) -> None:
        for p in group["params"]:
            state = self.state[p]
            if not state:
                state["step"] = _step_tensor()
                state["sum"] = _state_tensor(p._data, group["initial_accumulator_value"])

    def step(self, closure: Callable[[], Any] | None = None):
        """One Adagrad update of every parameter that has a gradient."""
        loss = self._closure_loss(closure)
        for group, p, g, state in self._params_with_grad():
            dt = p._data.dtype.type
            if not state:
                self._init_group_state({**group, "params": [p]})
            state["step"]._data += 1
            t = float(state["step"]._data)
            if group["weight_decay"]:
                g = g + dt(group["weight_decay"]) * p._data
            clr = group["lr"] / (1 + (t - 1) * group["lr_decay"])
            s = state["sum"]._data
            s += g * g
            p._data += dt(-clr) * (g / (np.sqrt(s) + dt(group["eps"])))
        return loss
