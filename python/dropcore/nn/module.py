"""``Module`` and ``Parameter``: PyTorch's module tree over dropcore Tensors.

Parameters are Tensors, buffers are NumPy arrays (e.g. BatchNorm's running statistics),
children are Modules; ``state_dict`` names them with PyTorch's dotted keys. A Module
pickles and deep-copies with everything it holds, including a ``dropcore.Generator``
(its ``(seed, offset)`` travels, so a copy draws the same masks as the original).
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from typing import Any, Callable, Iterator, NamedTuple

import numpy as np

from .._device import check_device, device
from ..tensor import Tensor, _release_grad

__all__ = ["Module", "Parameter", "RemovableHandle"]

_SUPPORTED_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_hook_ids = itertools.count()


def _unsupported_dtype(d: np.dtype) -> TypeError:
    return TypeError(
        f"dropcore does not support {d}: its kernels run in float32 and float64 only "
        "(use .float() or .double())"
    )


def _is_device(arg: Any) -> bool:
    if isinstance(arg, str):
        return arg.split(":")[0] in ("cpu", "cuda", "mps", "meta", "xpu")
    return isinstance(arg, device)


class RemovableHandle:
    """Returned by the hook registrations; ``handle.remove()`` unregisters the hook."""

    def __init__(self, hooks: dict, key: int) -> None:
        self._hooks, self.id = hooks, key

    def remove(self) -> None:
        self._hooks.pop(self.id, None)

    def __enter__(self) -> "RemovableHandle":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.remove()


class Parameter(Tensor):
    """A Tensor that a Module registers as a parameter (requires grad by default)."""

    __slots__ = ()

    def __init__(self, data: Any = None, requires_grad: bool = True) -> None:
        if data is None:
            data = np.zeros(0, np.float32)
        super().__init__(data._data if isinstance(data, Tensor) else data, requires_grad=requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


class _IncompatibleKeys(NamedTuple):
    missing_keys: list[str]
    unexpected_keys: list[str]

    def __repr__(self) -> str:
        if not self.missing_keys and not self.unexpected_keys:
            return "<All keys matched successfully>"  # PyTorch's wording
        return f"_IncompatibleKeys(missing_keys={self.missing_keys}, unexpected_keys={self.unexpected_keys})"


class Module:
    """Base class of every layer: parameters, buffers, children, train/eval mode.

    Subclasses set attributes in ``__init__`` (Parameters, Modules and, through
    :meth:`register_buffer`, arrays) and write ``forward``; calling the module runs it.
    """

    training: bool

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    # -- registration
    def __setattr__(self, name: str, value: Any) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError("cannot assign before Module.__init__() call")
        for d in (self._parameters, self._buffers, self._modules):
            d.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        elif name in self.__dict__.get("_buffer_names", ()):
            self._buffers[name] = value
        else:
            object.__setattr__(self, name, value)
            return
        self.__dict__.pop(name, None)

    def __getattr__(self, name: str) -> Any:
        d = self.__dict__
        for key in ("_parameters", "_buffers", "_modules"):
            if key in d and name in d[key]:
                return d[key][name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name: str) -> None:
        for d in (self._parameters, self._buffers, self._modules):
            if name in d:
                del d[name]
                return
        object.__delattr__(self, name)

    def register_buffer(self, name: str, tensor: np.ndarray | None, persistent: bool = True) -> None:
        """A non-parameter array (e.g. BatchNorm's running statistics).

        Args:
            name: attribute name of the buffer.
            tensor: an array (or Tensor, stored as its array), or None.
            persistent: whether ``state_dict`` includes it. Default: True.
        """
        if "_parameters" not in self.__dict__:
            raise AttributeError("cannot assign buffer before Module.__init__() call")
        if not isinstance(name, str):
            raise TypeError(f"buffer name should be a string. Got {type(name).__name__}")
        if "." in name:
            raise KeyError('buffer name can\'t contain "."')
        if name == "":
            raise KeyError('buffer name can\'t be empty string ""')
        if name in self._parameters or name in self._modules or (
            name in self.__dict__ and name not in self._buffers
        ):
            raise KeyError(f"attribute '{name}' already exists")
        if isinstance(tensor, Tensor):
            tensor = tensor._data
        names = self.__dict__.setdefault("_buffer_names", set())
        names.add(name)
        non_persistent = self.__dict__.setdefault("_non_persistent_buffers_set", set())
        if persistent:
            non_persistent.discard(name)
        else:
            non_persistent.add(name)
        self.__dict__.pop(name, None)
        self._buffers[name] = tensor

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        if param is None:
            self._parameters[name] = None
            self.__dict__.pop(name, None)
        else:
            setattr(self, name, param)

    def add_module(self, name: str, module: "Module | None") -> None:
        self._modules[name] = module

    # -- calling
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f'Module [{type(self).__name__}] is missing the required "forward" function')

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        pre = self.__dict__.get("_forward_pre_hooks")
        if pre:
            for hook in list(pre.values()):
                result = hook(self, args)
                if result is not None:
                    args = result if isinstance(result, tuple) else (result,)
        output = self.forward(*args, **kwargs)
        post = self.__dict__.get("_forward_hooks")
        if post:
            for hook in list(post.values()):
                result = hook(self, args, output)
                if result is not None:
                    output = result
        return output

    # -- hooks
    def _add_hook(self, kind: str, hook: Callable, prepend: bool) -> RemovableHandle:
        hooks = self.__dict__.setdefault(kind, {})
        key = next(_hook_ids)
        hooks[key] = hook
        if prepend:
            items = [(key, hooks.pop(key)), *hooks.items()]
            hooks.clear()
            hooks.update(items)
        return RemovableHandle(hooks, key)

    def register_forward_pre_hook(self, hook: Callable, *, prepend: bool = False) -> RemovableHandle:
        """``hook(module, args)`` runs before ``forward``; a non-None result replaces the args."""
        return self._add_hook("_forward_pre_hooks", hook, prepend)

    def register_forward_hook(self, hook: Callable, *, prepend: bool = False) -> RemovableHandle:
        """``hook(module, args, output)`` runs after ``forward``; a non-None result replaces the output.

        Examples:
            >>> h = model[0].register_forward_hook(lambda m, args, out: print(out.shape))
            >>> h.remove()
        """
        return self._add_hook("_forward_hooks", hook, prepend)

    # -- traversal
    def named_modules(self, memo: set | None = None, prefix: str = "",
                      remove_duplicate: bool = True) -> Iterator[tuple[str, "Module"]]:
        memo = set() if memo is None else memo
        if id(self) in memo:
            return
        if remove_duplicate:
            memo.add(id(self))
        yield prefix, self
        for name, m in self._modules.items():
            if m is not None:
                yield from m.named_modules(memo, f"{prefix}.{name}" if prefix else name, remove_duplicate)

    def get_submodule(self, target: str) -> "Module":
        """The descendant at a dotted path such as ``"encoder.0"`` (``""`` is ``self``)."""
        mod: Module = self
        for item in target.split(".") if target else []:
            if item not in mod._modules or mod._modules[item] is None:
                raise AttributeError(f"{type(mod).__name__} has no attribute `{item}`")
            mod = mod._modules[item]
        return mod

    def modules(self) -> Iterator["Module"]:
        for _, m in self.named_modules():
            yield m

    def named_children(self) -> Iterator[tuple[str, "Module"]]:
        for name, m in self._modules.items():
            if m is not None:
                yield name, m

    def children(self) -> Iterator["Module"]:
        for _, m in self.named_children():
            yield m

    def named_parameters(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple[str, Parameter]]:
        seen: set[int] = set()
        mods = self.named_modules(prefix=prefix) if recurse else [(prefix, self)]
        for mod_prefix, m in mods:
            for name, p in m._parameters.items():
                if p is None or id(p) in seen:
                    continue
                seen.add(id(p))
                yield (f"{mod_prefix}.{name}" if mod_prefix else name), p

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple[str, np.ndarray]]:
        mods = self.named_modules(prefix=prefix) if recurse else [(prefix, self)]
        for mod_prefix, m in mods:
            for name, b in m._buffers.items():
                if b is not None:
                    yield (f"{mod_prefix}.{name}" if mod_prefix else name), b

    def buffers(self, recurse: bool = True) -> Iterator[np.ndarray]:
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    # -- modes and gradients
    def train(self, mode: bool = True) -> "Module":
        """Set training mode on this module and every descendant; returns ``self``."""
        if not isinstance(mode, bool):
            raise ValueError("training mode is expected to be boolean")
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self) -> "Module":
        """Evaluation mode: ``train(False)``."""
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> "Module":
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.parameters():
            if set_to_none:
                _release_grad(p)  # p.grad = None; the array may serve the next backward
            elif p.grad is not None:
                p.grad._data[...] = 0

    def apply(self, fn: Callable[["Module"], Any]) -> "Module":
        """Call ``fn`` on every descendant (children first) and on ``self``; returns ``self``.

        Examples:
            >>> def init_weights(m):
            ...     if isinstance(m, nn.Linear):
            ...         nn.init.xavier_uniform_(m.weight)
            >>> net.apply(init_weights)
        """
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    # -- dtype and device
    def _cast(self, dtype) -> "Module":
        dtype = np.dtype(dtype)
        if dtype not in _SUPPORTED_DTYPES:
            raise _unsupported_dtype(dtype)
        for m in self.modules():
            for p in m._parameters.values():
                if p is not None and p._data.dtype.kind == "f":
                    p._data = p._data.astype(dtype, copy=False)
                    if p.grad is not None:
                        p.grad = Tensor(p.grad._data.astype(dtype, copy=False))
            for k, b in m._buffers.items():
                if isinstance(b, np.ndarray) and b.dtype.kind == "f":
                    m._buffers[k] = b.astype(dtype, copy=False)
        return self

    def float(self) -> "Module":
        return self._cast(np.float32)

    def double(self) -> "Module":
        return self._cast(np.float64)

    def half(self) -> "Module":
        """Not supported: float16 would need kernels dropcore does not have; raises TypeError."""
        raise _unsupported_dtype(np.dtype(np.float16))

    def bfloat16(self) -> "Module":
        raise TypeError("dropcore does not support bfloat16: its kernels run in float32 and float64 only")

    def cpu(self) -> "Module":
        """A no-op returning ``self``: dropcore lives on the CPU."""
        return self

    def to(self, *args: Any, **kwargs: Any) -> "Module":
        """Cast floating-point parameters and buffers in place; returns ``self``.

        Accepts PyTorch's forms: ``to(dtype)``, ``to(device)``, ``to(device, dtype)``,
        ``to(tensor)`` and the ``device=``/``dtype=``/``non_blocking=`` keywords. The only
        device is ``"cpu"`` (others raise RuntimeError); float16 raises TypeError.
        """
        device, dtype = kwargs.pop("device", None), kwargs.pop("dtype", None)
        kwargs.pop("non_blocking", None)
        kwargs.pop("memory_format", None)
        if kwargs:
            raise TypeError(f"to() received an invalid combination of arguments - got unexpected keyword(s) {sorted(kwargs)}")
        if len(args) > 3:
            raise TypeError(f"to() takes at most 3 positional arguments, but got {len(args)}")
        for a in args:
            if isinstance(a, Tensor):
                dtype = a.dtype
            elif isinstance(a, bool):
                continue  # non_blocking
            elif _is_device(a):
                device = a
            else:
                dtype = a
        if device is not None:
            check_device(device)
        if dtype is not None:
            try:
                d = np.dtype(dtype)
            except TypeError:
                raise TypeError(f"to() received an invalid dtype or device: {dtype!r}") from None
            if d.kind not in "fc":
                raise TypeError(f"nn.Module.to only accepts floating point or complex dtypes, but got desired dtype={d}")
            self._cast(d)
        return self

    # -- state
    def state_dict(self, *, destination=None, prefix: str = "", keep_vars: bool = False) -> "OrderedDict[str, Tensor]":
        """Parameters and persistent buffers by PyTorch's dotted names (Tensors sharing memory).

        Args:
            destination: a mapping to fill (a new OrderedDict by default).
            prefix: prepended to every key.
            keep_vars: return the Parameter objects themselves instead of detached Tensors.
        """
        out: OrderedDict[str, Tensor] = OrderedDict() if destination is None else destination
        for mod_prefix, m in self.named_modules(prefix=prefix.rstrip(".")):
            skip = m.__dict__.get("_non_persistent_buffers_set", ())
            for name, p in m._parameters.items():
                if p is not None:
                    out[f"{mod_prefix}.{name}" if mod_prefix else name] = p if keep_vars else Tensor(p._data)
            for name, b in m._buffers.items():
                if b is not None and name not in skip:
                    out[f"{mod_prefix}.{name}" if mod_prefix else name] = Tensor(b)
        return out

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False) -> _IncompatibleKeys:
        """Copy values (Tensors or NumPy arrays) into parameters and buffers by name.

        Args:
            state_dict: names to values, as :meth:`state_dict` gives them (a dict of NumPy
                arrays exported from PyTorch works too).
            strict: missing or unexpected keys are an error. Default: True.
            assign: make each parameter and buffer hold the loaded array itself (its
                dtype included) instead of copying into the existing one. Default: False.

        Every check runs before anything is copied: a failing call changes nothing.
        Errors are one RuntimeError worded as PyTorch's.
        """
        own = self.state_dict()
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        errors = []
        if strict and unexpected:
            errors.append("Unexpected key(s) in state_dict: {}. ".format(", ".join(f'"{k}"' for k in unexpected)))
        if strict and missing:
            errors.insert(0, "Missing key(s) in state_dict: {}. ".format(", ".join(f'"{k}"' for k in missing)))
        arrays = {}
        for key, value in state_dict.items():
            if key not in own:
                continue
            arr = value._data if isinstance(value, Tensor) else np.asarray(value)
            target = own[key]._data
            if arr.shape != target.shape:
                errors.append(f"size mismatch for {key}: copying a param with shape {arr.shape} from checkpoint, "
                              f"the shape in current model is {target.shape}.")
            arrays[key] = arr
        if errors:
            raise RuntimeError("Error(s) in loading state_dict for {}:\n\t{}".format(type(self).__name__, "\n\t".join(errors)))
        if assign:
            self._assign_arrays(arrays)
        else:
            for key, arr in arrays.items():
                own[key]._data[...] = arr
        return _IncompatibleKeys(missing, unexpected)

    def _assign_arrays(self, arrays: dict) -> None:
        for mod_prefix, m in self.named_modules():
            for name in list(m._parameters):
                key = f"{mod_prefix}.{name}" if mod_prefix else name
                if key in arrays and m._parameters[name] is not None:
                    m._parameters[name]._data = arrays[key]
            for name in list(m._buffers):
                key = f"{mod_prefix}.{name}" if mod_prefix else name
                if key in arrays:
                    m._buffers[name] = arrays[key]

    # -- repr
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = []
        extra = self.extra_repr()
        if extra:
            lines = extra.split("\n")
        for name, m in self._modules.items():
            child = repr(m).replace("\n", "\n  ")
            lines.append(f"({name}): {child}")
        main = type(self).__name__ + "("
        if lines:
            if len(lines) == 1 and not self._modules:
                main += lines[0]
            else:
                main += "\n  " + "\n  ".join(lines) + "\n"
        return main + ")"


# The containers live in container.py; re-exported here for code that imports them from
# this module (mc.py does).
from .container import ModuleDict, ModuleList, Sequential  # noqa: E402
