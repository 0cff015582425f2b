//! Gaussian dropout (Srivastava et al. 2014, §10) and additive Gaussian noise.
//!
//! Paired Box-Muller, one word per element. Elements `2k` and `2k + 1` of a call at
//! word offset `o` share the words `w1 = word(o + 2k)` and `w2 = word(o + 2k + 1)`:
//! element `2k` takes `r cos(theta)`, element `2k + 1` takes `r sin(theta)`, with
//! `r = sqrt(-2 ln u)`, `u = (f32(w1 >> 1) + 1/2) 2^-31` in (0, 1] (the top 31 bits
//! of `w1`: the tail reaches |z| = 6.66), and `theta = ((w2 >> 6) + 1/2) 2 pi / 2^26`
//! (see [`normal_pair`]): our own `ln` (an atanh series after one division) and `sin`,
//! `cos` polynomials (Cephes' float32 ones). Everything is float32 arithmetic in a
//! fixed order of IEEE operations (`+ - * / sqrt`, integer bit operations, no FMA, no
//! libm), so the scalar, AVX2 and AVX-512 builds give the same bits. Gaussian dropout multiplies by
//! `1 + sigma z` with `sigma = sqrt(p / (1 - p))`, so its noise has mean 1 and
//! variance `p / (1 - p)`, as Bernoulli dropout's `keep / (1 - p)` does; the additive
//! form adds `stddev z`. Both are computed in the input's dtype (`z` widened exactly
//! for float64). A call on `n` elements takes `2 ceil(n / 2)` words.
//!
//! An element's value depends only on the seed and its position, so a piece of a
//! larger call (a Dask block, a parallel chunk) that starts on an odd element starts
//! with the sine of its pair: the kernels take a start `(offset, phase)`, element `i`
//! being element `phase + i` of the call at `offset`.

use crate::error::check_same_len;
use crate::parallel;
use crate::rng::{self, Isa};
#[cfg(target_arch = "x86_64")]
use crate::rng::Level;
use crate::{Real, Result};

/// `(pi / 4) 2^-24` rounded to float32: the angle of one step of `2g + 1`.
const QUARTER_PI_M24: f32 = std::f32::consts::FRAC_PI_4 / 16_777_216.0;
/// Low 23 bits.
const MANT: u32 = 0x007f_ffff;

/// `ATANH_G[k]`: near-minimax coefficients (weighted Lawson fit, rounded to float32) of
/// `g(t) = (atanh(sqrt t) / sqrt t - 1) / t ~ 1/3 + t/5 + t^2/7` on
/// `t = s^2 <= ((sqrt 2 - 1) / (sqrt 2 + 1))^2 = 0.0294`; relative error of
/// `2s (1 + t g(t))` below 1e-9 before rounding.
const ATANH_G: [u32; 3] = [0x3eaa_aabd, 0x3e4c_af5c, 0x3e18_f18a]; // 0.33333388, 0.19988769, 0.14935890
/// `ln 2 = LN2_HI + LN2_LO`, `LN2_HI = 0.693359375` (9 bits: `e LN2_HI` is exact).
const LN2_HI: f32 = 355.0 / 512.0;
#[allow(clippy::excessive_precision)] // Cephes' split of ln 2, digits as published
const LN2_LO: f32 = -2.121_944_4e-4;

/// The split `u = m 2^(e - bias)` with `m` in [sqrt(1/2), sqrt(2)), by bit operations.
#[inline(always)]
fn split(t: f32, bias: i32) -> (f32, f32) {
    let bits = t.to_bits();
    // m > sqrt(2) (float32 1.41421354 = 0x3fb504f3) iff the mantissa bits exceed sqrt(2)'s;
    // then m / 2, with the exponent one higher.
    let big = (bits & MANT) > 0x0035_04f3;
    let e = ((bits >> 23) as i32) - (127 + bias) + big as i32;
    let m = f32::from_bits((bits & MANT) | if big { 0x3f00_0000 } else { 0x3f80_0000 });
    (m, e as f32)
}

/// `ln(u)` for float32 `u` in `[2^-32, 1]` (normal numbers): `u = m 2^e` with `m` in
/// [sqrt(1/2), sqrt(2)), `s = (m - 1) / (m + 1)` (`|s| <= 0.1716`), `t = s^2`,
/// `ln m = 2 atanh(s) = 2s + (2s t) g(t)` with `ATANH_G`, then
/// `e LN2_HI + (e LN2_LO + ln m)`. One division replaces a degree-8 polynomial: on
/// Zen 1 the divider is idle while the FP pipes are the bottleneck. Within 2 ulp of
/// the correctly rounded value (tested against libm).
#[inline(always)]
pub fn ln_f32(u: f32) -> f32 {
    let (m, ef) = split(u, 0);
    let s = (m - 1.0) / (m + 1.0);
    let a = s * 2.0;
    let t = s * s;
    let g = (f32::from_bits(ATANH_G[2]) * t + f32::from_bits(ATANH_G[1])) * t + f32::from_bits(ATANH_G[0]);
    ef * LN2_HI + (ef * LN2_LO + (a + (a * t) * g))
}

/// `(sin psi, cos psi)` for `psi` in [0, pi/4]: Cephes' `sinf`/`cosf` polynomials
/// (within 2 ulp there, tested against libm).
#[inline(always)]
pub fn sin_cos_f32(psi: f32) -> (f32, f32) {
    let z = psi * psi;
    let s = ((-1.951_529_6e-4 * z + 8.332_161e-3) * z - 1.666_665_5e-1) * z * psi + psi;
    let c = ((2.443_315_7e-5 * z - 1.388_731_6e-3) * z + 4.166_664_6e-2) * z * z - 0.5 * z + 1.0;
    (s, c)
}

/// `-2 ln(u)` for the radius word `w1`: `u = (f32(w1 >> 1) + 0.5) 2^-31` (its top 31
/// bits, so `u >= 2^-32` and `|z| <= 6.66`), equal bit for bit to `-2 * ln_f32(u) + 0`
/// (the `+ 0` makes it +0 rather than -0 at `u = 1`): the same operations on values
/// scaled by powers of two (exact), the `2^-31` folded into the exponent and the `-2`
/// into the constants.
#[inline(always)]
pub fn radius_sq(w1: u32) -> f32 {
    // t = u 2^31 in (0, 2^31): its exponent is e + 31
    let (m, ef) = split(((w1 >> 1) as i32 as f32) + 0.5, 31);
    let s = (m - 1.0) / (m + 1.0);
    let a = s * -4.0; // -2 (2s)
    let t = s * s;
    let g = (f32::from_bits(ATANH_G[2]) * t + f32::from_bits(ATANH_G[1])) * t + f32::from_bits(ATANH_G[0]);
    ef * (-2.0 * LN2_HI) + (ef * (-2.0 * LN2_LO) + (a + (a * t) * g))
}

/// The two standard normal variates `(r cos theta, r sin theta)` of the words
/// `(w1, w2)`.
///
/// `r = sqrt(radius_sq(w1))`. The angle comes from the top 26 bits of `w2`: octant
/// `q = w2 >> 29` and `f = (w2 >> 6) & 0x7fffff`; `g = f` for even `q`,
/// `0x7fffff - f` for odd `q` (the reflection, exact in integers);
/// `psi = f32(2g + 1) * QUARTER_PI_M24` in (0, pi/4); `theta = q pi/4 + psi` (even
/// `q`) or `(q + 1) pi/4 - psi` (odd `q`), i.e. `theta = (w2 >> 6 + 1/2) 2 pi / 2^26`.
/// So `cos theta` and `sin theta` are `+-cos psi` and `+-sin psi`, swapped in octants
/// 1, 2, 5, 6; the cosine is negative in octants 2..5, the sine in 4..7. The signs go
/// on the products `r cos psi`, `r sin psi` (exact). The bit tricks below compute
/// exactly these integers and selections.
#[inline(always)]
pub fn normal_pair(w1: u32, w2: u32) -> (f32, f32) {
    let r = radius_sq(w1).sqrt();
    // all bits flipped in odd octants (bit 29 set): then (v >> 5) & !1 is 2g
    let v = w2 ^ (((w2 << 2) as i32 >> 31) as u32);
    let psi = ((((v >> 5) & 0x00ff_fffe) | 1) as i32 as f32) * QUARTER_PI_M24;
    let (s, c) = sin_cos_f32(psi);
    let swap = (((w2 ^ (w2 << 1)) << 1) as i32) < 0; // bit 30 xor bit 29
    let (a, b) = if swap { (s, c) } else { (c, s) };
    let cos_sign = w2.wrapping_add(1 << 30) & 0x8000_0000; // q + 2 has bit 2 set
    let sin_sign = w2 & 0x8000_0000; // q has bit 2 set
    (f32::from_bits((r * a).to_bits() ^ cos_sign), f32::from_bits((r * b).to_bits() ^ sin_sign))
}

/// Variates (and words) per sub-block of the vector loops.
const SUB: usize = 128;
/// Pairs per sub-block.
const PAIRS: usize = SUB / 2;
/// Sub-blocks per Philox fill: 512 words a call amortise the fill's set-up.
const SUBS: usize = 4;

/// `c[k], s[k] = normal_pair(w1[k], w2[k])`: the vertical loop the compiler vectorises.
#[inline(always)]
fn pairs(w1: &[u32; PAIRS], w2: &[u32; PAIRS], c: &mut [f32; PAIRS], s: &mut [f32; PAIRS]) {
    for k in 0..PAIRS {
        (c[k], s[k]) = normal_pair(w1[k], w2[k]);
    }
}

/// The variates of one step: `z[2k], z[2k + 1]` from `words[2k], words[2k + 1]`.
#[inline(always)]
fn normals_block(words: &[u32; SUB], z: &mut [f32; SUB]) {
    let (mut w1, mut w2) = ([0u32; PAIRS], [0u32; PAIRS]);
    for k in 0..PAIRS {
        (w1[k], w2[k]) = (words[2 * k], words[2 * k + 1]);
    }
    let (mut c, mut s) = ([0f32; PAIRS], [0f32; PAIRS]);
    pairs(&w1, &w2, &mut c, &mut s);
    for k in 0..PAIRS {
        (z[2 * k], z[2 * k + 1]) = (c[k], s[k]);
    }
}

/// [`normals_block`] with the word split and the variate merge done by in-lane
/// shuffles: the compiler's cross-lane permutes for the stride-2 loops cost as much as
/// the whole logarithm on a core with a 128-bit datapath (Zen 1). The pairs are
/// visited in another order (within each group of 8), each computed by the same
/// [`normal_pair`], so the bits are those of [`normals_block`].
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2,fma")]
fn normals_block_avx2(words: &[u32; SUB], z: &mut [f32; SUB]) {
    use std::arch::x86_64::*;
    let (mut w1, mut w2) = ([0u32; PAIRS], [0u32; PAIRS]);
    for g in 0..SUB / 16 {
        // SAFETY: 16g + 16 <= SUB words read and 8g + 8 <= PAIRS written per array
        // (unaligned loads/stores; AVX2 is enabled on this function).
        unsafe {
            let a = _mm256_loadu_ps(words.as_ptr().add(16 * g) as *const f32); // words 0..8 of the group
            let b = _mm256_loadu_ps(words.as_ptr().add(16 * g + 8) as *const f32); // words 8..16
            // per 128-bit lane: [a0 a2 b0 b2 | a4 a6 b4 b6] and [a1 a3 b1 b3 | a5 a7 b5 b7]:
            // the first and second words of pairs 0 1 4 5 | 2 3 6 7 of the group
            _mm256_storeu_ps(w1.as_mut_ptr().add(8 * g) as *mut f32, _mm256_shuffle_ps::<0x88>(a, b));
            _mm256_storeu_ps(w2.as_mut_ptr().add(8 * g) as *mut f32, _mm256_shuffle_ps::<0xDD>(a, b));
        }
    }
    let (mut c, mut s) = ([0f32; PAIRS], [0f32; PAIRS]);
    pairs(&w1, &w2, &mut c, &mut s);
    for g in 0..SUB / 16 {
        // SAFETY: 8g + 8 <= PAIRS read per array, 16g + 16 <= SUB written.
        unsafe {
            let cv = _mm256_loadu_ps(c.as_ptr().add(8 * g));
            let sv = _mm256_loadu_ps(s.as_ptr().add(8 * g));
            // [c0 s0 c1 s1 | c2 s2 c3 s3] of pairs 0 1 | 2 3: elements 0..8; unpackhi
            // gives pairs 4 5 | 6 7: elements 8..16
            _mm256_storeu_ps(z.as_mut_ptr().add(16 * g), _mm256_unpacklo_ps(cv, sv));
            _mm256_storeu_ps(z.as_mut_ptr().add(16 * g + 8), _mm256_unpackhi_ps(cv, sv));
        }
    }
}

/// [`normal_pair`] on two independent sets of eight pairs, the same IEEE operations in
/// the same order (no FMA), so the same bits: lane `k` of `(c[h], s[h])` is
/// `normal_pair(w1[h][k], w2[h][k])`. The two sets are interleaved operation by
/// operation, so their latency chains (through the divider and square root, the
/// bottleneck on Zen 1) overlap: 10% faster than one set after the other.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2,fma")]
fn normal_pairs_avx2(w1: [std::arch::x86_64::__m256i; 2], w2: [std::arch::x86_64::__m256i; 2]) -> ([std::arch::x86_64::__m256; 2], [std::arch::x86_64::__m256; 2]) {
    use std::arch::x86_64::*;
    // `two!(e)`: `[e, e]` with `J` = 0 and 1 (the set), in that order.
    macro_rules! two {
        ($e:expr) => {{
            #[allow(non_upper_case_globals)]
            const J: usize = 0;
            let a = $e;
            [a, { #[allow(non_upper_case_globals)] const J: usize = 1; $e }]
        }};
    }
    let f = _mm256_set1_ps;
    let i = _mm256_set1_epi32;
    // radius_sq: split(f32((w1 >> 1) as i32) + 0.5, 31)
    let t = two!(_mm256_add_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32::<1>(w1[J])), f(0.5)));
    let bits = two!(_mm256_castps_si256(t[J]));
    let mant = two!(_mm256_and_si256(bits[J], i(MANT as i32)));
    let big = two!(_mm256_cmpgt_epi32(mant[J], i(0x0035_04f3))); // -1 where big
    let e = two!(_mm256_sub_epi32(_mm256_sub_epi32(_mm256_srli_epi32::<23>(bits[J]), i(127 + 31)), big[J]));
    let m = two!(_mm256_castsi256_ps(_mm256_or_si256(mant[J], _mm256_blendv_epi8(i(0x3f80_0000), i(0x3f00_0000), big[J]))));
    let ef = two!(_mm256_cvtepi32_ps(e[J]));
    let s = two!(_mm256_div_ps(_mm256_sub_ps(m[J], f(1.0)), _mm256_add_ps(m[J], f(1.0))));
    let a = two!(_mm256_mul_ps(s[J], f(-4.0)));
    let t = two!(_mm256_mul_ps(s[J], s[J]));
    let g = two!(_mm256_add_ps(
        _mm256_mul_ps(_mm256_add_ps(_mm256_mul_ps(f(f32::from_bits(ATANH_G[2])), t[J]), f(f32::from_bits(ATANH_G[1]))), t[J]),
        f(f32::from_bits(ATANH_G[0])),
    ));
    let ln = two!(_mm256_add_ps(_mm256_mul_ps(ef[J], f(-2.0 * LN2_LO)), _mm256_add_ps(a[J], _mm256_mul_ps(_mm256_mul_ps(a[J], t[J]), g[J]))));
    let r = two!(_mm256_sqrt_ps(_mm256_add_ps(_mm256_mul_ps(ef[J], f(-2.0 * LN2_HI)), ln[J])));
    // the angle
    let v = two!(_mm256_xor_si256(w2[J], _mm256_srai_epi32::<31>(_mm256_slli_epi32::<2>(w2[J]))));
    let gi = two!(_mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32::<5>(v[J]), i(0x00ff_fffe)), i(1)));
    let psi = two!(_mm256_mul_ps(_mm256_cvtepi32_ps(gi[J]), f(QUARTER_PI_M24)));
    let z = two!(_mm256_mul_ps(psi[J], psi[J]));
    let sp = two!(_mm256_sub_ps(_mm256_mul_ps(_mm256_add_ps(_mm256_mul_ps(f(-1.951_529_6e-4), z[J]), f(8.332_161e-3)), z[J]), f(1.666_665_5e-1)));
    let sn = two!(_mm256_add_ps(_mm256_mul_ps(_mm256_mul_ps(sp[J], z[J]), psi[J]), psi[J]));
    let cp = two!(_mm256_add_ps(_mm256_mul_ps(_mm256_sub_ps(_mm256_mul_ps(f(2.443_315_7e-5), z[J]), f(1.388_731_6e-3)), z[J]), f(4.166_664_6e-2)));
    let cs = two!(_mm256_add_ps(_mm256_sub_ps(_mm256_mul_ps(_mm256_mul_ps(cp[J], z[J]), z[J]), _mm256_mul_ps(f(0.5), z[J])), f(1.0)));
    let swap = two!(_mm256_castsi256_ps(_mm256_slli_epi32::<1>(_mm256_xor_si256(w2[J], _mm256_slli_epi32::<1>(w2[J]))))); // sign bit: swap
    let ca = two!(_mm256_blendv_ps(cs[J], sn[J], swap[J]));
    let sb = two!(_mm256_blendv_ps(sn[J], cs[J], swap[J]));
    let sign = i(0x8000_0000u32 as i32);
    let cos_sign = two!(_mm256_castsi256_ps(_mm256_and_si256(_mm256_add_epi32(w2[J], i(1 << 30)), sign)));
    let sin_sign = two!(_mm256_castsi256_ps(_mm256_and_si256(w2[J], sign)));
    let c = two!(_mm256_xor_ps(_mm256_mul_ps(r[J], ca[J]), cos_sign[J]));
    let s = two!(_mm256_xor_ps(_mm256_mul_ps(r[J], sb[J]), sin_sign[J]));
    (c, s)
}

/// How a variate is applied to an element (both in the element's dtype).
trait NoiseMap<T>: Copy + Send + Sync {
    /// `v (1 + s z)` rather than `v + s z`.
    const MUL: bool;
    fn apply(self, v: T, z: T) -> T;
    /// The scale `s`.
    fn scale(self) -> T;
}

/// `v (1 + s z)`.
#[derive(Clone, Copy)]
struct Mul<T>(T);
/// `v + s z`.
#[derive(Clone, Copy)]
struct Add<T>(T);

impl<T: Real> NoiseMap<T> for Mul<T> {
    const MUL: bool = true;
    #[inline(always)]
    fn scale(self) -> T {
        self.0
    }
    #[inline(always)]
    fn apply(self, v: T, z: T) -> T {
        v * (T::one() + self.0 * z)
    }
}

impl<T: Real> NoiseMap<T> for Add<T> {
    const MUL: bool = false;
    #[inline(always)]
    fn scale(self) -> T {
        self.0
    }
    #[inline(always)]
    fn apply(self, v: T, z: T) -> T {
        v + self.0 * z
    }
}

/// One chunk: `out[i] = m(x[i], z)` for elements `first ..` of the call at `offset`
/// (`first = phase + the chunk's start`): Philox words for `SUBS * SUB` elements, their
/// variates by `normals` a sub-block at a time, then the map, all in L1.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn chunk_generic<T: Real, M: NoiseMap<T>>(
    isa: Isa,
    normals: impl Fn(&[u32; SUB], &mut [f32; SUB]),
    x: &[T],
    out: &mut [T],
    m: M,
    seed: u64,
    offset: u64,
    first: u64,
) {
    let mut words = [[0u32; SUB]; SUBS];
    let mut z = [[0.0f32; SUB]; SUBS];
    let (mut x, mut out) = (x, out);
    // Pair of element `first`: words `offset + 2 * (first / 2)` and the next.
    let mut word = offset.wrapping_add(first & !1);
    if first & 1 == 1 && !x.is_empty() {
        // Starts on the sine of a pair (an odd element of the call).
        rng::fill_words_with(isa, seed, word, &mut words[0][..2]);
        let (_, s) = normal_pair(words[0][0], words[0][1]);
        out[0] = m.apply(x[0], T::of(s as f64));
        (x, out) = (&x[1..], &mut out[1..]);
        word = word.wrapping_add(2);
    }
    for (xb, ob) in x.chunks(SUB * SUBS).zip(out.chunks_mut(SUB * SUBS)) {
        let n = ob.len();
        let nw = n + (n & 1); // a final odd element still reads its pair
        rng::fill_words_with(isa, seed, word, &mut words.as_flattened_mut()[..nw]);
        for (w, zs) in words.iter().zip(z.iter_mut()).take(n.div_ceil(SUB)) {
            normals(w, zs);
        }
        for ((o, &v), &zi) in ob.iter_mut().zip(xb).zip(z.as_flattened()) {
            *o = m.apply(v, T::of(zi as f64));
        }
        word = word.wrapping_add(nw as u64);
    }
}

/// Elements (and words) per step of [`chunk_avx2`]: one [`Keys::rows`](rng::avx2::Keys::rows).
#[cfg(target_arch = "x86_64")]
const STEP: usize = 8 * rng::avx2::ROWS;

/// The AVX2 chunk: on a stream offset that is even, after at most one odd element and
/// one pair that reach a block boundary, each step takes its [`STEP`] words straight
/// from [`Keys::rows`](rng::avx2::Keys::rows) (registers, stream order), splits each
/// two rows into the first and second words of eight pairs by an in-lane shuffle
/// (pairs 0 1 4 5 | 2 3 6 7, as [`normals_block_avx2`]), runs [`normal_pairs_avx2`] and
/// merges back by in-lane unpacks into elements in order; float32 applies the map in
/// registers. The final partial step and odd stream offsets take the plain path. Every
/// variate is [`normal_pair`]'s, so the bits are those of [`chunk_generic`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn chunk_avx2<T: Real, M: NoiseMap<T>>(isa: Isa, x: &[T], out: &mut [T], m: M, seed: u64, offset: u64, first: u64) {
    use rng::avx2::{Keys, ROWS, STEP_BLOCKS};
    use std::arch::x86_64::*;
    let mut word = offset.wrapping_add(first & !1);
    if word & 1 == 1 {
        // Pairs straddle Philox blocks: the buffered path.
        // (a safe call: this function has the features `normals_block_avx2` needs)
        return chunk_generic(isa, |w: &[u32; SUB], z: &mut [f32; SUB]| normals_block_avx2(w, z), x, out, m, seed, offset, first);
    }
    let (mut x, mut out) = (x, out);
    let pair = |w: u64| normal_pair(rng::word(seed, w), rng::word(seed, w.wrapping_add(1)));
    if first & 1 == 1 && !x.is_empty() {
        // Starts on the sine of a pair (an odd element of the call).
        out[0] = m.apply(x[0], T::of(pair(word).1 as f64));
        (x, out) = (&x[1..], &mut out[1..]);
        word = word.wrapping_add(2);
    }
    if word & 2 != 0 && !x.is_empty() {
        // One pair to the block boundary.
        let (c, s) = pair(word);
        out[0] = m.apply(x[0], T::of(c as f64));
        if x.len() > 1 {
            out[1] = m.apply(x[1], T::of(s as f64));
        }
        let k = x.len().min(2);
        (x, out) = (&x[k..], &mut out[k..]);
        word = word.wrapping_add(2);
    }
    let steps = x.len() / STEP;
    let f32_out = std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>();
    let scale = _mm256_set1_ps(m.scale().f64() as f32); // exact for float32
    let one = _mm256_set1_ps(1.0);
    let mut keys = Keys::new(seed);
    let first_block = word / 4;
    for k in 0..steps {
        let rows = keys.rows(first_block.wrapping_add((k * STEP_BLOCKS) as u64));
        let (mut w1, mut w2) = ([_mm256_setzero_si256(); 2], [_mm256_setzero_si256(); 2]);
        for h in 0..ROWS / 2 {
            let (a, b) = (_mm256_castsi256_ps(rows[2 * h]), _mm256_castsi256_ps(rows[2 * h + 1]));
            w1[h] = _mm256_castps_si256(_mm256_shuffle_ps::<0x88>(a, b));
            w2[h] = _mm256_castps_si256(_mm256_shuffle_ps::<0xDD>(a, b));
        }
        let (c, s) = normal_pairs_avx2(w1, w2);
        let mut z = [_mm256_setzero_ps(); ROWS];
        for h in 0..ROWS / 2 {
            z[2 * h] = _mm256_unpacklo_ps(c[h], s[h]);
            z[2 * h + 1] = _mm256_unpackhi_ps(c[h], s[h]);
        }
        let base = k * STEP;
        if f32_out {
            for (q, zq) in z.iter().enumerate() {
                // SAFETY: T is f32 (checked above), and base + 8q + 8 <= steps * STEP <=
                // x.len() == out.len() elements are read and written (unaligned).
                unsafe {
                    let xp = (x.as_ptr() as *const f32).add(base + 8 * q);
                    let op = (out.as_mut_ptr() as *mut f32).add(base + 8 * q);
                    let v = _mm256_loadu_ps(xp);
                    let sz = _mm256_mul_ps(scale, *zq);
                    let r = if M::MUL { _mm256_mul_ps(v, _mm256_add_ps(one, sz)) } else { _mm256_add_ps(v, sz) };
                    _mm256_storeu_ps(op, r);
                }
            }
        } else {
            let mut zs = [0f32; STEP];
            for (q, zq) in z.iter().enumerate() {
                // SAFETY: 8q + 8 <= STEP floats written.
                unsafe { _mm256_storeu_ps(zs.as_mut_ptr().add(8 * q), *zq) };
            }
            for ((o, &v), &zi) in out[base..base + STEP].iter_mut().zip(&x[base..base + STEP]).zip(&zs) {
                *o = m.apply(v, T::of(zi as f64));
            }
        }
    }
    let done = steps * STEP;
    let (x, out) = (&x[done..], &mut out[done..]);
    let mut word = word.wrapping_add(done as u64);
    for (xp, op) in x.chunks(2).zip(out.chunks_mut(2)) {
        let (c, s) = pair(word);
        op[0] = m.apply(xp[0], T::of(c as f64));
        if xp.len() > 1 {
            op[1] = m.apply(xp[1], T::of(s as f64));
        }
        word = word.wrapping_add(2);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq,avx2,fma")]
fn chunk_avx512<T: Real, M: NoiseMap<T>>(isa: Isa, x: &[T], out: &mut [T], m: M, seed: u64, offset: u64, first: u64) {
    chunk_generic(isa, normals_block, x, out, m, seed, offset, first)
}

/// [`chunk_generic`] compiled for `isa` (its Philox words come from the same `isa`).
fn chunk<T: Real, M: NoiseMap<T>>(isa: Isa, x: &[T], out: &mut [T], m: M, seed: u64, offset: u64, first: u64) {
    match isa.level() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: an `Isa` of level Avx2 exists only when AVX2 and FMA were detected
        // (`rng::Isa::new`): the features `chunk_avx2` enables.
        Level::Avx2 => unsafe { chunk_avx2(isa, x, out, m, seed, offset, first) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: an `Isa` of level Avx512 exists only when AVX-512F/BW/DQ, AVX2 and
        // FMA were detected (`rng::Isa::new`): a superset of what this function enables.
        Level::Avx512 => unsafe { chunk_avx512(isa, x, out, m, seed, offset, first) },
        _ => chunk_generic(isa, normals_block, x, out, m, seed, offset, first),
    }
}

/// `out[i] = m(x[i], z_{phase + i})`, `z_j` the j-th variate of the call at `offset`.
fn normal_map<T: Real, M: NoiseMap<T>>(isa: Isa, x: &[T], out: &mut [T], m: M, seed: u64, offset: u64, phase: u8) -> Result<()> {
    check_same_len("gaussian noise input and output lengths", x.len(), out.len())?;
    let phase = u64::from(phase & 1);
    parallel::zip_chunks(x, out, |start, xc, oc| chunk(isa, xc, oc, m, seed, offset, phase + start as u64));
    Ok(())
}

/// Words a call on `n` elements starting at `phase` (0 or 1) takes from `offset`:
/// `2 ceil((phase + n) / 2)` (the pairs it touches).
pub fn words_for(n: usize, phase: u8) -> u64 {
    let e = n as u64 + u64::from(phase & 1);
    e + (e & 1)
}

/// Gaussian dropout: `out = x * (1 + sigma z)`, element `i` taking variate `phase + i`
/// of the call at `offset`, on an explicit instruction set. Its backward is the same
/// map on the gradient (`dx = dy * (1 + sigma z)`), with the same start.
pub fn gaussian_dropout_with<T: Real>(isa: Isa, x: &[T], out: &mut [T], sigma: f64, seed: u64, offset: u64, phase: u8) -> Result<()> {
    normal_map(isa, x, out, Mul(T::of(sigma)), seed, offset, phase)
}

/// Additive noise `out = x + stddev z` (its backward passes the gradient through).
pub fn gaussian_noise_with<T: Real>(isa: Isa, x: &[T], out: &mut [T], stddev: f64, seed: u64, offset: u64, phase: u8) -> Result<()> {
    normal_map(isa, x, out, Add(T::of(stddev)), seed, offset, phase)
}

/// [`gaussian_dropout_with`] on this CPU's instruction set.
pub fn gaussian_dropout_at<T: Real>(x: &[T], out: &mut [T], sigma: f64, seed: u64, offset: u64, phase: u8) -> Result<()> {
    gaussian_dropout_with(rng::isa(), x, out, sigma, seed, offset, phase)
}

/// [`gaussian_noise_with`] on this CPU's instruction set.
pub fn gaussian_noise_at<T: Real>(x: &[T], out: &mut [T], stddev: f64, seed: u64, offset: u64, phase: u8) -> Result<()> {
    gaussian_noise_with(rng::isa(), x, out, stddev, seed, offset, phase)
}

/// Gaussian dropout of a whole call (phase 0).
pub fn gaussian_dropout<T: Real>(x: &[T], out: &mut [T], sigma: f64, seed: u64, offset: u64) -> Result<()> {
    gaussian_dropout_at(x, out, sigma, seed, offset, 0)
}

/// Additive Gaussian noise of a whole call (phase 0).
pub fn gaussian_noise<T: Real>(x: &[T], out: &mut [T], stddev: f64, seed: u64, offset: u64) -> Result<()> {
    gaussian_noise_at(x, out, stddev, seed, offset, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The variate `j` of the call at `offset`, from single words (the definition).
    fn variate(seed: u64, offset: u64, j: u64) -> f32 {
        let base = offset.wrapping_add(j & !1);
        let (c, s) = normal_pair(rng::word(seed, base), rng::word(seed, base.wrapping_add(1)));
        if j & 1 == 0 {
            c
        } else {
            s
        }
    }

    fn words_sample(n: u64) -> impl Iterator<Item = u32> + Clone {
        (0..n).map(|k| (k.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as u32)
    }


    /// `u` of the radius word, as the definition states it.
    fn unit(w1: u32) -> f32 {
        (((w1 >> 1) as i32 as f32) + 0.5) * (1.0 / 2_147_483_648.0)
    }

    /// [`normal_pair`] written out plainly (octant, reflection, swap and signs by
    /// branches), from `ln_f32` rather than the folded `radius_sq`.
    fn normal_pair_plain(w1: u32, w2: u32) -> (f32, f32) {
        let r = (-2.0 * ln_f32(unit(w1)) + 0.0).sqrt();
        let q = w2 >> 29;
        let f = (w2 >> 6) & 0x7f_ffff;
        let g = if q % 2 == 1 { 0x7f_ffff - f } else { f };
        let psi = ((2 * g + 1) as f32) * QUARTER_PI_M24;
        let (s, c) = sin_cos_f32(psi);
        let (cos_t, sin_t) = match q {
            0 => (c, s),
            1 => (s, c),
            2 => (-s, c),
            3 => (-c, s),
            4 => (-c, -s),
            5 => (-s, -c),
            6 => (s, -c),
            _ => (c, -s),
        };
        (r * cos_t, r * sin_t)
    }

    fn ulps(a: f32, exact: f64) -> f64 {
        // distance in units of the float32 spacing at the exact value
        let spacing = (exact.abs() as f32).max(f32::MIN_POSITIVE);
        let ulp = f32::from_bits(spacing.to_bits() + 1) - spacing;
        (a as f64 - exact).abs() / ulp as f64
    }

    const EDGE_WORDS: [u32; 12] = [0, 1, 2, 3, 255, 1 << 23, (1 << 24) + 1, 1 << 31, u32::MAX - 200, u32::MAX - 1, u32::MAX, 0x6a09_e667];

    #[test]
    fn ln_is_within_2_ulp_of_libm() {
        let mut worst: f64 = 0.0;
        for w in words_sample(400_000).chain(EDGE_WORDS) {
            let u = unit(w);
            if u == 1.0 {
                assert_eq!(ln_f32(u), 0.0);
                continue;
            }
            worst = worst.max(ulps(ln_f32(u), (u as f64).ln()));
        }
        // the neighbourhood of 1 (cancellation) and both sides of the sqrt(2) split
        for k in 1..4096u32 {
            for u in [1.0 - k as f32 * 2f32.powi(-24), f32::from_bits(0x3fb5_04f3 - 2048 + k) / 2.0] {
                worst = worst.max(ulps(ln_f32(u), (u as f64).ln()));
            }
        }
        // every exponent a word gives, both sides of the split
        for k in 0..=32 {
            let below_sqrt2 = f32::from_bits(0x3fb5_04f3); // the split: m > this is halved
            let above_sqrt2 = f32::from_bits(0x3fb5_04f4);
            let scale = (-(k as f32 + 1.0)).exp2();
            for u in [(-(k as f32)).exp2(), 1.5 * scale, below_sqrt2 * scale, above_sqrt2 * scale] {
                worst = worst.max(ulps(ln_f32(u), (u as f64).ln()));
            }
        }
        assert!(worst <= 2.0, "ln: {worst} ulp");
    }

    #[test]
    fn radius_sq_is_minus_twice_ln_bit_for_bit() {
        for w in words_sample(1_000_000).chain(EDGE_WORDS).chain((0..4096).map(|k| u32::MAX - 2 * k)) {
            let want = -2.0 * ln_f32(unit(w)) + 0.0; // +0, not -0, at u = 1
            assert_eq!(radius_sq(w).to_bits(), want.to_bits(), "w = {w:#x}");
        }
    }

    #[test]
    fn sin_cos_are_within_2_ulp_of_libm() {
        let (mut ws, mut wc): (f64, f64) = (0.0, 0.0);
        for g in (0..(1u32 << 23)).step_by(37).chain([0, (1 << 23) - 1]) {
            let psi = ((2 * g + 1) as f32) * QUARTER_PI_M24;
            let (s, c) = sin_cos_f32(psi);
            ws = ws.max(ulps(s, (psi as f64).sin()));
            wc = wc.max(ulps(c, (psi as f64).cos()));
        }
        assert!(ws <= 2.0 && wc <= 2.0, "sin {ws} ulp, cos {wc} ulp");
    }

    #[test]
    fn the_bit_tricks_are_the_plain_definition() {
        let w2s = words_sample(300_000).map(|w| w.rotate_left(11)).chain(EDGE_WORDS).chain((0..8).flat_map(|q| [q << 29, (q << 29) | 0x1fff_ffff]));
        let w1s: Vec<u32> = words_sample(400_000).chain(EDGE_WORDS).collect();
        for (w1, w2) in w1s.iter().copied().cycle().zip(w2s) {
            let (c, s) = normal_pair(w1, w2);
            let (pc, ps) = normal_pair_plain(w1, w2);
            assert_eq!((c.to_bits(), s.to_bits()), (pc.to_bits(), ps.to_bits()), "{w1:#x} {w2:#x}");
        }
    }

    #[test]
    fn pairs_are_close_to_the_exact_box_muller() {
        // r cos(theta), r sin(theta) in f64 from the same u and angle bits.
        let mut worst: f64 = 0.0;
        for (w1, w2) in words_sample(200_000).zip(words_sample(200_001).skip(1).map(|w| w.rotate_left(7))) {
            let u = unit(w1) as f64;
            let r = (-2.0 * u.ln()).sqrt();
            let theta = ((w2 >> 6) as f64 + 0.5) * std::f64::consts::TAU / (1u64 << 26) as f64;
            let (c, s) = normal_pair(w1, w2);
            worst = worst.max((c as f64 - r * theta.cos()).abs().max((s as f64 - r * theta.sin()).abs()) / r.max(1.0));
        }
        // a few float32 ulp of max(r, 1)
        assert!(worst < 1e-6, "{worst}");
    }

    #[test]
    fn octants_give_the_right_signs_and_order() {
        // theta in the middle of octant q: check the quadrant of (cos, sin).
        for q in 0..8u32 {
            let w2 = (q << 29) | (1 << 28);
            let (c, s) = normal_pair(1 << 30, w2); // u ~ 1/4: r ~ 1.67
            let theta = (q as f64 + 0.5) * std::f64::consts::FRAC_PI_4;
            let r = (-2.0 * (0.25f64).ln()).sqrt();
            assert!((c as f64 - r * theta.cos()).abs() < 1e-5, "q={q} cos {c}");
            assert!((s as f64 - r * theta.sin()).abs() < 1e-5, "q={q} sin {s}");
        }
    }

    #[test]
    fn matches_the_definition_for_any_isa_thread_count_and_start() {
        let n = 3 * parallel::CHUNK + 11;
        let x: Vec<f64> = (0..n).map(|i| (i % 17) as f64 - 8.0).collect();
        let xf: Vec<f32> = x.iter().map(|&v| v as f32).collect();
        for phase in [0u8, 1] {
            let want: Vec<f64> = (0..n).map(|i| x[i] * (1.0 + 0.5 * variate(4, 10, phase as u64 + i as u64) as f64)).collect();
            let want_f: Vec<f32> = (0..n).map(|i| xf[i] + 0.25f32 * variate(4, 10, phase as u64 + i as u64)).collect();
            for isa in rng::available_isas() {
                for threads in [1, 3] {
                    parallel::set_num_threads(threads).unwrap();
                    let mut out = vec![0.0; n];
                    gaussian_dropout_with(isa, &x, &mut out, 0.5, 4, 10, phase).unwrap();
                    assert_eq!(out, want, "{} {threads} {phase}", isa.name());
                    let mut of = vec![0.0f32; n];
                    gaussian_noise_with(isa, &xf, &mut of, 0.25, 4, 10, phase).unwrap();
                    assert_eq!(of, want_f, "{} {threads} {phase}", isa.name());
                }
            }
        }
        parallel::set_num_threads(2).unwrap();
    }

    #[test]
    fn every_isa_matches_the_definition_around_steps_starts_and_offsets() {
        // Lengths around the AVX2 step (32) and its head (odd element, pair to a block
        // boundary), stream offsets of every residue mod 4 (odd ones take the buffered
        // path), and a counter whose low word wraps inside a step. (One chunk each.)
        let wrap = (u32::MAX as u64 - 5) * 4;
        for offset in [0u64, 1, 2, 3, 6, 4 * 1000 + 2, wrap, wrap + 2, wrap + 3] {
            for n in [0usize, 1, 2, 3, 4, 5, 31, 32, 33, 34, 35, 36, 63, 64, 65, 66, 67, 97, 200] {
                for phase in [0u8, 1] {
                    let x: Vec<f32> = (0..n).map(|i| (i % 13) as f32 - 6.0).collect();
                    let xd: Vec<f64> = x.iter().map(|&v| v as f64).collect();
                    let z = |i: usize| variate(3, offset, phase as u64 + i as u64);
                    let want_mul: Vec<f32> = (0..n).map(|i| x[i] * (1.0 + 0.75f32 * z(i))).collect();
                    let want_add: Vec<f32> = (0..n).map(|i| x[i] + 0.25f32 * z(i)).collect();
                    let want_d: Vec<f64> = (0..n).map(|i| xd[i] * (1.0 + 0.5 * z(i) as f64)).collect();
                    for isa in rng::available_isas() {
                        let what = format!("{} offset {offset} n {n} phase {phase}", isa.name());
                        let mut o = vec![0f32; n];
                        gaussian_dropout_with(isa, &x, &mut o, 0.75, 3, offset, phase).unwrap();
                        assert_eq!(o, want_mul, "mul {what}");
                        gaussian_noise_with(isa, &x, &mut o, 0.25, 3, offset, phase).unwrap();
                        assert_eq!(o, want_add, "add {what}");
                        let mut od = vec![0f64; n];
                        gaussian_dropout_with(isa, &xd, &mut od, 0.5, 3, offset, phase).unwrap();
                        assert_eq!(od, want_d, "f64 {what}");
                    }
                }
            }
        }
    }

    #[test]
    fn any_piece_reproduces_the_whole_call() {
        let n = 1001;
        let x = vec![0.0f32; n];
        let mut whole = vec![0.0f32; n];
        gaussian_noise(&x, &mut whole, 1.0, 9, 7).unwrap();
        for (a, b) in [(0, 1), (1, 2), (1, 1000), (3, 700), (254, 1001), (129, 130), (1000, 1001)] {
            let mut part = vec![0.0f32; b - a];
            gaussian_noise_at(&x[a..b], &mut part, 1.0, 9, 7 + 2 * (a as u64 / 2), (a % 2) as u8).unwrap();
            assert_eq!(part, whole[a..b], "{a}..{b}");
        }
        assert_eq!(words_for(n, 0), 1002);
        assert_eq!(words_for(n, 1), 1002);
        assert_eq!(words_for(4, 1), 6);
    }

    #[test]
    fn noise_has_the_right_moments() {
        let n = 400_000;
        let mut z = vec![0.0f64; n];
        gaussian_noise(&vec![0.0; n], &mut z, 1.0, 1, 0).unwrap();
        let mean = z.iter().sum::<f64>() / n as f64;
        let var = z.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n as f64;
        let kurt = z.iter().map(|v| (v - mean).powi(4)).sum::<f64>() / n as f64 / (var * var);
        // 6-sigma bounds of the sampling distributions of mean, variance and kurtosis.
        assert!(mean.abs() < 6.0 / (n as f64).sqrt(), "{mean}");
        assert!((var - 1.0).abs() < 6.0 * (2.0 / n as f64).sqrt(), "{var}");
        assert!((kurt - 3.0).abs() < 6.0 * (24.0 / n as f64).sqrt(), "{kurt}");
    }
}
