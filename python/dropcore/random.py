"""Random generators: ranges of one counter-based Philox4x32-10 word stream.

Every random word dropcore uses is a pure function of ``(seed, index)`` (SPEC §2):
word ``j`` of seed ``s`` is output word ``j % 4`` of
``philox4x32_10(counter=(b & 0xffffffff, b >> 32, 0, 0), key=(s & 0xffffffff, s >> 32))``
with ``b = j // 4``. A :class:`Generator` hands out consecutive ranges of that stream:
a call that needs ``n`` words uses ``offset .. offset + n`` and advances ``offset``
by ``n``. Saving ``(seed, offset)`` is therefore enough to replay any random call.
"""

from __future__ import annotations

import threading

__all__ = ["Generator", "manual_seed", "default_generator", "initial_seed"]

_U64 = (1 << 64) - 1

# PyTorch's default CPU seed, so a fresh process is reproducible as in PyTorch.
_DEFAULT_SEED = 67280421310721


def _check_u64(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            import numpy as np

            if isinstance(value, np.integer):
                value = int(value)
            else:
                raise TypeError
        except TypeError:
            raise TypeError(f"{name} must be an int, but got {type(value).__name__}") from None
    if value < 0 or value > _U64:
        raise ValueError(f"{name} must be in [0, 2**64), but got {value}")
    return value


class Generator:
    """A position in the Philox word stream of one seed.

    Args:
        seed: 64-bit seed (the Philox key).
        offset: index of the next word to hand out.

    Example:
        >>> g = Generator(42)
        >>> seed, start = g.take(1000)   # words 0..1000, g.offset is now 1000
    """

    __slots__ = ("_seed", "_offset", "_lock")

    def __init__(self, seed: int = _DEFAULT_SEED, offset: int = 0) -> None:
        self._seed = _check_u64("seed", seed)
        self._offset = _check_u64("offset", offset)
        self._lock = threading.Lock()

    @property
    def seed(self) -> int:
        return self._seed

    @property
    def offset(self) -> int:
        return self._offset

    def manual_seed(self, seed: int) -> "Generator":
        """Restart the stream at word 0 of ``seed``; returns ``self`` like PyTorch."""
        seed = _check_u64("seed", seed)
        with self._lock:
            self._seed, self._offset = seed, 0
        return self

    def initial_seed(self) -> int:
        return self._seed

    def get_state(self) -> tuple[int, int]:
        """``(seed, offset)``: everything needed to replay what comes next."""
        with self._lock:
            return self._seed, self._offset

    def set_state(self, state: tuple[int, int]) -> "Generator":
        seed, offset = state
        seed, offset = _check_u64("seed", seed), _check_u64("offset", offset)
        with self._lock:
            self._seed, self._offset = seed, offset
        return self

    def take(self, n: int) -> tuple[int, int]:
        """Reserve ``n`` words; returns ``(seed, first_index)`` and advances the offset."""
        if n < 0:
            raise ValueError(f"cannot take a negative number of words ({n})")
        with self._lock:
            start = self._offset
            if start + n > _U64:
                raise OverflowError("Philox word stream exhausted for this seed (offset >= 2**64)")
            self._offset = start + n
            return self._seed, start

    def __repr__(self) -> str:
        return f"Generator(seed={self._seed}, offset={self._offset})"

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


def _resolve(generator: Generator | None) -> Generator:
    """The generator a random call should draw from."""
    if generator is None:
        return default_generator
    if not isinstance(generator, Generator):
        raise TypeError(f"generator must be a dropcore.Generator, but got {type(generator).__name__}")
    return generator
