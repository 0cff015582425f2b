"""``dropcore.save`` / ``dropcore.load``: checkpoints that never run code when loaded.

The file is a ZIP archive (stored, not compressed) holding

- ``dropcore/tree.json``: the object's structure as typed JSON nodes (dicts, lists,
  tuples, strings, ints, floats written exactly with ``float.hex``, bools, None,
  ``dropcore.Generator`` states) with arrays referred to by number;
- ``dropcore/arrays/<n>.npy``: each array in NumPy's ``.npy`` format, read back with
  ``allow_pickle=False``;
- ``dropcore/objects.pkl``: only when the object holds something else (a whole Module,
  a custom class). Such a file loads only with ``weights_only=False``, because
  unpickling can execute arbitrary code, as in PyTorch 2.6 and later.

Tensors, Parameters and NumPy arrays keep their dtype, shape and ``requires_grad``; an
array referenced twice (tied weights) is stored once and comes back shared. A file
that is not such an archive, is truncated, or fails a CRC check raises ``ValueError``.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import zipfile
from collections import Counter, OrderedDict
from typing import IO, Any

import numpy as np

from .random import Generator
from .tensor import Tensor

__all__ = ["save", "load"]

_FORMAT = "dropcore-checkpoint"
_VERSION = 1
_TREE = "dropcore/tree.json"
_OBJECTS = "dropcore/objects.pkl"


def _array_name(i: int) -> str:
    return f"dropcore/arrays/{i}.npy"


# ----------------------------------------------------------------------------- encoding
class _Encoder:
    def __init__(self) -> None:
        self.arrays: list[np.ndarray] = []
        self.array_ids: dict[int, int] = {}
        self.objects: list[Any] = []

    def array(self, a: np.ndarray) -> int:
        key = id(a)
        if key not in self.array_ids:
            self.array_ids[key] = len(self.arrays)
            self.arrays.append(a)
        return self.array_ids[key]

    def node(self, obj: Any) -> dict:
        from .nn.module import Parameter

        if obj is None:
            return {"t": "none"}
        if isinstance(obj, bool):
            return {"t": "bool", "v": obj}
        if isinstance(obj, int) and type(obj) is int:
            return {"t": "int", "v": obj}
        if isinstance(obj, float) and type(obj) is float:
            return {"t": "float", "v": obj.hex()}
        if isinstance(obj, str) and type(obj) is str:
            return {"t": "str", "v": obj}
        if isinstance(obj, Tensor) and type(obj) in (Tensor, Parameter):
            if obj._data.dtype.hasobject:
                return self.pickled(obj)
            kind = "parameter" if isinstance(obj, Parameter) else "tensor"
            return {"t": kind, "a": self.array(obj._data), "requires_grad": bool(obj.requires_grad)}
        if type(obj) is np.ndarray and not obj.dtype.hasobject:
            return {"t": "ndarray", "a": self.array(obj)}
        if isinstance(obj, np.generic) and not isinstance(obj, np.object_):
            return {"t": "npscalar", "a": self.array(np.asarray(obj))}
        if type(obj) is Generator:
            seed, offset = obj.get_state()
            return {"t": "generator", "v": [seed, offset]}
        if type(obj) in (list, tuple):
            return {"t": type(obj).__name__, "v": [self.node(x) for x in obj]}
        if type(obj) in (dict, OrderedDict, Counter):
            kind = {dict: "dict", OrderedDict: "odict", Counter: "counter"}[type(obj)]
            return {"t": kind, "v": [[self.node(k), self.node(v)] for k, v in obj.items()]}
        return self.pickled(obj)

    def pickled(self, obj: Any) -> dict:
        self.objects.append(obj)
        return {"t": "pickle", "i": len(self.objects) - 1, "type": f"{type(obj).__module__}.{type(obj).__qualname__}"}


def save(obj: Any, f: str | os.PathLike | IO[bytes], pickle_protocol: int = 2) -> None:
    """Save ``obj`` (a state dict, an optimizer or scheduler state, a checkpoint dict of
    Tensors, arrays, numbers and strings) to a path or a binary file object.

    A path is written through a temporary file and renamed, so an interrupted save
    never leaves a half-written checkpoint under the final name. Objects outside the
    safe types (e.g. a whole Module) are pickled; loading those needs ``weights_only=False``.

    Examples:
        >>> dropcore.save({"model": model.state_dict(), "optimizer": opt.state_dict(),
        ...                "epoch": 3}, "checkpoint.dcpt")
        >>> ckpt = dropcore.load("checkpoint.dcpt")
    """
    enc = _Encoder()
    tree = {"format": _FORMAT, "version": _VERSION, "root": enc.node(obj)}
    payload = json.dumps(tree, separators=(",", ":")).encode()
    objects = pickle.dumps(enc.objects, protocol=pickle_protocol) if enc.objects else None

    def write(stream: IO[bytes]) -> None:
        with zipfile.ZipFile(stream, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
            zf.writestr(_TREE, payload)
            for i, a in enumerate(enc.arrays):
                with zf.open(_array_name(i), "w", force_zip64=a.nbytes > 2**31) as member:
                    np.lib.format.write_array(member, a, allow_pickle=False)
            if objects is not None:
                zf.writestr(_OBJECTS, objects)

    if hasattr(f, "write"):
        write(f)  # type: ignore[arg-type]
        return
    path = os.fspath(f)
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "wb") as stream:
            write(stream)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


# ----------------------------------------------------------------------------- decoding
class _Corrupt(Exception):
    """Raised inside decoding; surfaces as ValueError."""


def _read_npy(data: bytes) -> np.ndarray:
    """An ``.npy`` payload as a new array, after checking that its header's shape and dtype
    account for exactly the bytes present (so a forged header cannot request a huge
    allocation, and object arrays are refused)."""
    header = io.BytesIO(data)
    version = np.lib.format.read_magic(header)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(header)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(header)
    else:
        raise _Corrupt(f"unsupported .npy version {version}")
    if dtype.hasobject:
        raise _Corrupt("object arrays are not allowed")
    count = 1
    for n in shape:
        count *= n
    start = header.tell()
    if count * dtype.itemsize != len(data) - start:
        raise _Corrupt(f"array data has {len(data) - start} bytes, its header says {count * dtype.itemsize}")
    flat = np.frombuffer(data, dtype=dtype, count=count, offset=start)
    return flat.reshape(shape, order="F" if fortran else "C").copy(order="K")


class _Decoder:
    def __init__(self, zf: zipfile.ZipFile, weights_only: bool) -> None:
        self.zf = zf
        self.weights_only = weights_only
        self.arrays: dict[int, np.ndarray] = {}
        self.objects: list[Any] | None = None

    def array(self, i: Any) -> np.ndarray:
        if not isinstance(i, int) or isinstance(i, bool):
            raise _Corrupt(f"bad array reference {i!r}")
        if i not in self.arrays:
            try:
                data = self.zf.read(_array_name(i))
            except KeyError:
                raise _Corrupt(f"array {i} is missing") from None
            self.arrays[i] = _read_npy(data)
        return self.arrays[i]

    def pickled(self, node: dict) -> Any:
        if self.weights_only:
            raise pickle.UnpicklingError(
                f"Weights only load failed: the file holds a pickled {node.get('type', 'object')} object. "
                "dropcore.load(..., weights_only=False) unpickles it, which can execute arbitrary code: "
                "only do so for a file you trust."
            )
        if self.objects is None:
            try:
                data = self.zf.read(_OBJECTS)
            except KeyError:
                raise _Corrupt("pickled objects are missing") from None
            self.objects = pickle.loads(data)
        return self.objects[node["i"]]

    def node(self, n: Any) -> Any:
        from .nn.module import Parameter

        if not isinstance(n, dict) or "t" not in n:
            raise _Corrupt(f"bad node {str(n)[:80]}")
        t = n["t"]
        if t == "none":
            return None
        if t in ("bool", "int", "str"):
            v = n["v"]
            want = {"bool": bool, "int": int, "str": str}[t]
            if type(v) is not want:
                raise _Corrupt(f"bad {t} value {v!r}")
            return v
        if t == "float":
            return float.fromhex(n["v"])
        if t in ("tensor", "parameter"):
            arr = self.array(n["a"])
            if t == "parameter":
                return Parameter(arr, requires_grad=bool(n["requires_grad"]))
            return Tensor(arr, requires_grad=bool(n["requires_grad"]) and arr.dtype.kind == "f")
        if t == "ndarray":
            return self.array(n["a"])
        if t == "npscalar":
            return self.array(n["a"])[()]
        if t == "generator":
            seed, offset = n["v"]
            return Generator(seed, offset)
        if t == "list":
            return [self.node(x) for x in n["v"]]
        if t == "tuple":
            return tuple(self.node(x) for x in n["v"])
        if t in ("dict", "odict", "counter"):
            cls = {"dict": dict, "odict": OrderedDict, "counter": Counter}[t]
            return cls(dict((self.node(k), self.node(v)) for k, v in n["v"]))
        if t == "pickle":
            return self.pickled(n)
        raise _Corrupt(f"unknown node type {t!r}")


def load(f: str | os.PathLike | IO[bytes], map_location: Any = None, *, weights_only: bool = True,
         **pickle_load_args: Any) -> Any:
    """Load an object saved by :func:`save`.

    Args:
        f: a path or a binary file object.
        map_location: accepted for compatibility; everything loads onto the CPU.
        weights_only: refuse pickled objects (the default), so loading never runs code.

    Raises:
        ValueError: the file is not a dropcore checkpoint, is truncated or corrupt.
        pickle.UnpicklingError: ``weights_only=True`` and the file holds pickled objects.
    """
    if hasattr(f, "read"):
        stream: IO[bytes] = f  # type: ignore[assignment]
        name = getattr(f, "name", "<file object>")
    else:
        name = os.fspath(f)
        stream = open(name, "rb")  # FileNotFoundError etc. propagate as they are
    try:
        with zipfile.ZipFile(stream) as zf:
            tree = json.loads(zf.read(_TREE))
            if not isinstance(tree, dict) or tree.get("format") != _FORMAT:
                raise _Corrupt("not a dropcore checkpoint")
            if tree.get("version") != _VERSION:
                raise _Corrupt(f"unsupported checkpoint version {tree.get('version')!r}")
            return _Decoder(zf, weights_only).node(tree["root"])
    except pickle.UnpicklingError:
        raise
    except (_Corrupt, zipfile.BadZipFile, zipfile.LargeZipFile, KeyError, EOFError, ValueError, TypeError,
            IndexError, OverflowError, RecursionError, UnicodeDecodeError, OSError, NotImplementedError) as e:
        if isinstance(e, OSError) and not isinstance(e, EOFError) and e.errno is not None:
            raise  # a real I/O error (permissions, a vanished disk) is not a corrupt file
        raise ValueError(f"{name}: not a valid dropcore checkpoint (corrupt or truncated): {e}") from e
    finally:
        if stream is not f:
            stream.close()


