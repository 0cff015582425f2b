"""dtypes: ``dropcore.float32`` and friends, and PyTorch's type-promotion rules.

A :class:`dtype` wraps a NumPy dtype (the storage is a NumPy array) and prints the
way PyTorch's does (``dropcore.float32``). It compares equal to the NumPy dtype it
wraps, and NumPy accepts it anywhere a dtype is expected (``np.zeros(3, dropcore.int64)``)
through its ``.dtype`` attribute.

Promotion follows PyTorch, not NumPy: a floating operand beats an integer one whatever
the sizes (``int64 tensor + float32 tensor -> float32``), and operands come in three
tiers - tensors with dimensions, zero-dim tensors, Python numbers - where a lower tier
only matters when it is of a higher category (bool < integer < floating). A Python
float meeting an integer tensor gives the default float dtype.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "dtype",
    "float32",
    "float",
    "float64",
    "double",
    "float16",
    "half",
    "int64",
    "long",
    "int32",
    "int",
    "int16",
    "short",
    "int8",
    "uint8",
    "bool",
    "get_default_dtype",
    "set_default_dtype",
]

_builtin_bool, _builtin_int, _builtin_float = bool, int, float


class dtype:
    """A tensor element type (``dropcore.float32``, ``dropcore.int64``, ...)."""

    __slots__ = ("name", "dtype", "is_floating_point", "is_signed", "itemsize")

    def __init__(self, name: str, np_dtype) -> None:
        self.name = name
        self.dtype = np.dtype(np_dtype)  # NumPy reads this: np.dtype(dropcore.float32) works
        self.is_floating_point = self.dtype.kind == "f"
        self.is_signed = self.dtype.kind in "fi"
        self.itemsize = self.dtype.itemsize

    def __repr__(self) -> str:
        return f"dropcore.{self.name}"

    __str__ = __repr__

    def __eq__(self, other: Any) -> _builtin_bool:
        if isinstance(other, dtype):
            return self.dtype == other.dtype
        try:
            return self.dtype == np.dtype(other)
        except TypeError:
            return False

    def __hash__(self) -> _builtin_int:
        return hash(self.dtype)

    def __reduce__(self):
        return (to_dtype, (self.name,))


float32 = dtype("float32", np.float32)
float64 = dtype("float64", np.float64)
float16 = dtype("float16", np.float16)
int64 = dtype("int64", np.int64)
int32 = dtype("int32", np.int32)
int16 = dtype("int16", np.int16)
int8 = dtype("int8", np.int8)
uint8 = dtype("uint8", np.uint8)
bool = dtype("bool", np.bool_)  # noqa: A001  (dropcore.bool, like torch.bool)
float, double, half = float32, float64, float16  # noqa: A001
long, int, short = int64, int32, int16  # noqa: A001

_BY_NUMPY = {d.dtype: d for d in (float32, float64, float16, int64, int32, int16, int8, uint8, bool)}
_BY_NAME = {d.name: d for d in _BY_NUMPY.values()}
_BY_NAME.update(float=float32, double=float64, half=float16, long=int64, int=int32, short=int16)

_default = float32


def to_dtype(spec: Any) -> dtype:
    """``spec`` (a dropcore dtype, NumPy dtype or type, Python type or name) as a dropcore dtype."""
    if isinstance(spec, dtype):
        return spec
    if isinstance(spec, str) and spec in _BY_NAME:
        return _BY_NAME[spec]
    if spec is _builtin_float:
        return _default
    if spec is _builtin_int:
        return int64
    if spec is _builtin_bool:
        return bool
    try:
        d = np.dtype(spec)
    except TypeError:
        raise TypeError(f"dtype must be a dropcore.dtype, but got {spec!r}") from None
    if d not in _BY_NUMPY:
        raise TypeError(f"dropcore has no dtype for NumPy's {d}")
    return _BY_NUMPY[d]


def np_dtype(spec: Any) -> np.dtype:
    """The NumPy dtype a tensor of dtype ``spec`` stores (float16 refused: see check_storable)."""
    d = to_dtype(spec).dtype
    check_storable(d)
    return d


def check_storable(d: np.dtype) -> None:
    """Refuse dtypes a Tensor cannot hold end to end (the engine runs float32/float64 only)."""
    if d.kind == "f" and d.itemsize not in (4, 8):
        raise TypeError(
            f"dropcore tensors support float32 and float64 (and integer and bool types), but got "
            f"{d}: the Rust engine has no half-precision kernels"
        )
    if d.kind not in "fiub":
        raise TypeError(f"dropcore tensors hold real numbers or bools, but got dtype {d}")


def get_default_dtype() -> dtype:
    """The dtype of floating-point tensors made from Python floats (float32 by default)."""
    return _default


def set_default_dtype(d: Any) -> None:
    """Set the default floating-point dtype (``dropcore.float32`` or ``dropcore.float64``)."""
    global _default
    dd = to_dtype(d)
    if dd not in (float32, float64):
        raise TypeError(f"only floating-point types are supported as the default type, but got {dd}")
    _default = dd


def default_np() -> np.dtype:
    return _default.dtype


# ----------------------------------------------------------------------------- promotion
_CATEGORY = {"b": 0, "u": 1, "i": 1, "f": 2}


def _category_of_scalar(x: Any) -> _builtin_int:
    if isinstance(x, (_builtin_bool, np.bool_)):
        return 0
    if isinstance(x, (_builtin_int, np.integer)):
        return 1
    return 2


def promote_types(a: np.dtype, b: np.dtype) -> np.dtype:
    """PyTorch's promote_types: the higher category wins outright; within one, the wider type."""
    if a == b:
        return a
    ca, cb = _CATEGORY[a.kind], _CATEGORY[b.kind]
    if ca != cb:
        return a if ca > cb else b
    return np.promote_types(a, b)


def result_type(arrays: tuple[np.ndarray, ...], scalars: tuple = ()) -> np.dtype:
    """The dtype of a pointwise op over tensors' ``arrays`` and Python-number ``scalars``."""
    dimmed = zero = None
    for a in arrays:
        if a.ndim:
            dimmed = a.dtype if dimmed is None else promote_types(dimmed, a.dtype)
        else:
            zero = a.dtype if zero is None else promote_types(zero, a.dtype)
    out = dimmed
    if zero is not None:
        if out is None or _CATEGORY[zero.kind] > _CATEGORY[out.kind]:
            out = zero
    for s in scalars:
        c = _category_of_scalar(s)
        if out is None or c > _CATEGORY[out.kind]:
            out = (np.dtype(np.bool_), np.dtype(np.int64), _default.dtype)[c]
    return out


def pytorch_name(d: np.dtype) -> str:
    """PyTorch's scalar-type name in error messages (``Float``, ``Double``, ``Long``, ...)."""
    return {
        "float32": "Float",
        "float64": "Double",
        "float16": "Half",
        "int64": "Long",
        "int32": "Int",
        "int16": "Short",
        "int8": "Char",
        "uint8": "Byte",
        "bool": "Bool",
    }.get(np.dtype(d).name, str(d))
