"""Containers: ``Sequential``, ``ModuleList`` and ``ModuleDict``, as in ``torch.nn``.

Children are registered under their index (or key), so parameters, ``state_dict``
keys (``"0.weight"``, ``"layers.2.bias"``, ``"heads.cls.weight"``) and ``repr`` match
PyTorch's.
"""

from __future__ import annotations

import operator
import threading
import weakref
from collections import OrderedDict
from typing import Any, Iterable, Iterator, Mapping

import numpy as np

from .. import _grad_mode as GM
from ..tensor import Tensor
from .module import Module

__all__ = ["Sequential", "ModuleList", "ModuleDict"]


def _check_module(module: Any, container: str) -> None:
    if module is not None and not isinstance(module, Module):
        raise TypeError(f"{container} only accepts dropcore.nn.Module, but got {type(module).__name__}")


class _ModuleSequence(Module):
    """What Sequential and ModuleList share: children kept in order and indexed by position
    (negative indices count from the end); deleting or inserting renumbers them 0..n-1."""

    def _index(self, idx: int) -> int:
        idx = operator.index(idx)
        n = len(self)
        if not -n <= idx < n:
            raise IndexError(f"index {idx} is out of range")
        return idx % n

    def _renumber(self, items: list) -> None:
        self._modules.clear()
        for i, m in enumerate(items):
            self._modules[str(i)] = m

    def _slice(self, idx: slice):
        raise NotImplementedError

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            return self._slice(idx)
        return list(self._modules.values())[self._index(idx)]

    def __setitem__(self, idx: int, module: Module) -> None:
        _check_module(module, type(self).__name__)
        self._modules[list(self._modules)[self._index(idx)]] = module

    def __delitem__(self, idx) -> None:
        items = list(self._modules.values())
        if isinstance(idx, slice):
            del items[idx]
        else:
            del items[self._index(idx)]
        self._renumber(items)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def append(self, module: Module):
        _check_module(module, type(self).__name__)
        self.add_module(str(len(self)), module)
        return self

    def _insert(self, index: int, module: Module) -> None:
        _check_module(module, type(self).__name__)
        items = list(self._modules.values())
        items.insert(index, module)
        self._renumber(items)


_TYPES: tuple = ()


def _types() -> tuple:
    """``(Linear, ReLU, Dropout, _linear_relu, _check_p)``, imported on first use (their
    modules import this one)."""
    global _TYPES
    if not _TYPES:
        from .._ops_linalg import _linear_relu
        from ..dropout import _check_p
        from .activation import ReLU
        from .dropout import Dropout
        from .linear import Linear

        _TYPES = (Linear, ReLU, Dropout, _linear_relu, _check_p)
    return _TYPES


def _plain(m: Module) -> bool:
    """A module called as its class defines it: no forward hooks, no instance ``forward``
    (``dropcore.mc`` wraps stochastic modules that way)."""
    d = m.__dict__
    return not d.get("_forward_pre_hooks") and not d.get("_forward_hooks") and "forward" not in d


def _fused_run(mods: list, i: int, input: Tensor, out=None):
    """``(output, next index)`` for the run ``Linear, ReLU`` or ``Linear, ReLU, Dropout``
    starting at ``mods[i]``, fused into one node (:func:`dropcore._ops_linalg._linear_relu`),
    or None to run the modules one by one.

    Fused only where nothing can tell the difference: the exact classes (a subclass may
    override ``forward``), no hooks; the Dropout only while training with ``p > 0`` and
    when a ``Linear`` follows it (that Linear saves the Dropout's output for its own
    backward, as the fused node does, so an in-place change of it fails the same way
    fused or not). The values, the gradients and the words drawn are the unfused ones.
    """
    linear_t, relu_t, dropout_t, _linear_relu, _check_p = _types()
    lin, act = mods[i], mods[i + 1]
    if type(act) is not relu_t or not _plain(lin) or not _plain(act):
        return None
    k, n = i + 2, len(mods)
    if k + 1 < n and type(mods[k]) is dropout_t and type(mods[k + 1]) is linear_t and mods[k].training \
            and _plain(mods[k]):
        d = mods[k]
        p = _check_p(d.p)
        if p > 0.0:
            if out is not None and not _plain(mods[k + 1]):
                out = None
            y = _linear_relu(input, lin.weight, lin.bias, p, d.generator, d.inverted, out)
            return None if y is None else (y, k + 1)
    if k < n and type(mods[k]) is dropout_t and _plain(mods[k]) and (
            _check_p(mods[k].p) == 0.0 or (not mods[k].training and mods[k].inverted)):
        k += 1  # an identity Dropout (eval, or p == 0) would hand back this very tensor
    if out is not None and not (k < n and type(mods[k]) is linear_t and _plain(mods[k])):
        out = None  # only a plain Linear next may read a pooled output
    y = _linear_relu(input, lin.weight, lin.bias, out=out)
    return None if y is None else (y, k)


# Inference (grad mode off) writes the GEMM output of a fused run that a Linear consumes
# next into one of two buffers kept per Sequential (alternating, so a run never writes
# its own input), instead of a fresh array each call: a fresh block of this size is
# mmapped by glibc and faulted in page by page (the d2l MLP at batch 8192: two 8 MiB
# outputs, ~1000 page faults per call). Nothing else can see such an output: no node
# records it with grad mode off, the next module is a plain Linear that only reads it,
# and the Sequential's own result is always a new array. One forward at a time uses the
# buffers (a non-blocking lock: a concurrent forward allocates as before); buffers
# over ``_POOL_MAX_BYTES`` are not kept.
_POOLS: "weakref.WeakKeyDictionary[Module, list]" = weakref.WeakKeyDictionary()
_POOL_LOCK = threading.Lock()
_POOL_MAX_BYTES = 1 << 25


def _pool_buffer(pool: list, slot: int, shape: tuple, dtype) -> Any:
    buf = pool[slot]
    if buf is None or buf.shape != shape or buf.dtype != dtype:
        if int(np.prod(shape)) * dtype.itemsize > _POOL_MAX_BYTES:
            return None
        buf = pool[slot] = np.empty(shape, dtype)
    return buf


def _run(mods: list, input: Any, pool: list | None) -> Any:
    n, i, slot = len(mods), 0, 0
    linear_t = _types()[0]
    while i < n:
        m = mods[i]
        if i + 1 < n and type(m) is linear_t and isinstance(input, Tensor):
            out = None
            if pool is not None:
                w, x = m.weight._data, input._data
                if x.ndim >= 1 and x.dtype == w.dtype and w.ndim == 2:
                    out = _pool_buffer(pool, slot, (int(np.prod(x.shape[:-1])), w.shape[0]), x.dtype)
            fused = _fused_run(mods, i, input, out)
            if fused is not None:
                input, i = fused
                slot ^= out is not None
                continue
        input = m(input)
        i += 1
    return input


class Sequential(_ModuleSequence):
    """Modules applied in order: ``Sequential(Linear(784, 256), ReLU(), ...)`` or
    ``Sequential(OrderedDict([("fc", Linear(4, 2)), ...]))``.

    Examples:
        >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
        >>> net[0], net[-1], net[1:]        # layers, or a Sequential of a slice
    """

    def __init__(self, *args: Any) -> None:
        super().__init__()
        if len(args) == 1 and isinstance(args[0], OrderedDict):
            for name, m in args[0].items():
                _check_module(m, "Sequential")
                self.add_module(name, m)
        else:
            for m in args:
                self.append(m)

    def forward(self, input: Any) -> Any:
        """Each module in turn; runs of ``Linear, ReLU`` (and ``Linear, ReLU, Dropout``
        followed by a ``Linear``) run fused (see :func:`_fused_run`): same values, same
        gradients, same random words, fewer passes."""
        mods = list(self._modules.values())
        if not GM._state.enabled and len(mods) > 2 and _POOL_LOCK.acquire(blocking=False):
            try:
                return _run(mods, input, _POOLS.setdefault(self, [None, None]))
            finally:
                _POOL_LOCK.release()
        return _run(mods, input, None)

    def _slice(self, idx: slice) -> "Sequential":
        return type(self)(OrderedDict(list(self._modules.items())[idx]))

    def extend(self, modules: Iterable[Module]) -> "Sequential":
        for m in modules:
            self.append(m)
        return self

    def insert(self, index: int, module: Module) -> "Sequential":
        n = len(self)
        if not -n <= index <= n:
            raise IndexError(f"Index out of range: {index}")
        self._insert(index + n if index < 0 else index, module)
        return self


class ModuleList(_ModuleSequence):
    """A list of modules, registered so their parameters are visible to the parent.

    Examples:
        >>> blocks = nn.ModuleList([nn.Linear(8, 8) for _ in range(3)])
        >>> for block in blocks: x = block(x)
    """

    def __init__(self, modules: Iterable[Module] | None = None) -> None:
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def _slice(self, idx: slice) -> "ModuleList":
        return type(self)(list(self._modules.values())[idx])

    def __iadd__(self, modules: Iterable[Module]) -> "ModuleList":
        return self.extend(modules)

    def __add__(self, other: Iterable[Module]) -> "ModuleList":
        return ModuleList([*self, *other])

    def extend(self, modules: Iterable[Module]) -> "ModuleList":
        if isinstance(modules, Module) and not isinstance(modules, _ModuleSequence):
            raise TypeError("ModuleList.extend should be called with an iterable, but got " + type(modules).__name__)
        for m in modules:
            self.append(m)
        return self

    def insert(self, index: int, module: Module) -> None:
        self._insert(index, module)

    def pop(self, index: int = -1) -> Module:
        m = self[index]
        del self[index]
        return m

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("ModuleList has no forward(): iterate over it and call its modules")


class ModuleDict(Module):
    """An ordered dict of modules (insertion order), registered under their keys.

    Examples:
        >>> heads = nn.ModuleDict({"cls": nn.Linear(8, 10), "box": nn.Linear(8, 4)})
        >>> heads["cls"](x)
    """

    def __init__(self, modules: Mapping[str, Module] | Iterable[tuple[str, Module]] | None = None) -> None:
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key: str) -> Module:
        return self._modules[key]

    def __setitem__(self, key: str, module: Module) -> None:
        _check_module(module, "ModuleDict")
        if not isinstance(key, str):
            raise TypeError(f"module name should be a string. Got {type(key).__name__}")
        self.add_module(key, module)

    def __delitem__(self, key: str) -> None:
        del self._modules[key]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[str]:
        return iter(self._modules)

    def __contains__(self, key: object) -> bool:
        return key in self._modules

    def clear(self) -> None:
        self._modules.clear()

    def pop(self, key: str) -> Module:
        m = self[key]
        del self[key]
        return m

    def keys(self):
        return self._modules.keys()

    def items(self):
        return self._modules.items()

    def values(self):
        return self._modules.values()

    def update(self, modules) -> None:
        if isinstance(modules, Module) and not isinstance(modules, ModuleDict):
            raise TypeError("ModuleDict.update should be called with an iterable of key/value pairs, but got "
                            + type(modules).__name__)
        pairs = modules.items() if isinstance(modules, (Mapping, ModuleDict)) else modules
        for j, pair in enumerate(pairs):
            if len(pair) != 2:
                raise ValueError(f"ModuleDict update sequence element #{j} has length {len(pair)}; 2 is required")
            self[pair[0]] = pair[1]

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("ModuleDict has no forward(): index it and call its modules")
