"""An independent NumPy implementation of Philox4x32-10 and dropcore's word stream.

Written from the paper (Salmon et al., SC 2011) and SPEC §2 (contract v2: element
masks read 16-bit half-words with an exact tie-break), sharing no code with the Rust
engine: the reference the tests compare masks against.
"""

from __future__ import annotations

import numpy as np

M0, M1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
W0, W1 = 0x9E3779B9, 0xBB67AE85
MASK32 = np.uint64(0xFFFFFFFF)


def philox4x32_10(counters: np.ndarray, key: tuple[int, int]) -> np.ndarray:
    """Philox on an (n, 4) uint32 array of counters; returns (n, 4) uint32 words."""
    c = np.asarray(counters, dtype=np.uint64).reshape(-1, 4).T.copy()
    k0, k1 = int(key[0]), int(key[1])
    for r in range(10):
        if r:
            k0, k1 = (k0 + W0) & 0xFFFFFFFF, (k1 + W1) & 0xFFFFFFFF
        p0 = M0 * c[0]
        p1 = M1 * c[2]
        c = np.stack(
            [
                (p1 >> np.uint64(32)) ^ c[1] ^ np.uint64(k0),
                p1 & MASK32,
                (p0 >> np.uint64(32)) ^ c[3] ^ np.uint64(k1),
                p0 & MASK32,
            ]
        )
    return c.T.astype(np.uint32)


def _words_at(seed: int, index: np.ndarray, stream: int) -> np.ndarray:
    """Words at uint64 ``index`` of the main stream (``stream=0``) or the tie stream
    (``stream=1``: the same counter with its third word set to 1)."""
    index = np.asarray(index, dtype=np.uint64)
    if index.size == 0:
        return np.zeros(0, dtype=np.uint32)
    b = index >> np.uint64(2)
    counters = np.stack([b & MASK32, b >> np.uint64(32), np.full_like(b, stream), np.zeros_like(b)], axis=1)
    out = philox4x32_10(counters, (seed & 0xFFFFFFFF, seed >> 32))
    return out[np.arange(index.size), (index & np.uint64(3)).astype(np.intp)]


def words(seed: int, offset: int, n: int) -> np.ndarray:
    """Words ``offset .. offset + n`` of the stream of ``seed`` (uint32)."""
    if n == 0:
        return np.zeros(0, dtype=np.uint32)
    first, last = offset // 4, (offset + n - 1) // 4
    b = np.arange(first, last + 1, dtype=np.uint64)
    counters = np.stack([b & MASK32, b >> np.uint64(32), np.zeros_like(b), np.zeros_like(b)], axis=1)
    out = philox4x32_10(counters, (seed & 0xFFFFFFFF, seed >> 32)).reshape(-1)
    start = offset - 4 * first
    return out[start : start + n]


def tie_words(seed: int, offset: int, n: int) -> np.ndarray:
    """Words ``offset .. offset + n`` of the tie stream (counter word 2 = 1)."""
    return _words_at(seed, np.arange(n, dtype=np.uint64) + np.uint64(offset), 1)


def threshold(p: float) -> int:
    """``T = round((1 - p) * 2**32)`` in float64 (SPEC §2)."""
    return round((1.0 - p) * 2.0**32)


def words_for(n: int, phase: int = 0) -> int:
    """Words an element call on ``n`` elements starting at ``phase`` consumes: ceil((phase + n) / 2)."""
    return (phase + n + 1) // 2


def lanes(seed: int, offset: int, n: int, phase: int = 0) -> np.ndarray:
    """The 16-bit lanes of half-words ``2 offset + phase .. + n`` (low half of a word first)."""
    w = words(seed, offset, words_for(n, phase)).astype(np.uint32)
    both = np.stack([w & np.uint32(0xFFFF), w >> np.uint32(16)], axis=1).reshape(-1)
    return both[phase : phase + n].astype(np.uint16)


def keep_mask(seed: int, offset: int, n: int, p: float, phase: int = 0) -> np.ndarray:
    """Element masks (contract v2): element ``i`` reads the lane ``u`` of half-word
    ``2 offset + phase + i`` and is kept iff ``u < T_hi``, or ``u == T_hi`` and the same
    lane ``v`` of the tie word is ``< T_lo``."""
    t = threshold(p)
    if t >= 2**32:
        return np.ones(n, dtype=bool)
    t_hi, t_lo = t >> 16, t & 0xFFFF
    u = lanes(seed, offset, n, phase)
    keep = u < t_hi
    ties = np.flatnonzero(u == t_hi)
    if ties.size:
        h = ties + phase  # half-word index relative to 2 * offset
        tw = _words_at(seed, np.uint64(offset) + (h // 2).astype(np.uint64), 1)
        v = (tw >> (16 * (h % 2)).astype(np.uint32)) & np.uint32(0xFFFF)
        keep[ties] = v < t_lo
    return keep


def tie_count(seed: int, offset: int, n: int, p: float, phase: int = 0) -> int:
    """How many of the ``n`` elements need their tie word (``u == T_hi``, ``T_lo != 0``)."""
    t = threshold(p)
    if t >= 2**32 or t & 0xFFFF == 0:
        return 0
    return int(np.count_nonzero(lanes(seed, offset, n, phase) == t >> 16))


def word_keep_mask(seed: int, offset: int, n: int, p: float) -> np.ndarray:
    """Whole-word masks (one decision per group: channel dropout, DropPath):
    word ``offset + g`` < ``T``."""
    return words(seed, offset, n).astype(np.uint64) < np.uint64(threshold(p))


def dropout(x: np.ndarray, p: float, seed: int, offset: int, phase: int = 0) -> np.ndarray:
    """Inverted dropout by the definition: kept * (1/(1-p) in x's dtype), dropped = 0."""
    keep = keep_mask(seed, offset, x.size, p, phase).reshape(x.shape)
    scale = x.dtype.type(1.0 / (1.0 - p))
    return np.where(keep, x * scale, x.dtype.type(0))
