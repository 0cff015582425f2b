"""dropcore: dropout and its family at the speed of memory.

A Rust engine (counter-based Philox4x32-10 masks, SIMD and rayon kernels) behind a
PyTorch-like Python interface. Masks are a pure function of ``(seed, index)``, so
results are reproducible across threads and machines.
"""

from __future__ import annotations

import builtins as _builtins

from . import _core
from .random import Generator, default_generator, initial_seed, manual_seed
from .tensor import Tensor, is_tensor, numel  # first: it loads the op modules
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
    "Tensor", "is_tensor", "numel", "device", "autograd", "cuda",
    *_creation.__all__, *_dtypes.__all__, *_grad_mode.__all__,
    *_ops_elementwise.__all__, *_ops_linalg.__all__, *_ops_shape.__all__,
]

__version__ = _core.__version__


def set_num_threads(n: int) -> None:
    """Set the number of threads dropcore's kernels use (like ``torch.set_num_threads``).

    The default is ``DROPCORE_NUM_THREADS`` if set, else the number of CPUs. Results do
    not depend on it: every random word is a function of ``(seed, index)`` only.
    """
    if isinstance(n, _builtins.bool) or not isinstance(n, _builtins.int):
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
