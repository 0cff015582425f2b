//! AVX-512 element dropout with the random words never leaving the registers: the
//! AVX-512 form of [`super::fused_avx2`]. A step runs [`STEP_BLOCKS`] Philox blocks
//! ([`Keys::rows`]): rows of sixteen words, each row the 16-bit lanes of 32
//! consecutive elements in element order. Per row one `vpcmpuw` gives a 32-bit keep
//! mask (`u <= last kept lane`) in a mask register, and masked arithmetic finishes the
//! elements: `x * a` zero-masked (dropped `+0.0`), or `x * a + b` merged over the
//! dropped constant; no sign extension, no blend. Stores are plain or non-temporal
//! (64-, 32- or 16-byte, whichever the output's alignment allows). When `T_lo != 0` a
//! lane equal to `T_hi` is a tie: one `vpcmpeqw` per row is OR-accumulated and a (rare)
//! nonzero step settles its ties with the tie word before anything is stored.
//!
//! The chunk's first step may start inside a block and its last may be short: those
//! run the same Philox step and finish the elements they cover one by one.

use super::fused::{self, Typed};
use super::{Linear, Src};
use crate::rng::avx512::{Keys, ROWS, STEP_BLOCKS};
use crate::rng::HalfPos;
use crate::Real;
use std::arch::x86_64::*;

/// Elements per step (eight half-words per block).
const STEP: usize = 8 * STEP_BLOCKS;
/// Elements per row.
const ROW: usize = STEP / ROWS;

/// Plain (unaligned) stores.
const PLAIN: u8 = 0;
/// 64-byte non-temporal stores (the output is 64-byte aligned).
const STREAM64: u8 = 1;
/// Two 32-byte non-temporal stores per vector (the output is 32-byte aligned).
const STREAM32: u8 = 2;
/// Four 16-byte non-temporal stores per vector (the output is 16-byte aligned).
const STREAM16: u8 = 3;

/// A [`Linear`] map broadcast to vectors (as bits; f32x16 or f64x8).
#[derive(Clone, Copy)]
struct Consts {
    a: __m512i,
    b: __m512i,
    dropped: __m512i,
}

/// The element types with a fused row: f32 and f64.
trait Lanes: Real {
    /// `v` in every lane.
    ///
    /// # Safety
    /// AVX-512F is available.
    unsafe fn splat(v: Self) -> __m512i;

    /// The 32 elements of one row: `o[i] = bit i of k ? x[i] * a (+ b) : dropped`.
    ///
    /// # Safety
    /// AVX-512F/DQ are available; `x` is readable and `o` writable for 32 elements
    /// (they may be the same address, not otherwise overlapping); with a streaming
    /// `STORE`, `o` is aligned as that mode says.
    unsafe fn row<const AFFINE: bool, const STORE: u8>(k: __mmask32, x: *const Self, o: *mut Self, c: &Consts);
}

/// Stores the 64 bytes of `v` at `p` as `STORE` says.
///
/// # Safety
/// AVX-512F/DQ are available; `p` is writable for 64 bytes and aligned as `STORE` needs.
#[inline]
#[target_feature(enable = "avx512f,avx512dq")]
unsafe fn store<const STORE: u8>(p: *mut u8, v: __m512i) {
    // SAFETY: the caller's guarantee; the offsets below stay inside the 64 bytes.
    unsafe {
        match STORE {
            STREAM64 => _mm512_stream_si512(p.cast(), v),
            STREAM32 => {
                _mm256_stream_si256(p.cast(), _mm512_castsi512_si256(v));
                _mm256_stream_si256(p.add(32).cast(), _mm512_extracti64x4_epi64::<1>(v));
            }
            STREAM16 => {
                _mm_stream_si128(p.cast(), _mm512_castsi512_si128(v));
                _mm_stream_si128(p.add(16).cast(), _mm512_extracti32x4_epi32::<1>(v));
                _mm_stream_si128(p.add(32).cast(), _mm512_extracti32x4_epi32::<2>(v));
                _mm_stream_si128(p.add(48).cast(), _mm512_extracti32x4_epi32::<3>(v));
            }
            _ => _mm512_storeu_si512(p.cast(), v),
        }
    }
}

impl Lanes for f32 {
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn splat(v: f32) -> __m512i {
        _mm512_castps_si512(_mm512_set1_ps(v))
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512dq")]
    unsafe fn row<const AFFINE: bool, const STORE: u8>(k: __mmask32, x: *const f32, o: *mut f32, c: &Consts) {
        for h in 0..2 {
            let m = (k >> (16 * h)) as __mmask16;
            // SAFETY (all pointer uses): elements 16h .. 16h + 16 < 32 of `x` / `o`.
            let xv = unsafe { _mm512_loadu_ps(x.add(16 * h)) };
            let a = _mm512_castsi512_ps(c.a);
            let r = if AFFINE {
                let dropped = _mm512_castsi512_ps(c.dropped);
                _mm512_mask_add_ps(dropped, m, _mm512_mul_ps(xv, a), _mm512_castsi512_ps(c.b))
            } else {
                _mm512_maskz_mul_ps(m, xv, a)
            };
            // SAFETY: 16 f32 = 64 bytes at element 16h keep the caller's alignment.
            unsafe { store::<STORE>(o.add(16 * h).cast(), _mm512_castps_si512(r)) };
        }
    }
}

impl Lanes for f64 {
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn splat(v: f64) -> __m512i {
        _mm512_castpd_si512(_mm512_set1_pd(v))
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512dq")]
    unsafe fn row<const AFFINE: bool, const STORE: u8>(k: __mmask32, x: *const f64, o: *mut f64, c: &Consts) {
        for h in 0..4 {
            let m = (k >> (8 * h)) as __mmask8;
            // SAFETY (all pointer uses): elements 8h .. 8h + 8 < 32 of `x` / `o`.
            let xv = unsafe { _mm512_loadu_pd(x.add(8 * h)) };
            let a = _mm512_castsi512_pd(c.a);
            let r = if AFFINE {
                let dropped = _mm512_castsi512_pd(c.dropped);
                _mm512_mask_add_pd(dropped, m, _mm512_mul_pd(xv, a), _mm512_castsi512_pd(c.b))
            } else {
                _mm512_maskz_mul_pd(m, xv, a)
            };
            // SAFETY: 8 f64 = 64 bytes at element 8h keep the caller's alignment.
            unsafe { store::<STORE>(o.add(8 * h).cast(), _mm512_castpd_si512(r)) };
        }
    }
}

/// Runs one chunk on the fused path if the element type and map have one (see
/// [`fused::typed`]); returns false, touching nothing, otherwise.
///
/// # Safety
/// AVX-512F/BW/DQ are available.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn run<T: Real>(src: Src<'_, T>, out: &mut [T], stream: bool, t: u32, lin: Linear<T>, seed: u64, start: HalfPos) -> bool {
    // SAFETY (each arm): `typed` gives pointers valid for `c.n` elements of the named
    // type (a slice each, or one `&mut` slice for both in place); the caller
    // guarantees AVX-512F/BW/DQ.
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
        let mode = match o as usize % 64 {
            _ if !stream => PLAIN,
            0 => STREAM64,
            32 => STREAM32,
            16 | 48 => STREAM16,
            _ => PLAIN,
        };
        let ties = t & 0xffff != 0;
        // SAFETY: `pos` is block-aligned here; the step range lies in the chunk; `mode` matches
        // the alignment of `o` (rows keep it: 32 elements are a multiple of 64 bytes).
        unsafe {
            match (ties, mode) {
                (false, PLAIN) => body::<T, AFFINE, false, PLAIN>(&mut self.keys, x, o, steps, t, &self.c, seed, pos),
                (false, STREAM64) => body::<T, AFFINE, false, STREAM64>(&mut self.keys, x, o, steps, t, &self.c, seed, pos),
                (false, STREAM32) => body::<T, AFFINE, false, STREAM32>(&mut self.keys, x, o, steps, t, &self.c, seed, pos),
                (false, _) => body::<T, AFFINE, false, STREAM16>(&mut self.keys, x, o, steps, t, &self.c, seed, pos),
                (true, PLAIN) => body::<T, AFFINE, true, PLAIN>(&mut self.keys, x, o, steps, t, &self.c, seed, pos),
                (true, STREAM64) => body::<T, AFFINE, true, STREAM64>(&mut self.keys, x, o, steps, t, &self.c, seed, pos),
                (true, STREAM32) => body::<T, AFFINE, true, STREAM32>(&mut self.keys, x, o, steps, t, &self.c, seed, pos),
                (true, _) => body::<T, AFFINE, true, STREAM16>(&mut self.keys, x, o, steps, t, &self.c, seed, pos),
            }
        }
    }
}

/// # Safety
/// AVX-512F/BW/DQ are available; `x` readable and `o` writable for `n` elements, equal
/// or not overlapping.
#[target_feature(enable = "avx512f,avx512bw,avx512dq")]
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
/// AVX-512F/BW/DQ are available; `x` readable and `o` writable for `steps * STEP`
/// elements (equal or disjoint); `o` aligned as `STORE` needs; `pos` starts a block
/// (`pos.word % 4 == 0`, even).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512dq")]
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
    let last_kept = _mm512_set1_epi16((if TIES { t_hi } else { t_hi - 1 }) as i16);
    let tie_lane = _mm512_set1_epi16(t_hi as i16);
    let first_block = pos.word / 4;
    for s in 0..steps {
        // SAFETY: AVX-512F is enabled here.
        let rows = unsafe { keys.rows_inline(first_block.wrapping_add((s * STEP_BLOCKS) as u64)) };
        let mut k: [__mmask32; ROWS] = [0; ROWS];
        let mut ties: __mmask32 = 0;
        for q in 0..ROWS {
            k[q] = _mm512_cmple_epu16_mask(rows[q], last_kept);
            if TIES {
                ties |= _mm512_cmpeq_epi16_mask(rows[q], tie_lane);
            }
        }
        if TIES && ties != 0 {
            k = settle_ties(keys, t, seed, pos.advance(s * STEP));
        }
        for (q, &kq) in k.iter().enumerate() {
            let at = s * STEP + q * ROW;
            // SAFETY: elements `at .. at + ROW` lie in the range the caller gave.
            unsafe { T::row::<AFFINE, STORE>(kq, x.add(at), o.add(at), c) };
        }
    }
}

/// The keep masks of the rare step with a tie (recomputed here, so the hot loop keeps
/// its rows in registers).
#[cold]
#[inline(never)]
#[target_feature(enable = "avx512f")]
fn settle_ties(keys: &mut Keys, t: u32, seed: u64, pos: HalfPos) -> [__mmask32; ROWS] {
    let m = fused::keep_lanes(&lanes(keys, pos), t, seed, pos);
    let mut k: [__mmask32; ROWS] = [0; ROWS];
    for (q, kq) in k.iter_mut().enumerate() {
        *kq = m[ROW * q..ROW * (q + 1)].iter().enumerate().fold(0, |bits, (i, &v)| bits | (((v & 1) as u32) << i));
    }
    k
}

/// The half-words of the step from the block holding `pos`, in stream order.
#[inline]
#[target_feature(enable = "avx512f")]
fn lanes(keys: &mut Keys, pos: HalfPos) -> [u16; STEP] {
    let rows = keys.rows(pos.word / 4);
    let mut u = [0u16; STEP];
    for (q, r) in rows.iter().enumerate() {
        // SAFETY: row q is lanes 32q .. 32q + 32 of `u`.
        unsafe { _mm512_storeu_si512(u.as_mut_ptr().add(ROW * q).cast(), *r) };
    }
    u
}
