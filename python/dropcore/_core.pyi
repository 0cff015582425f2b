"""Type stubs for dropcore's Rust engine (``dropcore._core``).

Kernels take C-contiguous, aligned, native-endian float32/float64 arrays (the Python
layer makes them so; anything else is a ``ValueError``/``TypeError``, never a misread),
release the GIL while they run (arrays of 8192 elements and more: below that the
release costs more than it frees), and read the Philox words ``offset ..`` of ``seed``.
New arrays are zero-filled NumPy allocations (``MemoryError`` when too large); an
``out`` must share no byte with the input (an exact address-range test).
Element masks (``dropout``, ``bernoulli_map`` with ``inner=None``) follow contract v2
(SPEC §2): element ``i`` reads the 16-bit half-word ``2 * offset + phase + i`` (ties
settled by the tie word), so a call on ``n`` elements uses ``ceil((phase + n) / 2)`` words.
"""

from typing import TypeVar

import numpy as np
import numpy.typing as npt

_F = TypeVar("_F", np.float32, np.float64)

__version__: str

class WordStream:
    """Where a ``dropcore.Generator`` is in its seed's word stream, behind a mutex (the
    Python ``Generator`` subclasses it and checks the arguments)."""

    def __new__(cls, *args: object, **kwargs: object) -> "WordStream": ...
    def _get_state(self) -> tuple[int, int]:
        """``(seed, offset)``, read atomically."""
    def _set_state(self, seed: int, offset: int) -> None:
        """Move to word ``offset`` (``0 ..= 2**64``) of ``seed``'s stream."""
    def _take(self, n: int) -> tuple[int, int]:
        """Reserve ``n`` words: ``(seed, first word)``; ``OverflowError`` (nothing taken)
        if fewer are left."""
    def _untake(self, seed: int, start: int, n: int) -> None:
        """Give back words ``start .. start + n`` if nothing was taken since."""

def philox4x32_10(counter: list[int], key: list[int]) -> list[int]:
    """One Philox4x32-10 block: 4 counter words under a 2-word key."""

def philox_words(seed: int, offset: int, n: int) -> npt.NDArray[np.uint32]:
    """Words ``offset .. offset + n`` of the stream of ``seed``: ``OverflowError`` past
    word ``2**64 - 1``, ``MemoryError`` if ``n`` words do not fit in memory."""

def dropout(
    x: npt.NDArray[_F],
    p: float,
    seed: int,
    offset: int,
    inverted: bool = True,
    inplace: bool = False,
    out: npt.NDArray[_F] | None = None,
    phase: int = 0,
) -> npt.NDArray[_F]:
    """Element dropout (contract v2): element ``i`` reads half-word ``2 * offset + phase + i``;
    kept * 1/(1-p) (or * 1 if not inverted), dropped exactly 0. ``phase`` is 0 or 1.

    Returns a new array, ``x`` itself when ``inplace``, or ``out`` when given.
    """

def dropout_call(
    x: object,
    p: object,
    generator: object,
    inverted: object,
    inplace: object,
    out: object,
    position: bool = False,
) -> object:
    """The common element-dropout call in one crossing: ``p`` a float in (0, 1],
    ``inverted``/``inplace`` bools, ``x`` a non-empty C-contiguous aligned native
    float32/float64 array, ``out`` None, ``x``, or a writeable C-contiguous aligned array
    of ``x``'s dtype and shape sharing no byte with it, ``generator`` a ``Generator``.
    Checks and borrows everything, then takes ``ceil(n / 2)`` words and runs the kernel
    (words given back if it fails). Returns the result (``(result, seed, offset)`` with
    ``position``), or ``None``, having drawn and written nothing, for any other call."""

def get_num_threads() -> int: ...
def set_num_threads(n: int) -> None:
    """Record the thread count (1 ..= ``max_num_threads()``, else ``ValueError``); the
    pool is built lazily by the next parallel kernel call."""

def max_num_threads() -> int:
    """The thread cap: 4 x the CPUs this process may use, at least 16."""

def _config_warnings() -> list[str]:
    """Environment settings ignored at start-up (e.g. a bad ``DROPCORE_NUM_THREADS``)."""
def simd_isa() -> str:
    """The instruction set picked at run time: "avx512", "avx2" or "scalar"."""

def _panic_for_tests(message: str) -> None: ...

# --- the dropout family --------------------------------------------------------------
def bernoulli_map(
    x: npt.NDArray[_F],
    p: float,
    a: float,
    b: float,
    dropped: float,
    seed: int,
    offset: int,
    inner: int | None = None,
    out: npt.NDArray[_F] | None = None,
    phase: int = 0,
) -> npt.NDArray[_F]:
    """Kept units become ``a x + b``, dropped ones ``dropped``.

    ``inner=None``: element masks (contract v2), element ``i`` at half-word
    ``2 * offset + phase + i``; otherwise one whole word per contiguous group of
    ``inner`` elements, kept iff word < round((1-p) 2^32) (channel dropout, DropPath,
    feature alpha dropout; ``phase`` must be 0).
    """

def gaussian_map(
    x: npt.NDArray[_F],
    scale: float,
    multiplicative: bool,
    seed: int,
    offset: int,
    out: npt.NDArray[_F] | None = None,
    phase: int = 0,
) -> npt.NDArray[_F]:
    """``x * (1 + scale z)`` or ``x + scale z`` in x's dtype, element ``i`` taking variate
    ``j = phase + i``: paired Box-Muller in float32, variates ``2k`` and ``2k + 1`` being
    ``r cos(theta)`` and ``r sin(theta)`` of words ``offset + 2k`` (radius) and
    ``offset + 2k + 1`` (angle). A call on ``n`` elements at phase 0 reads
    ``2 * ceil(n / 2)`` words."""

def drop_block2d(
    x: npt.NDArray[_F], p: float, block_size: int, seed: int, offset: int, out: npt.NDArray[_F] | None = None
) -> npt.NDArray[_F]:
    """DropBlock on (N, C, H, W); the same call on a gradient is its backward."""

def dropconnect_forward(
    x: npt.NDArray[_F], weight: npt.NDArray[_F], bias: npt.NDArray[_F] | None, p: float, seed: int, offset: int
) -> npt.NDArray[_F]:
    """Per-example DropConnect: x (B, I), weight (O, I) -> (B, O); entry (b, o, i) at
    half-word ``2 * offset + (b O + o) I + i`` (``ceil(B O I / 2)`` words)."""

def dropconnect_backward(
    g: npt.NDArray[_F], x: npt.NDArray[_F], weight: npt.NDArray[_F], p: float, seed: int, offset: int
) -> tuple[npt.NDArray[_F], npt.NDArray[_F]]:
    """``(grad_input, grad_weight)`` of per-example DropConnect, masks regenerated."""

# Fused epilogues over a GEMM output (rust/epilogue.rs; used by nn.Sequential).

def relu(x: npt.NDArray[_F], out: npt.NDArray[_F] | None = None) -> npt.NDArray[_F]:
    """``max(x, 0)`` (NaN kept, -0.0 -> +0.0), into ``out`` or a new array."""

def bias_relu_(z: npt.NDArray[_F], bias: npt.NDArray[_F] | None = None) -> npt.NDArray[_F]:
    """``z = relu(z + bias)`` in place over rows of ``z.shape[-1]`` elements; returns ``z``."""

def relu_dropout_(
    z: npt.NDArray[_F], p: float, seed: int, offset: int, inverted: bool = True, phase: int = 0
) -> npt.NDArray[_F]:
    """``z = dropout(relu(z))`` in place, the mask of element ``i`` at half-word
    ``2 * offset + phase + i`` (contract v2, as ``dropout``); returns ``z``."""

def relu_mask_backward(y: npt.NDArray[_F], dy: npt.NDArray[_F], scale: float = 1.0) -> npt.NDArray[_F]:
    """Gradient of ``y = dropout(relu(z))`` (``scale`` = 1/(1-p)) or ``y = relu(z)``
    (``scale`` = 1) from the output: a new array ``y > 0 ? dy * scale : 0``."""
