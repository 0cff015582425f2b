"""An independent NumPy implementation of Philox4x32-10 and dropcore's word stream.

Written from the paper (Salmon et al., SC 2011) and SPEC §2, sharing no code with
the Rust engine: the reference the tests compare masks against.
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


def keep_mask(seed: int, offset: int, n: int, p: float) -> np.ndarray:
    """Element dropout's keep decisions: word < round((1 - p) * 2**32)."""
    threshold = round((1.0 - p) * 2.0**32)
    return words(seed, offset, n).astype(np.uint64) < np.uint64(threshold)


def dropout(x: np.ndarray, p: float, seed: int, offset: int) -> np.ndarray:
    """Inverted dropout by the definition: kept * (1/(1-p) in x's dtype), dropped = 0."""
    keep = keep_mask(seed, offset, x.size, p).reshape(x.shape)
    scale = x.dtype.type(1.0 / (1.0 - p))
    return np.where(keep, x * scale, x.dtype.type(0))
