"""Random generators: ranges of one counter-based Philox4x32-10 word stream.

Every random word dropcore uses is a pure function of ``(seed, index)`` (SPEC §2):
word ``j`` of seed ``s`` is output word ``j % 4`` of
``philox4x32_10(counter=(b & 0xffffffff, b >> 32, 0, 0), key=(s & 0xffffffff, s >> 32))``
with ``b = j // 4``. A :class:`Generator` hands out consecutive ranges of that stream:
a call that needs ``n`` words uses ``offset .. offset + n`` and advances ``offset``
by ``n``. Saving ``(seed, offset)`` is therefore enough to replay any random call.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from . import _core

__all__ = ["Generator", "manual_seed", "default_generator", "initial_seed"]

_U64 = (1 << 64) - 1
# One past the last word of a stream: an offset of 2**64 means every word is used.
_STREAM_END = 1 << 64

# PyTorch's default CPU seed, so a fresh process is reproducible as in PyTorch.
_DEFAULT_SEED = 67280421310721


def _as_int(name: str, value: Any) -> int:
    """``value`` as a Python int: an int or NumPy integer, never a bool or a float."""
    if type(value) is int:
        return value
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, but got {type(value).__name__}")
    return int(value)


def _check_u64(name: str, value: Any, top: int = _U64) -> int:
    """``value`` as a Python int in ``[0, top]`` (TypeError / ValueError otherwise)."""
    value = _as_int(name, value)
    if value < 0 or value > top:
        bound = "2**64)" if top == _U64 else "2**64]"
        raise ValueError(f"{name} must be in [0, {bound}, but got {value}")
    return value


class Generator(_core.WordStream):
    """A position in the Philox word stream of one seed.

    Args:
        seed: 64-bit seed (the Philox key), an int in ``[0, 2**64)``.
        offset: index of the next word to hand out, an int in ``[0, 2**64]``
            (``2**64``: the stream is used up).

    Offsets are Python ints, checked on every path (``take``, ``set_state``, the
    constructor), so a range of words is never handed out twice: a call whose words
    would run past word ``2**64 - 1`` raises ``OverflowError`` and draws nothing.
    The position lives in the compiled base class behind a mutex, so threads sharing a
    generator each get their own words, and the kernels' bindings take words from it
    without a Python call.

    Example:
        >>> g = Generator(42)
        >>> seed, start = g.take(1000)   # words 0..1000, g.offset is now 1000
    """

    __slots__ = ()

    def __init__(self, seed: int = _DEFAULT_SEED, offset: int = 0) -> None:
        self._set_state(_check_u64("seed", seed), _check_u64("offset", offset, _STREAM_END))

    @property
    def seed(self) -> int:
        return self._get_state()[0]

    @property
    def offset(self) -> int:
        return self._get_state()[1]

    def manual_seed(self, seed: int) -> "Generator":
        """Restart the stream at word 0 of ``seed``; returns ``self`` like PyTorch."""
        self._set_state(_check_u64("seed", seed), 0)
        return self

    def initial_seed(self) -> int:
        return self._get_state()[0]

    def get_state(self) -> tuple[int, int]:
        """``(seed, offset)``: everything needed to replay what comes next."""
        return self._get_state()

    def set_state(self, state: tuple[int, int]) -> "Generator":
        try:
            seed, offset = state
        except (TypeError, ValueError):
            raise TypeError(f"state must be a (seed, offset) pair, but got {state!r}") from None
        self._set_state(_check_u64("seed", seed), _check_u64("offset", offset, _STREAM_END))
        return self

    def take(self, n: int) -> tuple[int, int]:
        """Reserve ``n`` words; returns ``(seed, first_index)`` and advances the offset.

        Raises:
            TypeError: ``n`` is not an int (a float, a bool, ...).
            ValueError: ``n`` is negative.
            OverflowError: fewer than ``n`` words are left (the last usable word is
                ``2**64 - 1``); the generator is unchanged.
        """
        if type(n) is not int:  # (the common case skips a call)
            n = _as_int("number of words", n)
        if n < 0:
            raise ValueError(f"cannot take a negative number of words ({n})")
        if n > _STREAM_END:  # (more than any stream holds; the base class takes < 2**128)
            seed, start = self._get_state()
            raise OverflowError(
                f"Philox word stream exhausted for seed {seed}: {n} words asked at offset {start}, "
                f"{_STREAM_END - start} left (2**64 per seed)"
            )
        return self._take(n)  # atomic: checks what is left and advances, or OverflowError

    # _untake(seed, start, n), from the base class: give back words start .. start + n of a
    # call that failed, if nothing was taken since (skipping words is harmless, reusing
    # them is not).

    def __repr__(self) -> str:
        seed, offset = self._get_state()
        return f"Generator(seed={seed}, offset={offset})"

    # Pickling and copy.deepcopy carry (seed, offset), never the lock: a copy continues
    # the same word stream from the same position, independently of the original.
    def __reduce__(self):
        seed, offset = self.get_state()
        return (type(self), (seed, offset))

    def __copy__(self) -> "Generator":
        return type(self)(*self.get_state())

    def __deepcopy__(self, memo: dict) -> "Generator":
        copied = type(self)(*self.get_state())
        memo[id(self)] = copied
        return copied


default_generator = Generator()


def manual_seed(seed: int) -> Generator:
    """Reset the default generator to word 0 of ``seed`` (like ``torch.manual_seed``)."""
    return default_generator.manual_seed(seed)


def initial_seed() -> int:
    return default_generator.initial_seed()


def _draw_words(generator: Generator | None, n: int) -> np.ndarray:
    """``n`` consecutive Philox words (uint32) from ``generator`` (the default if None).

    ``MemoryError`` before any word is drawn if ``n`` words cannot fit in memory, and
    the words go back to the generator if the allocation fails after the draw: a
    failed call leaves the generator as it was.
    """
    gen = _resolve(generator)
    n = _as_int("number of words", n)
    if n > sys.maxsize // 4:
        raise MemoryError(f"cannot allocate {n} random words ({n * 4} bytes)")
    seed, offset = gen.take(n)
    try:
        return _core.philox_words(seed, offset, n)
    except BaseException:
        gen._untake(seed, offset, n)
        raise


def _resolve(generator: Generator | None) -> Generator:
    """The generator a random call should draw from."""
    if generator is None:
        return default_generator
    if not isinstance(generator, Generator):
        raise TypeError(f"generator must be a dropcore.Generator, but got {type(generator).__name__}")
    return generator
