//! AVX-512 element dropout with the random words never leaving the registers: the
//! AVX-512 form of [`super::fused_avx2`]. A step runs [`STEP_BLOCKS`] Philox blocks
//! ([`Keys::rows`]): rows of sixteen words, each row the 16-bit lanes of 32
//! consecutive elements in element order. Per row one `vpcmpuw` gives a 32-bit keep
//! mask (`u <= last kept lane`) in a mask register, and masked arithmetic finishes the
//! elements: `x * a` zero-masked (dropped `+0.0`), or `x * a + b` merged over the
//! dropped constant; no sign extension, no blend. Stores are plain or non-temporal,
//! always whole 64-byte lines: an output that does not start on a line (NumPy's large
//! arrays start 16 bytes into a page) gets each line from two consecutive result
//! vectors with one `vpermt2d` ([`Sink`]); 16-byte streaming stores of the unaligned
//! vectors ran 13-20% slower at 1e7 elements on a Zen 4. When `T_lo != 0` a
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
/// 64-byte non-temporal stores of vectors shifted onto the cache lines (the output is
/// 4-byte aligned, not 64: NumPy's large arrays start 16 bytes past a page): each line
/// is the end of one result vector and the start of the next, joined by one permute.
const SHIFTED: u8 = 2;

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

    /// The 32 elements of one row, `bit i of k ? x[i] * a (+ b) : dropped`, handed to
    /// `sink` as 64-byte vectors in element order.
    ///
    /// # Safety
    /// AVX-512F/BW are available; `x` is readable for 32 elements; the sink's next 128
    /// bytes are the row's output (see [`Sink`]); in place, `x` is that output.
    unsafe fn row<const AFFINE: bool, const STORE: u8>(k: __mmask32, x: *const Self, c: &Consts, sink: &mut Sink<STORE>);
}

/// Where a run of steps puts its result vectors: 64 bytes each, in element order from
/// the output's first byte, stored as `STORE` says.
struct Sink<const STORE: u8> {
    /// The next vector's own address.
    p: *mut u8,
    /// `SHIFTED`: bytes from the first output byte to the first 64-byte boundary (1-63).
    lead: usize,
    /// `SHIFTED`: 32-bit lane indices `lead / 4 + i`: `prev[lead..] ++ next[..lead]`.
    idx: __m512i,
    /// `SHIFTED`: the previous vector, whose tail is not stored yet.
    prev: __m512i,
    /// Vectors put so far.
    count: usize,
}

impl<const STORE: u8> Sink<STORE> {
    /// A sink writing from `o`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn new(o: *mut u8) -> Self {
        let lead = (64 - o as usize % 64) % 64;
        let iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        let idx = _mm512_add_epi32(_mm512_set1_epi32((lead / 4) as i32), iota);
        Sink { p: o, lead, idx, prev: _mm512_setzero_si512(), count: 0 }
    }

    /// Stores (or, for `SHIFTED`, partly holds back) the next 64 bytes of output.
    ///
    /// # Safety
    /// AVX-512F/BW are available; the 64 bytes from `self.p` are this sink's output;
    /// `STREAM64` needs them 64-byte aligned, `SHIFTED` 4-byte aligned and not 64.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    unsafe fn put(&mut self, v: __m512i) {
        // SAFETY (all stores): the caller's guarantee for the 64 bytes at `p`. `SHIFTED`
        // writes the first vector's first `lead` bytes, then for each later vector the
        // 64-byte line from `p - 64 + lead`: the previous vector's last `64 - lead` bytes
        // and this one's first `lead`, aligned by the choice of `lead`.
        unsafe {
            match STORE {
                STREAM64 => _mm512_stream_si512(self.p.cast(), v),
                SHIFTED if self.count == 0 => _mm512_mask_storeu_epi8(self.p.cast(), (1u64 << self.lead) - 1, v),
                SHIFTED => {
                    let line = _mm512_permutex2var_epi32(self.prev, self.idx, v);
                    _mm512_stream_si512(self.p.sub(64 - self.lead).cast(), line);
                }
                _ => _mm512_storeu_si512(self.p.cast(), v),
            }
            self.p = self.p.add(64);
        }
        self.prev = v;
        self.count += 1;
    }

    /// Stores what `SHIFTED` still holds: the last vector's bytes from `lead` on.
    ///
    /// # Safety
    /// AVX-512F/BW are available; the vectors put lie in this sink's output.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    unsafe fn finish(&mut self) {
        if STORE == SHIFTED && self.count > 0 {
            // SAFETY: the last vector's own 64 bytes (`p - 64 ..`), of which this writes
            // those no shifted line covered.
            unsafe { _mm512_mask_storeu_epi8(self.p.sub(64).cast(), !((1u64 << self.lead) - 1), self.prev) };
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
    #[target_feature(enable = "avx512f,avx512bw")]
    unsafe fn row<const AFFINE: bool, const STORE: u8>(k: __mmask32, x: *const f32, c: &Consts, sink: &mut Sink<STORE>) {
        for h in 0..2 {
            let m = (k >> (16 * h)) as __mmask16;
            // SAFETY: elements 16h .. 16h + 16 < 32 of `x`.
            let xv = unsafe { _mm512_loadu_ps(x.add(16 * h)) };
            let a = _mm512_castsi512_ps(c.a);
            let r = if AFFINE {
                let dropped = _mm512_castsi512_ps(c.dropped);
                _mm512_mask_add_ps(dropped, m, _mm512_mul_ps(xv, a), _mm512_castsi512_ps(c.b))
            } else {
                _mm512_maskz_mul_ps(m, xv, a)
            };
            // SAFETY: the sink's next 64 bytes are elements 16h .. 16h + 16 of the row.
            unsafe { sink.put(_mm512_castps_si512(r)) };
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
    #[target_feature(enable = "avx512f,avx512bw")]
    unsafe fn row<const AFFINE: bool, const STORE: u8>(k: __mmask32, x: *const f64, c: &Consts, sink: &mut Sink<STORE>) {
        for h in 0..4 {
            let m = (k >> (8 * h)) as __mmask8;
            // SAFETY: elements 8h .. 8h + 8 < 32 of `x`.
            let xv = unsafe { _mm512_loadu_pd(x.add(8 * h)) };
            let a = _mm512_castsi512_pd(c.a);
            let r = if AFFINE {
                let dropped = _mm512_castsi512_pd(c.dropped);
                _mm512_mask_add_pd(dropped, m, _mm512_mul_pd(xv, a), _mm512_castsi512_pd(c.b))
            } else {
                _mm512_maskz_mul_pd(m, xv, a)
            };
            // SAFETY: the sink's next 64 bytes are elements 8h .. 8h + 8 of the row.
            unsafe { sink.put(_mm512_castpd_si512(r)) };
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
            a if a % 4 == 0 => SHIFTED,
            _ => PLAIN,
        };
        let ties = t & 0xffff != 0;
        // SAFETY: `pos` is block-aligned here; the step range lies in the chunk; `mode`
        // matches the alignment of `o`.
        unsafe {
            match (ties, mode) {
                (false, PLAIN) => body::<T, AFFINE, false, PLAIN>(&mut self.keys, x, o, steps, t, &self.c, seed, pos),
                (false, STREAM64) => body::<T, AFFINE, false, STREAM64>(&mut self.keys, x, o, steps, t, &self.c, seed, pos),
                (false, _) => body::<T, AFFINE, false, SHIFTED>(&mut self.keys, x, o, steps, t, &self.c, seed, pos),
                (true, PLAIN) => body::<T, AFFINE, true, PLAIN>(&mut self.keys, x, o, steps, t, &self.c, seed, pos),
                (true, STREAM64) => body::<T, AFFINE, true, STREAM64>(&mut self.keys, x, o, steps, t, &self.c, seed, pos),
                (true, _) => body::<T, AFFINE, true, SHIFTED>(&mut self.keys, x, o, steps, t, &self.c, seed, pos),
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
    let mut sink = Sink::<STORE>::new(o.cast());
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
            // SAFETY: elements `at .. at + ROW` lie in the range the caller gave, and the
            // sink has taken exactly `at` elements' bytes so far.
            unsafe { T::row::<AFFINE, STORE>(kq, x.add(at), c, &mut sink) };
        }
    }
    // SAFETY: the sink's vectors are the caller's range.
    unsafe { sink.finish() };
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
