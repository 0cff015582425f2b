//! AVX2 element dropout with the random words never leaving the registers. A
//! step runs eight Philox blocks ([`Keys::rows`]): four rows of eight words, each
//! row the 16-bit lanes of 16 consecutive elements in element order. Per row,
//! `min_epu16` + `cmpeq_epi16` give the 16-bit keep masks (`u <= last kept
//! lane`), sign extension widens each half to the element width, and a multiply
//! plus an AND (or, for affine maps, an add and a blend) finish 8 (f32) or 4 (f64)
//! elements per vector, stored plainly or streamed. No word buffer, no
//! cross-lane shuffle. When `T_lo != 0` a lane equal to `T_hi` is a tie: one
//! `cmpeq` per row is OR-accumulated and a (rare) nonzero step settles its ties
//! with the tie word before anything is stored.
//!
//! The chunk's first step may start inside a block and its last may be short:
//! those run the same Philox step and finish the elements they cover one by one.

use super::fused::{self, Typed};
use super::{Linear, Src};
use crate::rng::avx2::{Keys, ROWS, STEP_BLOCKS};
use crate::rng::HalfPos;
use crate::Real;
use std::arch::x86_64::*;

/// Elements per step (eight blocks of eight half-words).
const STEP: usize = 8 * STEP_BLOCKS;
/// Elements per row.
const ROW: usize = STEP / ROWS;

/// Plain (unaligned) stores.
const PLAIN: u8 = 0;
/// 32-byte non-temporal stores (the output is 32-byte aligned).
const STREAM32: u8 = 1;
/// Two 16-byte non-temporal stores per vector (the output is 16-byte aligned).
const STREAM16: u8 = 2;

/// A [`Linear`] map broadcast to vectors (as bits; f32x8 or f64x4).
#[derive(Clone, Copy)]
struct Consts {
    a: __m256i,
    b: __m256i,
    dropped: __m256i,
}

/// The element types with a fused row: f32 and f64.
trait Lanes: Real {
    /// `v` in every lane.
    ///
    /// # Safety
    /// AVX2 is available.
    unsafe fn splat(v: Self) -> __m256i;

    /// The 16 elements of one row: `o[i] = keep_i ? x[i] * a (+ b) : dropped`,
    /// where 16-bit lane `i` of `k` is all ones (keep) or all zeros. Without
    /// `AFFINE` the dropped value is `+0.0`, chosen by an AND.
    ///
    /// # Safety
    /// AVX2 is available; `x` is readable and `o` writable for 16 elements (they
    /// may be the same address, not otherwise overlapping); with `STREAM32`
    /// (`STREAM16`) `o` is 32-byte (16-byte) aligned.
    unsafe fn row<const AFFINE: bool, const STORE: u8>(k: __m256i, x: *const Self, o: *mut Self, c: &Consts);
}

impl Lanes for f32 {
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn splat(v: f32) -> __m256i {
        _mm256_castps_si256(_mm256_set1_ps(v))
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn row<const AFFINE: bool, const STORE: u8>(k: __m256i, x: *const f32, o: *mut f32, c: &Consts) {
        let masks = [_mm256_cvtepi16_epi32(_mm256_castsi256_si128(k)), _mm256_cvtepi16_epi32(_mm256_extracti128_si256::<1>(k))];
        for (h, m) in masks.into_iter().enumerate() {
            // SAFETY (all pointer uses): elements 8h .. 8h + 8 < 16 of `x` / `o`.
            let y = _mm256_mul_ps(unsafe { _mm256_loadu_ps(x.add(8 * h)) }, _mm256_castsi256_ps(c.a));
            let r = if AFFINE {
                let y = _mm256_add_ps(y, _mm256_castsi256_ps(c.b));
                _mm256_blendv_ps(_mm256_castsi256_ps(c.dropped), y, _mm256_castsi256_ps(m))
            } else {
                _mm256_and_ps(_mm256_castsi256_ps(m), y)
            };
            // SAFETY: element 8h < 16 of the row the caller gave.
            let p = unsafe { o.add(8 * h) };
            // SAFETY: `p` is writable for 8 elements; the caller guarantees the
            // alignment each streaming mode needs (8h elements keep it: 32 bytes).
            unsafe {
                match STORE {
                    STREAM32 => _mm256_stream_ps(p, r),
                    STREAM16 => {
                        _mm_stream_ps(p, _mm256_castps256_ps128(r));
                        _mm_stream_ps(p.add(4), _mm256_extractf128_ps::<1>(r));
                    }
                    _ => _mm256_storeu_ps(p, r),
                }
            }
        }
    }
}

impl Lanes for f64 {
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn splat(v: f64) -> __m256i {
        _mm256_castpd_si256(_mm256_set1_pd(v))
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn row<const AFFINE: bool, const STORE: u8>(k: __m256i, x: *const f64, o: *mut f64, c: &Consts) {
        let (lo, hi) = (_mm256_castsi256_si128(k), _mm256_extracti128_si256::<1>(k));
        let masks = [
            _mm256_cvtepi16_epi64(lo),
            _mm256_cvtepi16_epi64(_mm_unpackhi_epi64(lo, lo)),
            _mm256_cvtepi16_epi64(hi),
            _mm256_cvtepi16_epi64(_mm_unpackhi_epi64(hi, hi)),
        ];
        for (h, m) in masks.into_iter().enumerate() {
            // SAFETY (all pointer uses): elements 4h .. 4h + 4 < 16 of `x` / `o`.
            let y = _mm256_mul_pd(unsafe { _mm256_loadu_pd(x.add(4 * h)) }, _mm256_castsi256_pd(c.a));
            let r = if AFFINE {
                let y = _mm256_add_pd(y, _mm256_castsi256_pd(c.b));
                _mm256_blendv_pd(_mm256_castsi256_pd(c.dropped), y, _mm256_castsi256_pd(m))
            } else {
                _mm256_and_pd(_mm256_castsi256_pd(m), y)
            };
            // SAFETY: element 4h < 16 of the row the caller gave.
            let p = unsafe { o.add(4 * h) };
            // SAFETY: `p` is writable for 4 elements; 4h f64 = 32h bytes keep the
            // alignment the caller guarantees for the streaming modes.
            unsafe {
                match STORE {
                    STREAM32 => _mm256_stream_pd(p, r),
                    STREAM16 => {
                        _mm_stream_pd(p, _mm256_castpd256_pd128(r));
                        _mm_stream_pd(p.add(2), _mm256_extractf128_pd::<1>(r));
                    }
                    _ => _mm256_storeu_pd(p, r),
                }
            }
        }
    }
}

/// Runs one chunk on the fused path if the element type and map have one (see
/// [`fused::typed`]); returns false, touching nothing, otherwise.
///
/// # Safety
/// AVX2 and FMA are available.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn run<T: Real>(src: Src<'_, T>, out: &mut [T], stream: bool, t: u32, lin: Linear<T>, seed: u64, start: HalfPos) -> bool {
    // SAFETY (each arm): `typed` gives pointers valid for `c.n` elements of the named
    // type (a slice each, or one `&mut` slice for both in place); the caller
    // guarantees AVX2 and FMA.
    unsafe {
        match fused::typed(src, out, lin) {
            Some(Typed::F32(c)) if c.affine => chunk::<f32, true>(c.x, c.o, c.n, stream, t, c.lin, seed, start),
            Some(Typed::F32(c)) => chunk::<f32, false>(c.x, c.o, c.n, stream, t, c.lin, seed, start),
            Some(Typed::F64(c)) if c.affine => chunk::<f64, true>(c.x, c.o, c.n, stream, t, c.lin, seed, start),
            Some(Typed::F64(c)) => chunk::<f64, false>(c.x, c.o, c.n, stream, t, c.lin, seed, start),
            None => return false,
        }
    }
    true
}

/// A chunk's round keys and broadcast constants.
struct State<T> {
    keys: Keys,
    c: Consts,
    _t: std::marker::PhantomData<T>,
}

impl<T: Lanes> fused::Steps<T> for State<T> {
    const STEP: usize = STEP;

    #[inline(always)]
    unsafe fn partial(&mut self, x: *const T, o: *mut T, n: usize, lead: usize, t: u32, lin: &Linear<T>, seed: u64, pos: HalfPos) {
        let u = lanes(&mut self.keys, pos);
        // SAFETY: the caller's guarantee, for `n` elements.
        unsafe { fused::finish(&u[lead..lead + n], x, o, t, lin, seed, pos) }
    }

    #[inline(always)]
    unsafe fn steps<const AFFINE: bool>(&mut self, x: *const T, o: *mut T, steps: usize, stream: bool, t: u32, seed: u64, pos: HalfPos) {
        let mode = match o as usize % 32 {
            _ if !stream => PLAIN,
            0 => STREAM32,
            16 => STREAM16,
            _ => PLAIN,
        };
        let ties = t & 0xffff != 0;
        // SAFETY: `pos` is block-aligned here; the step range lies in the chunk;
        // `mode` matches the alignment of `o` (rows keep it: 16 elements).
        unsafe {
            match (ties, mode) {
                (false, PLAIN) => body::<T, AFFINE, false, PLAIN>(&mut self.keys, x, o, steps, t, &self.c, seed, pos),
                (false, STREAM32) => body::<T, AFFINE, false, STREAM32>(&mut self.keys, x, o, steps, t, &self.c, seed, pos),
                (false, _) => body::<T, AFFINE, false, STREAM16>(&mut self.keys, x, o, steps, t, &self.c, seed, pos),
                (true, PLAIN) => body::<T, AFFINE, true, PLAIN>(&mut self.keys, x, o, steps, t, &self.c, seed, pos),
                (true, STREAM32) => body::<T, AFFINE, true, STREAM32>(&mut self.keys, x, o, steps, t, &self.c, seed, pos),
                (true, _) => body::<T, AFFINE, true, STREAM16>(&mut self.keys, x, o, steps, t, &self.c, seed, pos),
            }
        }
    }
}

/// # Safety
/// AVX2 and FMA are available; `x` readable and `o` writable for `n` elements, equal
/// or not overlapping.
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn chunk<T: Lanes, const AFFINE: bool>(
    x: *const T,
    o: *mut T,
    n: usize,
    stream: bool,
    t: u32,
    lin: Linear<T>,
    seed: u64,
    start: HalfPos,
) {
    // SAFETY: this function enables the instruction set; the caller guarantees the rest.
    unsafe {
        let c = Consts { a: T::splat(lin.a), b: T::splat(lin.b.unwrap_or(T::zero())), dropped: T::splat(lin.dropped) };
        let mut s = State::<T> { keys: Keys::new(seed), c, _t: std::marker::PhantomData };
        fused::chunk::<T, State<T>, AFFINE>(&mut s, x, o, n, stream, t, &lin, seed, start)
    }
}

/// Whole steps from the block-aligned position `pos`.
///
/// # Safety
/// `x` readable and `o` writable for `steps * STEP` elements (equal or disjoint);
/// `o` aligned as `STORE` needs; `pos` starts a block (`pos.word % 4 == 0`, even).
#[inline]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn body<T: Lanes, const AFFINE: bool, const TIES: bool, const STORE: u8>(
    keys: &mut Keys,
    x: *const T,
    o: *mut T,
    steps: usize,
    t: u32,
    c: &Consts,
    seed: u64,
    pos: HalfPos,
) {
    let t_hi = (t >> 16) as u16;
    // Provisional keep: `u <= t_hi` with ties (settled below), else `u <= t_hi - 1`
    // (T_lo == 0 and T > 0 make T_hi >= 1).
    let last_kept = _mm256_set1_epi16((if TIES { t_hi } else { t_hi - 1 }) as i16);
    let tie_lane = _mm256_set1_epi16(t_hi as i16);
    let first_block = pos.word / 4;
    for s in 0..steps {
        let rows = keys.rows(first_block.wrapping_add((s * STEP_BLOCKS) as u64));
        let mut k = [_mm256_setzero_si256(); ROWS];
        let mut ties = _mm256_setzero_si256();
        for q in 0..ROWS {
            k[q] = _mm256_cmpeq_epi16(_mm256_min_epu16(rows[q], last_kept), rows[q]);
            if TIES {
                ties = _mm256_or_si256(ties, _mm256_cmpeq_epi16(rows[q], tie_lane));
            }
        }
        if TIES && _mm256_testz_si256(ties, ties) == 0 {
            k = settle_ties(keys, t, seed, pos.advance(s * STEP));
        }
        for (q, &kq) in k.iter().enumerate() {
            let at = s * STEP + q * ROW;
            // SAFETY: elements `at .. at + ROW` lie in the range the caller gave.
            unsafe { T::row::<AFFINE, STORE>(kq, x.add(at), o.add(at), c) };
        }
    }
}

/// The keep masks of the rare step with a tie (recomputed here, so the hot loop
/// keeps its rows in registers): lanes equal to `T_hi` keep iff their tie lane is
/// below `T_lo`, the others iff below `T_hi`.
#[cold]
#[inline(never)]
#[target_feature(enable = "avx2")]
fn settle_ties(keys: &mut Keys, t: u32, seed: u64, pos: HalfPos) -> [__m256i; ROWS] {
    let m = fused::keep_lanes(&lanes(keys, pos), t, seed, pos);
    let mut k = [_mm256_setzero_si256(); ROWS];
    for (q, kq) in k.iter_mut().enumerate() {
        // SAFETY: row q is lanes 16q .. 16q + 16 of `m`.
        *kq = unsafe { _mm256_loadu_si256(m.as_ptr().add(ROW * q).cast()) };
    }
    k
}

/// The half-words of the step holding `pos` (block-aligned or not), in stream order.
#[inline]
#[target_feature(enable = "avx2")]
fn lanes(keys: &mut Keys, pos: HalfPos) -> [u16; STEP] {
    let rows = keys.rows(pos.word / 4);
    let mut u = [0u16; STEP];
    for (q, r) in rows.iter().enumerate() {
        // SAFETY: row q is lanes 16q .. 16q + 16 of `u`.
        unsafe { _mm256_storeu_si256(u.as_mut_ptr().add(ROW * q).cast(), *r) };
    }
    u
}
