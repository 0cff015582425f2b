"""``dropcore.device``: dropcore runs on the CPU only.

``device("cpu")`` is accepted everywhere PyTorch takes a device; a CUDA (or any other)
device can be named, as in PyTorch, but using one raises a clear error.
"""

from __future__ import annotations

from typing import Any

__all__ = ["device"]

_CPU_ONLY = "dropcore is CPU-only: there is no {!r} device (dropcore.cuda.is_available() is False)"


class device:
    """A device name: ``device("cpu")``, ``device("cuda:0")``, ``device("cuda", 0)``."""

    __slots__ = ("type", "index")

    def __init__(self, type: Any, index: int | None = None) -> None:  # noqa: A002  (PyTorch's name)
        if isinstance(type, device):
            type, index = type.type, type.index
        if not isinstance(type, str):
            raise TypeError(f"device() expects a string, but got {type.__class__.__name__}")
        name, _, idx = type.partition(":")
        if idx:
            if index is not None:
                raise RuntimeError(f"type (string) must not include an index because index was passed explicitly: {type}")
            if not idx.isdigit():
                raise RuntimeError(f"Invalid device string: '{type}'")
            index = int(idx)
        if name not in ("cpu", "cuda", "mps", "meta", "xpu"):
            raise RuntimeError(f"Expected one of cpu, cuda, mps, meta, xpu device type at start of device string: {type}")
        self.type, self.index = name, index

    def __repr__(self) -> str:
        return f"device(type='{self.type}')" if self.index is None else f"device(type='{self.type}', index={self.index})"

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __eq__(self, other: Any) -> bool:
        if isinstance(other, str):
            other = device(other)
        return isinstance(other, device) and (self.type, self.index) == (other.type, other.index)

    def __hash__(self) -> int:
        return hash((self.type, self.index))


def check_device(dev: Any) -> None:
    """Accept ``None``, ``"cpu"`` or a CPU :class:`device`; anything else raises RuntimeError."""
    if dev is None:
        return
    d = dev if isinstance(dev, device) else device(dev)
    if d.type != "cpu":
        raise RuntimeError(_CPU_ONLY.format(str(d)))
