"""``Optimizer``: parameter groups, per-parameter state and PyTorch's checkpoint layout.

``state_dict()`` is ``{"state": {param_id: {...}}, "param_groups": [{..., "params":
[param_id, ...]}]}`` with integer ids numbered across the groups in order, exactly as in
PyTorch, so a checkpoint saved with :func:`dropcore.save` round-trips through
:meth:`Optimizer.load_state_dict` into a fresh optimizer over the same model.
"""

from __future__ import annotations

import copy
import functools
import warnings
from collections import defaultdict
from itertools import chain
from typing import Any, Callable, Iterable

import numpy as np

from ..tensor import Tensor, _release_grad, enable_grad

__all__ = ["Optimizer", "required"]


class _RequiredParameter:
    """Marks a hyper-parameter without a default (every group must give it)."""

    def __repr__(self) -> str:
        return "<required parameter>"


required = _RequiredParameter()


def _check_non_negative(name: str, value: float) -> None:
    if not 0.0 <= value:
        raise ValueError(f"Invalid {name}: {value}")


class Optimizer:
    """Base class of the optimizers: holds ``param_groups`` (dicts with ``"params"`` and
    hyper-parameters) and ``state`` (a dict per parameter, keyed by the parameter).

    Args:
        params: an iterable of Tensors, of ``(name, Tensor)`` pairs, or of dicts
            defining parameter groups.
        defaults: the hyper-parameters a group gets when it does not set them.
    """

    def __init__(self, params: Iterable[Any], defaults: dict[str, Any]) -> None:
        self.defaults = defaults
        if isinstance(params, Tensor):
            raise TypeError(
                "params argument given to the optimizer should be an iterable of Tensors or dicts, "
                f"but got {type(params).__name__}"
            )
        if isinstance(params, set):
            warnings.warn(
                "optimizer parameters need to be organized in ordered collections, but the ordering of tensors "
                "in sets will change between runs. Please use a list instead. This will be an error in a future release.",
                FutureWarning,
                stacklevel=2,
            )
        self.state: defaultdict[Tensor, dict[str, Any]] = defaultdict(dict)
        self.param_groups: list[dict[str, Any]] = []
        groups = list(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # Record that step() ran, so a scheduler can warn when it is stepped first (as PyTorch).
        super().__init_subclass__(**kwargs)
        step = cls.__dict__.get("step")
        if step is not None:

            @functools.wraps(step)
            def tracked_step(self, *args: Any, **kw: Any):
                self._opt_called = True
                result = step(self, *args, **kw)
                _bump_versions(self)
                return result

            cls.step = tracked_step

    # -- groups
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group (e.g. layers unfrozen during fine-tuning) with its own hyper-parameters."""
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group).__name__}")
        group = dict(param_group)
        params = group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, set):
            raise TypeError(
                "optimizer parameters need to be organized in ordered collections, but the ordering of "
                "tensors in sets will change between runs. Please use a list instead."
            )
        tensors, names = [], []
        for p in params:
            if isinstance(p, tuple):
                names.append(p[0])
                p = p[1]
            tensors.append(p)
        if names and len(names) != len(tensors):
            raise ValueError("all optimizer params should be with/without names. Some param names are missing")
        group["params"] = tensors
        if names:
            group["param_names"] = names
        for p in tensors:
            if not isinstance(p, Tensor):
                raise TypeError(f"optimizer can only optimize Tensors, but one of the params is {type(p).__name__}")
            if not p.is_leaf:
                raise ValueError("can't optimize a non-leaf Tensor")
        for name, default in self.defaults.items():
            if default is required and name not in group:
                raise ValueError(f"parameter group didn't specify a value of required optimization parameter {name}")
            group.setdefault(name, default)
        if len({id(p) for p in tensors}) != len(tensors):
            warnings.warn(
                "optimizer contains a parameter group with duplicate parameters; in future, this will cause an "
                "error; see github.com/pytorch/pytorch/issues/40967 for more information",
                UserWarning,
                stacklevel=3,
            )
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        for g in self.param_groups:
            if ("param_names" in g) != ("param_names" in group):
                which = "with names" if "param_names" in group else "without names"
                raise ValueError(
                    f"all optimizer param groups should be with/without names. cannot add param group {which} to the optimizer"
                )
        if any(id(p) in seen for p in tensors):
            raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append(group)
        self._init_group_state(group)

    def _init_group_state(self, group: dict[str, Any]) -> None:
        """Optimizers whose state exists before the first step (Adagrad) fill it here."""

    # -- gradients
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the gradients: to None (the default, as PyTorch 2.x) or to zeros in place."""
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none:
                    _release_grad(p)  # p.grad = None; the array may serve the next backward
                elif p.grad is not None:
                    p.grad._data[...] = 0

    def _params_with_grad(self):
        """``(group, param, grad array, state)`` for each parameter that has a gradient."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    g = p.grad._data
                    yield group, p, (-g if group.get("maximize") else g), self.state[p]

    def step(self, closure: Callable[[], Any] | None = None):
        raise NotImplementedError

    @staticmethod
    def _closure_loss(closure: Callable[[], Any] | None):
        if closure is None:
            return None
        with enable_grad():
            return closure()

    # -- checkpoints
    def state_dict(self) -> dict[str, Any]:
        """``{"state", "param_groups"}`` with parameters replaced by integer ids (PyTorch's layout).

        The state's arrays are returned by reference, as in PyTorch: save or copy them
        before the next ``step()`` if you need a snapshot.
        """
        ids: dict[int, int] = {}
        start = 0
        groups = []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            for i, p in enumerate(group["params"], start):
                ids.setdefault(id(p), i)
            packed["params"] = [ids[id(p)] for p in group["params"]]
            start += len(packed["params"])
            groups.append(packed)
        state = {ids[id(k)] if isinstance(k, Tensor) else k: v for k, v in self.state.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore ``state`` and hyper-parameters saved by :meth:`state_dict`.

        Parameters are matched by position (group by group), as in PyTorch. Floating
        state (momentum buffers, moments) is copied and cast to its parameter's dtype;
        Tensors or NumPy arrays are both accepted.
        """
        groups = self.param_groups
        saved_groups = copy.deepcopy(state_dict["param_groups"])
        if len(groups) != len(saved_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        if any(len(g["params"]) != len(s["params"]) for g, s in zip(groups, saved_groups)):
            raise ValueError("loaded state dict contains a parameter group that doesn't match the size of optimizer's group")
        id_map = dict(zip(chain.from_iterable(g["params"] for g in saved_groups),
                          chain.from_iterable(g["params"] for g in groups)))

        def cast(param: Tensor, value: Any, key: Any = None) -> Any:
            if isinstance(value, (Tensor, np.ndarray)):
                arr = value._data if isinstance(value, Tensor) else value
                if key != "step" and param._data.dtype.kind == "f" and arr.dtype.kind == "f":
                    arr = arr.astype(param._data.dtype)
                else:
                    arr = np.array(arr, copy=True)
                return Tensor(arr)
            if isinstance(value, dict):
                return {k: cast(param, v, k) for k, v in value.items()}
            if isinstance(value, (list, tuple)):
                return type(value)(cast(param, v) for v in value)
            return value

        state: defaultdict[Any, dict[str, Any]] = defaultdict(dict)
        for k, v in state_dict["state"].items():
            if k in id_map:
                state[id_map[k]] = cast(id_map[k], v)
            else:
                state[k] = v
        for g, saved in zip(groups, saved_groups):
            saved["params"] = g["params"]
            if "param_names" in g and "param_names" not in saved:
                saved["param_names"] = g["param_names"]
            if isinstance(g.get("betas"), tuple) and isinstance(saved.get("betas"), list):
                saved["betas"] = tuple(saved["betas"])
        self.state = state
        self.param_groups = saved_groups

    # -- pickling: the state is keyed by the parameters themselves
    def __getstate__(self) -> dict[str, Any]:
        return {"defaults": self.defaults, "state": self.state, "param_groups": self.param_groups}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def __repr__(self) -> str:
        out = type(self).__name__ + " ("
        for i, group in enumerate(self.param_groups):
            out += f"\nParameter Group {i}\n"
            for key in sorted(group):
                if key != "params":
                    out += f"    {key}: {group[key]}\n"
        return out + ")"


def _bump_versions(opt: Optimizer) -> None:
    """An in-place update changes a tensor's version, as PyTorch's ``add_`` does, so a graph
    saved before ``step()`` refuses a second backward instead of using the new values."""
    for group in opt.param_groups:
        for p in group["params"]:
            if p.grad is not None:
                p._vbox[0] += 1


def _state_tensor(like: np.ndarray, fill: float = 0.0) -> Tensor:
    """A state buffer of ``like``'s shape and dtype."""
    return Tensor(np.full_like(like, fill))


def _step_tensor() -> Tensor:
    """PyTorch keeps the step count as a float32 scalar tensor; so does dropcore."""
    return Tensor(np.zeros((), np.float32))
