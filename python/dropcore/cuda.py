"""``dropcore.cuda``: dropcore is CPU-only, so there is never a CUDA device.

It exists so that the usual device-selection line runs unchanged::

    device = "cuda" if dropcore.cuda.is_available() else "cpu"
"""

from __future__ import annotations

__all__ = ["is_available", "device_count"]


def is_available() -> bool:
    """Always ``False``: dropcore's engine runs on the CPU."""
    return False


def device_count() -> int:
    """Always 0."""
    return 0
