"""Grad mode: ``no_grad``, ``enable_grad``, ``set_grad_enabled``, ``inference_mode``.

Thread-local, as in PyTorch: a ``no_grad`` block in one thread leaves the others
recording. Each is a context manager and a decorator.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

__all__ = [
    "no_grad",
    "enable_grad",
    "set_grad_enabled",
    "inference_mode",
    "is_grad_enabled",
    "is_inference_mode_enabled",
]


class _GradMode(threading.local):
    enabled = True
    inference = False


_state = _GradMode()


def is_grad_enabled() -> bool:
    return _state.enabled


def is_inference_mode_enabled() -> bool:
    return _state.inference


class _GradModeContext(contextlib.ContextDecorator):
    """Sets grad mode to ``_mode`` inside a ``with`` block or a decorated function."""

    _mode = True
    _inference = None  # None: leave inference mode as it is

    def __enter__(self):
        self._prev = (_state.enabled, _state.inference)
        _state.enabled = self._mode
        if self._inference is not None:
            _state.inference = self._inference
        return self

    def __exit__(self, *exc: Any) -> None:
        _state.enabled, _state.inference = self._prev


class no_grad(_GradModeContext):
    """Disable graph recording: ``with dropcore.no_grad(): ...`` or ``@dropcore.no_grad()``."""

    _mode = False


class enable_grad(_GradModeContext):
    """Enable graph recording inside a ``no_grad`` region."""

    _mode = True


class set_grad_enabled(_GradModeContext):
    """Set grad mode on or off; takes effect at once (function form) or for a ``with`` block."""

    def __init__(self, mode: bool) -> None:
        self._mode = bool(mode)
        self._prev = (_state.enabled, _state.inference)
        _state.enabled = self._mode

    def __enter__(self) -> "set_grad_enabled":
        return self


class inference_mode(_GradModeContext):
    """``no_grad`` for inference: nothing inside records a graph.

    Args:
        mode: ``True`` (default) disables recording; ``False`` makes the block a no-op.

    Unlike PyTorch, tensors made inside are ordinary tensors (PyTorch marks them as
    "inference tensors" that autograd later refuses); the speed-up PyTorch gets from
    skipping version counters does not apply here, so there is nothing to trade.
    """

    def __init__(self, mode: bool = True) -> None:
        self._mode = False if mode else _state.enabled
        self._inference = bool(mode)
