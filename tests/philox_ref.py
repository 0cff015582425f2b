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


# --- Gaussian noise: paired Box-Muller in float32 (dropcore's definition) ---------------
# Written from the definition in rust/variants/gaussian.rs's docs (plain octant logic,
# the unfolded logarithm), every step a float32 operation in the stated order, so the
# engine's SIMD and scalar paths must match it bit for bit.

def _f32(bits: int) -> np.float32:
    return np.array([bits], dtype=np.uint32).view(np.float32)[0]


# ln m = 2 atanh(s), s = (m - 1) / (m + 1): 2s + (2s t) g(t), t = s^2, g's float32
# coefficients 0.33333388, 0.19988769, 0.14935890; ln 2 = 0.693359375 - 2.12194440e-4.
_G = [_f32(b) for b in (0x3EAAAABD, 0x3E4CAF5C, 0x3E18F18A)]
_LN2_LO, _LN2_HI = _f32(0xB95E8083), _f32(0x3F318000)
# Cephes sinf / cosf on [0, pi/4]: -1.9515296e-4, 8.332161e-3, -1.6666655e-1 and
# 2.4433157e-5, -1.3887316e-3, 4.1666646e-2.
_SIN = [_f32(b) for b in (0xB94CA1F9, 0x3C08839E, 0xBE2AAAA3)]
_COS = [_f32(b) for b in (0x37CCF5CE, 0xBAB6061A, 0x3D2AAAA5)]
_QUARTER_PI_M24 = _f32(0x3F490FDB) * np.float32(2.0**-24)  # float32(pi/4) / 2^24, exact
_MANT = np.uint32(0x7FFFFF)


def ln_f32(u: np.ndarray) -> np.ndarray:
    """ln(u) for float32 u in [2^-32, 1]: u = m 2^e with m in [sqrt(1/2), sqrt(2)) by bit
    operations, then the atanh series of m after one division."""
    u = np.asarray(u, dtype=np.float32)
    bits = u.view(np.uint32)
    big = (bits & _MANT) > np.uint32(0x3504F3)  # m > float32(sqrt 2): halve m
    e = (bits >> np.uint32(23)).astype(np.int32) - np.int32(127) + big.astype(np.int32)
    m = ((bits & _MANT) | np.where(big, np.uint32(0x3F000000), np.uint32(0x3F800000))).view(np.float32)
    f = np.float32
    s = (m - f(1)) / (m + f(1))
    a = s * f(2)
    t = s * s
    g = (_G[2] * t + _G[1]) * t + _G[0]
    ef = e.astype(np.float32)
    return ef * _LN2_HI + (ef * _LN2_LO + (a + (a * t) * g))


def sin_cos_f32(psi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sin psi, cos psi) for float32 psi in [0, pi/4]."""
    f = np.float32
    z = psi * psi
    s = ((_SIN[0] * z + _SIN[1]) * z + _SIN[2]) * z * psi + psi
    c = ((_COS[0] * z + _COS[1]) * z + _COS[2]) * z * z - f(0.5) * z + f(1)
    return s, c


def normal_pairs(w1: np.ndarray, w2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(r cos theta, r sin theta) of uint32 word pairs, float32."""
    w1, w2 = np.asarray(w1, np.uint32), np.asarray(w2, np.uint32)
    f = np.float32
    u = ((w1 >> np.uint32(1)).astype(np.float64).astype(np.float32) + f(0.5)) * f(2.0**-31)
    r = np.sqrt(f(-2) * ln_f32(u) + f(0))  # + 0: r = +0, not -0, at u = 1
    q = (w2 >> np.uint32(29)).astype(np.intp)
    fr = (w2 >> np.uint32(6)) & _MANT
    g = np.where(q % 2 == 1, _MANT - fr, fr)
    psi = (2 * g.astype(np.int64) + 1).astype(np.float32) * _QUARTER_PI_M24
    s, c = sin_cos_f32(psi)
    # theta = q pi/4 + psi (q even) or (q + 1) pi/4 - psi (q odd): cos/sin by octant
    cos_t = np.choose(q, [c, s, -s, -c, -c, -s, s, c])
    sin_t = np.choose(q, [s, c, c, s, -s, -c, -c, -s])
    return r * cos_t, r * sin_t


def gaussian_words(n: int, phase: int = 0) -> int:
    """Words a Gaussian call on ``n`` elements starting at ``phase`` touches: 2 ceil((phase + n) / 2)."""
    return 2 * ((phase + n + 1) // 2)


def normals(seed: int, offset: int, n: int, phase: int = 0) -> np.ndarray:
    """float32 variates ``phase .. phase + n`` of a call at ``offset``: variates ``2k``
    and ``2k + 1`` are the cosine and sine of words ``offset + 2k``, ``offset + 2k + 1``."""
    w = words(seed, offset, gaussian_words(n, phase))
    c, s = normal_pairs(w[0::2], w[1::2])
    return np.stack([c, s], axis=1).reshape(-1)[phase : phase + n]


def gaussian_noise(x: np.ndarray, stddev: float, seed: int, offset: int, phase: int = 0) -> np.ndarray:
    """``x + stddev z`` in x's dtype (z widened exactly for float64)."""
    z = normals(seed, offset, x.size, phase).reshape(x.shape).astype(x.dtype)
    return x + x.dtype.type(stddev) * z


def gaussian_dropout(x: np.ndarray, p: float, seed: int, offset: int, phase: int = 0) -> np.ndarray:
    """``x (1 + sigma z)``, ``sigma = sqrt(p / (1 - p))`` rounded once to x's dtype."""
    z = normals(seed, offset, x.size, phase).reshape(x.shape).astype(x.dtype)
    one, sigma = x.dtype.type(1), x.dtype.type(np.sqrt(p / (1.0 - p)))
    return x * (one + sigma * z)
