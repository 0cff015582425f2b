"""dropcore: dropout and its family at the speed of memory.

A Rust engine (counter-based Philox4x32-10 masks, SIMD and rayon kernels) behind a
PyTorch-like Python interface. Masks are a pure function of ``(seed, index)``, so
results are reproducible across threads and machines.
"""

from __future__ import annotations

from . import _core
from .random import Generator, default_generator, initial_seed, manual_seed
from .tensor import *  # noqa: F401,F403  (Tensor, factories, grad mode, dtypes)
from .tensor import __all__ as _tensor_all
from . import data, functional, mc, nn, optim, utils  # noqa: E402
from .serialization import load, save  # noqa: E402

__version__ = _core.__version__


def set_num_threads(n: int) -> None:
    """Set the number of threads dropcore's kernels use (like ``torch.set_num_threads``).

    The default is ``DROPCORE_NUM_THREADS`` if set, else the number of CPUs. Results do
    not depend on it: every random word is a function of ``(seed, index)`` only.
    """
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"number of threads must be an int, but got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"number of threads must be at least 1, but got {n}")
    _core.set_num_threads(n)


def get_num_threads() -> int:
    """The number of threads dropcore's kernels use."""
    return _core.get_num_threads()


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
]
