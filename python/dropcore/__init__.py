"""dropcore: dropout and its family from a Rust engine, with PyTorch's interface.

A Rust engine (counter-based Philox4x32-10 masks, SIMD and rayon kernels) behind a
PyTorch-like Python interface. Masks are a pure function of ``(seed, index)``, so they
are bit-identical whatever the thread count, the chunking or the machine.
"""

from __future__ import annotations

import builtins as _builtins
import numbers
import os
import warnings

from . import _core
from .random import Generator, default_generator, initial_seed, manual_seed
from .tensor import Size, Tensor, is_tensor, numel  # first: it loads the op modules
from . import _creation, _device, _dtypes, _grad_mode, _ops_elementwise, _ops_linalg, _ops_shape
from ._creation import *  # noqa: F401,F403  (tensor, zeros, rand, randint, ...)
from ._device import device
from ._dtypes import *  # noqa: F401,F403  (float32, int64, bool, ...; shadows builtins here)
from ._grad_mode import *  # noqa: F401,F403  (no_grad, inference_mode, ...)
from ._ops_elementwise import *  # noqa: F401,F403  (sum, max, exp, where, ...)
from ._ops_linalg import *  # noqa: F401,F403  (matmul, mm, norm, ...)
from ._ops_shape import *  # noqa: F401,F403  (cat, stack, gather, ...)
from . import autograd, cuda  # noqa: E402
from . import data, functional, mc, nn, optim, utils  # noqa: E402
from .serialization import load, save  # noqa: E402

_tensor_all = [
    "Tensor", "Size", "is_tensor", "numel", "device", "autograd", "cuda",
    *_creation.__all__, *_dtypes.__all__, *_grad_mode.__all__,
    *_ops_elementwise.__all__, *_ops_linalg.__all__, *_ops_shape.__all__,
]

__version__ = _core.__version__


def set_num_threads(n: int) -> None:
    """Set the number of threads dropcore's kernels use (like ``torch.set_num_threads``).

    The default is ``DROPCORE_NUM_THREADS`` if set, else the number of CPUs. Results do
    not depend on it: every random word is a function of ``(seed, index)`` only.

    Args:
        n: an int from 1 to ``max_num_threads()`` (4 x the CPUs this process may use,
            and at least 16): more threads than that only add start-up time and
            contention. The pool is rebuilt lazily, by the next parallel kernel call.

    Raises:
        TypeError: ``n`` is not an int. ValueError: ``n`` is out of range.
    """
    if isinstance(n, _builtins.bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"number of threads must be an int, but got {type(n).__name__}")
    n, cap = _builtins.int(n), _core.max_num_threads()
    if not 1 <= n <= cap:
        raise ValueError(f"number of threads must be between 1 and {cap} (4 x the CPU count, at least 16), but got {n}")
    _core.set_num_threads(n)


def max_num_threads() -> int:
    """The largest thread count :func:`set_num_threads` accepts."""
    return _core.max_num_threads()


def get_num_threads() -> int:
    """The number of threads dropcore's kernels use."""
    return _core.get_num_threads()


# DROPCORE_SIMD values the engine understands (rust/rng.rs reads it once).
_SIMD_CHOICES = {"off": "scalar", "0": "scalar", "scalar": "scalar", "none": "scalar", "avx2": "avx2", "avx512": "avx512"}


def _warn_about_environment() -> None:
    """Warn once, at import, about environment settings the engine had to ignore."""
    for message in _core._config_warnings():
        warnings.warn(message, RuntimeWarning, stacklevel=3)
    raw = os.environ.get("DROPCORE_SIMD", "")
    want = raw.strip().lower()
    if not want:
        return
    got = _core.simd_isa()
    if want not in _SIMD_CHOICES:
        warnings.warn(
            f"DROPCORE_SIMD={raw!r} ignored: expected one of off, scalar, avx2, avx512; using {got}",
            RuntimeWarning, stacklevel=3,
        )
    elif _SIMD_CHOICES[want] != got:
        warnings.warn(
            f"DROPCORE_SIMD={raw!r} asks for {_SIMD_CHOICES[want]}, which this CPU cannot run; using {got}",
            RuntimeWarning, stacklevel=3,
        )


_warn_about_environment()

__all__ = [
    *_tensor_all,
    "nn",
    "functional",
    "optim",
    "mc",
    "data",
    "utils",
    "save",
    "load",
    "Generator",
    "default_generator",
    "initial_seed",
    "manual_seed",
    "set_num_threads",
    "get_num_threads",
    "max_num_threads",
]
