//! Element dropout: forward, in-place forward and backward.
//!
//! For drop probability `p`, element `i` of a call starting at half-word position
//! `h = 2 o + phase` reads the 16-bit lane of half-word `h + i` and is kept by the
//! contract-v2 rule of [`rng`] (`u < T_hi`, ties settled by the tie word), with
//! `T = round((1 - p) 2^32)` ([`rng::keep_threshold`]); P(keep) = T / 2^32 exactly and
//! a call on `n` elements uses `ceil((phase + n) / 2)` words.
//! A kept element becomes `x * s` and a dropped one exactly `0` (chosen, not
//! multiplied, so a dropped `inf`/`NaN` leaves nothing behind). Inverted dropout uses
//! `s = 1/(1-p)` rounded once to the element type (PyTorch's CPU rule); the original
//! ("vanilla") rule of Srivastava et al. uses `s = 1` while training and multiplies by
//! `1 - p` at test time.
//!
//! The backward pass is the same map applied to the incoming gradient with the same
//! `(seed, offset)`: `dx = dy * keep * s`. Nothing is stored between the two.
//!
//! On AVX2 and AVX-512 the kernel is fused: the Philox blocks of a step (64 elements on
//! AVX2, 256 on AVX-512) are compared and applied straight from the registers, no word
//! buffer (`fused_avx2`, `fused_avx512`, sharing `fused`). The scalar path, and
//! maps without a [`KeepMap::linear`] form, run over fixed blocks (fill [`BLOCK`] words
//! = `2 BLOCK` elements, then a branch-free select). Each is compiled once per
//! instruction set and chosen at run time.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::{check_probability, check_same_len};
use crate::parallel;
use crate::rng::{self, HalfPos, Isa, BLOCK};
#[cfg(target_arch = "x86_64")]
use crate::rng::Level;
use crate::{Real, Result};

#[cfg(target_arch = "x86_64")]
mod fused;
#[cfg(target_arch = "x86_64")]
mod fused_avx2;
#[cfg(target_arch = "x86_64")]
mod fused_avx512;

/// What a dropout call does to a kept and to a dropped element.
///
/// `Scale` is ordinary dropout (kept `x * s`, dropped `0`); `Affine` serves alpha
/// dropout (kept `a x + b`, dropped a constant). One generic kernel runs both.
pub trait KeepMap<T: Real>: Copy + Send + Sync {
    fn kept(&self, x: T) -> T;
    fn dropped(&self) -> T;
    /// The same map as arithmetic, for the fused SIMD kernels: `kept(x)` is `x * a`
    /// (`b` none) or `x * a + b`, two roundings, never fused; `None` (the default)
    /// keeps a map on the block-at-a-time path.
    fn linear(&self) -> Option<Linear<T>> {
        None
    }
}

/// A [`KeepMap`] spelled out: kept elements `x * a` (or `x * a + b`), dropped ones `dropped`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Linear<T> {
    pub a: T,
    pub b: Option<T>,
    pub dropped: T,
}

/// Kept elements `x * s`; dropped ones exactly zero.
#[derive(Clone, Copy, Debug)]
pub struct Scale<T>(pub T);

impl<T: Real> KeepMap<T> for Scale<T> {
    #[inline(always)]
    fn kept(&self, x: T) -> T {
        x * self.0
    }
    #[inline(always)]
    fn dropped(&self) -> T {
        T::zero()
    }
    #[inline(always)]
    fn linear(&self) -> Option<Linear<T>> {
        Some(Linear { a: self.0, b: None, dropped: T::zero() })
    }
}

/// Kept elements `a x + b`, dropped ones the constant `dropped`.
#[derive(Clone, Copy, Debug)]
pub struct Affine<T> {
    pub a: T,
    pub b: T,
    pub dropped: T,
}

impl<T: Real> KeepMap<T> for Affine<T> {
    #[inline(always)]
    fn kept(&self, x: T) -> T {
        x * self.a + self.b
    }
    #[inline(always)]
    fn dropped(&self) -> T {
        self.dropped
    }
    #[inline(always)]
    fn linear(&self) -> Option<Linear<T>> {
        Some(Linear { a: self.a, b: Some(self.b), dropped: self.dropped })
    }
}

/// What a dropout call does to each element: keep iff `word < threshold`, then `* scale`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DropoutRule {
    /// Keep iff `word < threshold`; `>= 2^32` keeps every element.
    pub threshold: u64,
    /// Factor applied to kept elements (as f64; rounded once to the element type).
    pub scale: f64,
}

impl DropoutRule {
    /// The rule for drop probability `p`; `inverted` scales kept elements by `1/(1-p)`.
    pub fn new(p: f64, inverted: bool) -> Result<Self> {
        check_probability("dropout probability", p)?;
        let scale = if inverted && p < 1.0 { 1.0 / (1.0 - p) } else { 1.0 };
        Ok(Self { threshold: rng::keep_threshold(p), scale })
    }
}

/// `out = dropout(x)`, element `i` reading half-word `start + i` of `seed`'s stream.
pub fn dropout_forward<T: Real>(x: &[T], out: &mut [T], rule: DropoutRule, seed: u64, start: HalfPos) -> Result<()> {
    dropout_forward_with(rng::isa(), x, out, rule, seed, start)
}

/// `x = dropout(x)` in place.
pub fn dropout_forward_inplace<T: Real>(x: &mut [T], rule: DropoutRule, seed: u64, start: HalfPos) {
    dropout_forward_inplace_with(rng::isa(), x, rule, seed, start)
}

/// `grad_in = grad_out * keep * s`: the mask recomputed from `(seed, start)`.
pub fn dropout_backward<T: Real>(
    grad_out: &[T],
    grad_in: &mut [T],
    rule: DropoutRule,
    seed: u64,
    start: HalfPos,
) -> Result<()> {
    dropout_forward(grad_out, grad_in, rule, seed, start)
}

/// [`dropout_forward`] on an explicit instruction set.
pub fn dropout_forward_with<T: Real>(
    isa: Isa,
    x: &[T],
    out: &mut [T],
    rule: DropoutRule,
    seed: u64,
    start: HalfPos,
) -> Result<()> {
    masked_map_with(isa, x, out, rule.threshold, Scale(T::of(rule.scale)), seed, start)
}

/// [`dropout_forward_inplace`] on an explicit instruction set.
pub fn dropout_forward_inplace_with<T: Real>(isa: Isa, x: &mut [T], rule: DropoutRule, seed: u64, start: HalfPos) {
    masked_map_inplace_with(isa, x, rule.threshold, Scale(T::of(rule.scale)), seed, start)
}

/// `out[i] = map.kept(x[i])` if element `i` (half-word `start + i` of `seed`) is kept
/// for `threshold` (contract v2), else `map.dropped()`: the element-wise Bernoulli
/// kernel every variant shares.
pub fn masked_map<T: Real, M: KeepMap<T>>(
    x: &[T],
    out: &mut [T],
    threshold: u64,
    map: M,
    seed: u64,
    start: HalfPos,
) -> Result<()> {
    masked_map_with(rng::isa(), x, out, threshold, map, seed, start)
}

/// [`masked_map`] in place.
pub fn masked_map_inplace<T: Real, M: KeepMap<T>>(x: &mut [T], threshold: u64, map: M, seed: u64, start: HalfPos) {
    masked_map_inplace_with(rng::isa(), x, threshold, map, seed, start)
}

/// [`masked_map`] on an explicit instruction set.
pub fn masked_map_with<T: Real, M: KeepMap<T>>(
    isa: Isa,
    x: &[T],
    out: &mut [T],
    threshold: u64,
    map: M,
    seed: u64,
    start: HalfPos,
) -> Result<()> {
    check_same_len("dropout input and output lengths", x.len(), out.len())?;
    if threshold == 0 {
        out.fill(map.dropped());
    } else if threshold >= 1 << 32 {
        parallel::zip_chunks(x, out, |_, xc, oc| oc.iter_mut().zip(xc).for_each(|(o, &v)| *o = map.kept(v)));
    } else {
        let t = threshold as u32;
        let stream = std::mem::size_of_val(out) >= stream_threshold();
        parallel::zip_chunks(x, out, |at, xc, oc| {
            kernel::run(isa, Src::Other(xc), oc, stream, t, map, seed, start.advance(at))
        });
    }
    Ok(())
}

/// [`masked_map_inplace`] on an explicit instruction set.
pub fn masked_map_inplace_with<T: Real, M: KeepMap<T>>(
    isa: Isa,
    x: &mut [T],
    threshold: u64,
    map: M,
    seed: u64,
    start: HalfPos,
) {
    if threshold == 0 {
        x.fill(map.dropped());
    } else if threshold >= 1 << 32 {
        parallel::for_each_chunk_mut(x, |_, c| c.iter_mut().for_each(|v| *v = map.kept(*v)));
    } else {
        let t = threshold as u32;
        parallel::for_each_chunk_mut(x, |at, c| kernel::run(isa, Src::Same, c, false, t, map, seed, start.advance(at)));
    }
}

/// Outputs that would not stay in cache are written with non-temporal (streaming) stores
/// on the SIMD paths: streaming skips the read for ownership a normal store does first,
/// so dropout moves the bytes a memcpy moves. "Would not stay in cache" is glibc's rule
/// for its own memcpy: at least three quarters of the last-level cache, and never below
/// [`STREAM_MIN_BYTES`]. (Measured on a CPU reporting a 480 MB L3: a 40 MB output ran at
/// 1.43x memcpy with plain stores and 0.77x streamed; at 400 MB both gave 0.75x. On a
/// 2-core AMD EPYC Zen 1 with an 8 MB L3, fused AVX2 kernel, 2 threads, on a loaded
/// machine: 40 MB ran at 0.88x one-thread memcpy streamed and 0.58x plain, 400 MB at
/// 0.53x and 0.47x; `kernel_throughput` prints both.)
pub fn stream_threshold() -> usize {
    let v = STREAM_BYTES.load(Ordering::Relaxed);
    if v != 0 {
        return v;
    }
    let v = STREAM_MIN_BYTES.max(last_level_cache_bytes().unwrap_or(0) / 4 * 3);
    STREAM_BYTES.store(v, Ordering::Relaxed);
    v
}

/// Set the [`stream_threshold`] in bytes (0: back to the cache-size rule). For
/// benchmarks that compare plain and streamed stores; results never depend on it.
#[doc(hidden)]
pub fn set_stream_threshold(bytes: usize) {
    STREAM_BYTES.store(bytes, Ordering::Relaxed);
}

/// The smallest output that is streamed (the old fixed threshold; Zen 1's L3 per CCX is 8 MB).
pub const STREAM_MIN_BYTES: usize = 8 << 20;

/// [`stream_threshold`] once known (0 before): results never depend on it, only speed.
static STREAM_BYTES: AtomicUsize = AtomicUsize::new(0);

/// The size of cpu0's highest-level cache, from Linux's sysfs (None elsewhere).
fn last_level_cache_bytes() -> Option<usize> {
    let mut best: Option<(u32, usize)> = None;
    for i in 0..16 {
        let dir = format!("/sys/devices/system/cpu/cpu0/cache/index{i}");
        let Ok(level) = std::fs::read_to_string(format!("{dir}/level")) else { break };
        let Ok(size) = std::fs::read_to_string(format!("{dir}/size")) else { continue };
        let (Ok(level), Some(bytes)) = (level.trim().parse::<u32>(), parse_cache_size(size.trim())) else { continue };
        if best.is_none_or(|(l, _)| level > l) {
            best = Some((level, bytes));
        }
    }
    best.map(|(_, bytes)| bytes)
}

/// `"32768K"`, `"480M"`, `"1G"` or plain bytes, as sysfs writes cache sizes.
fn parse_cache_size(s: &str) -> Option<usize> {
    let (digits, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => s.split_at(i),
        None => (s, ""),
    };
    let n: usize = digits.parse().ok()?;
    let scale = match unit {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(scale)
}

/// Where a block reads its input: a separate slice, or the output itself (in place).
#[derive(Clone, Copy)]
enum Src<'a, T> {
    Other(&'a [T]),
    Same,
}

mod kernel {
    //! One chunk of element dropout. Words come [`BLOCK`] at a time (`2 * BLOCK`
    //! elements); each element's provisional decision is `u 2^16 < T`, i.e. keep
    //! `u < T_hi` and also `u == T_hi` when `T_lo != 0`; those rare ties are then
    //! settled by their tie word, turning a provisional keep into the dropped value
    //! (which needs no input, so in-place works too).

    use super::*;

    /// One chunk, block by block; `start` is the half-word of the chunk's first element.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn chunk<T: Real, M: KeepMap<T>, const LEVEL: u8>(
        src: Src<'_, T>,
        out: &mut [T],
        stream: bool,
        t: u32,
        map: M,
        seed: u64,
        start: HalfPos,
    ) {
        let (mut out, mut src, mut start) = (out, src, start);
        if start.odd && !out.is_empty() {
            // A chunk that starts in the high half of a word: settle that element alone,
            // so every block below starts on a whole word.
            let kept = rng::element_keep(seed, start, t as u64);
            let (head, rest) = std::mem::take(&mut out).split_at_mut(1);
            head[0] = match src {
                Src::Other(x) if kept => map.kept(x[0]),
                Src::Same if kept => map.kept(head[0]),
                _ => map.dropped(),
            };
            out = rest;
            if let Src::Other(x) = src {
                src = Src::Other(&x[1..]);
            }
            start = start.advance(1);
        }
        let mut words = [0u32; BLOCK];
        let mut staged = [T::zero(); 2 * BLOCK];
        for (k, oc) in out.chunks_mut(2 * BLOCK).enumerate() {
            let n = oc.len();
            let w = &mut words[..n.div_ceil(2)];
            fill::<LEVEL>(seed, start.word.wrapping_add((k * BLOCK) as u64), w);
            let u = &halves(w)[..n];
            let at = start.advance(k * 2 * BLOCK);
            match src {
                Src::Other(x) if stream && LEVEL != SCALAR => {
                    // Build the block in L1, then stream it out.
                    let st = &mut staged[..n];
                    select(&x[k * 2 * BLOCK..k * 2 * BLOCK + n], st, u, t, map);
                    settle_ties(st, u, t, map, seed, at);
                    stream_store::<T, LEVEL>(oc, st);
                }
                Src::Other(x) => {
                    select(&x[k * 2 * BLOCK..k * 2 * BLOCK + n], oc, u, t, map);
                    settle_ties(oc, u, t, map, seed, at);
                }
                Src::Same => {
                    select_inplace(oc, u, t, map);
                    settle_ties(oc, u, t, map, seed, at);
                }
            }
        }
        if stream && LEVEL != SCALAR {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: SSE is part of the x86-64 baseline. Streaming stores are weakly
            // ordered: the fence orders them before the chunk counts as done.
            unsafe {
                std::arch::x86_64::_mm_sfence()
            };
        }
    }

    /// `dst = src` with non-temporal stores for the 32-byte-aligned middle.
    #[inline(always)]
    fn stream_store<T: Real, const LEVEL: u8>(dst: &mut [T], src: &[T]) {
        #[cfg(target_arch = "x86_64")]
        if LEVEL != SCALAR {
            // SAFETY: LEVEL != SCALAR only inside `chunk_avx2` / `chunk_avx512`, which `run`
            // calls only with an `Isa` whose level includes AVX2 (detected by `Isa::new`).
            unsafe { stream::copy(dst, src) };
            return;
        }
        dst.copy_from_slice(src);
    }

    /// The 16-bit lanes of `w` in stream order (low half of each word first).
    #[inline(always)]
    fn halves(w: &[u32]) -> &[u16] {
        #[cfg(target_endian = "little")]
        {
            // SAFETY: `w` is `w.len()` initialised u32s = `2 * w.len()` u16s of the same
            // bytes; u16's alignment (2) divides u32's (4); every bit pattern is a valid
            // u16; the returned slice borrows `w`, so it cannot outlive it or alias a
            // write. On a little-endian target the low half of each word comes first.
            unsafe { std::slice::from_raw_parts(w.as_ptr().cast::<u16>(), 2 * w.len()) }
        }
        #[cfg(not(target_endian = "little"))]
        compile_error!("dropcore's element kernels assume a little-endian target");
    }

    /// `o = u 2^16 < t ? map.kept(x) : map.dropped()`, branch-free over one block (vectorises).
    #[inline(always)]
    fn select<T: Real, M: KeepMap<T>>(x: &[T], o: &mut [T], u: &[u16], t: u32, map: M) {
        let n = o.len();
        let (x, u) = (&x[..n], &u[..n]);
        let dropped = map.dropped();
        for i in 0..n {
            let kept = map.kept(x[i]);
            o[i] = if ((u[i] as u32) << 16) < t { kept } else { dropped };
        }
    }

    #[inline(always)]
    fn select_inplace<T: Real, M: KeepMap<T>>(o: &mut [T], u: &[u16], t: u32, map: M) {
        let n = o.len();
        let u = &u[..n];
        let dropped = map.dropped();
        for i in 0..n {
            let kept = map.kept(o[i]);
            o[i] = if ((u[i] as u32) << 16) < t { kept } else { dropped };
        }
    }

    /// Ties (`u == T_hi`, only possible to keep when `T_lo != 0`) were kept
    /// provisionally; drop those whose tie lane is not below `T_lo`.
    #[inline(always)]
    fn settle_ties<T: Real, M: KeepMap<T>>(o: &mut [T], u: &[u16], t: u32, map: M, seed: u64, start: HalfPos) {
        let (t_hi, t_lo) = ((t >> 16) as u16, (t & 0xffff) as u16);
        if t_lo == 0 || !u.iter().fold(false, |any, &v| any | (v == t_hi)) {
            return;
        }
        for (i, &v) in u.iter().enumerate() {
            if v == t_hi && rng::tie_half(seed, start.advance(i)) >= t_lo {
                o[i] = map.dropped();
            }
        }
    }

    const SCALAR: u8 = 0;
    const AVX2: u8 = 1;
    const AVX512: u8 = 2;

    /// Words for one block on the instruction set `LEVEL` (a compile-time choice).
    #[inline(always)]
    fn fill<const LEVEL: u8>(seed: u64, at: u64, w: &mut [u32]) {
        #[cfg(target_arch = "x86_64")]
        match LEVEL {
            // SAFETY: LEVEL == AVX2 only inside `chunk_avx2`, which `run` calls only with
            // an `Isa` of level Avx2, i.e. after AVX2 was detected.
            AVX2 => unsafe { rng::avx2::fill_words(seed, at, w) },
            // SAFETY: LEVEL == AVX512 only inside `chunk_avx512`, called only after
            // AVX-512F was detected (an `Isa` of level Avx512).
            AVX512 => unsafe { rng::avx512::fill_words(seed, at, w) },
            _ => rng::fill_words_scalar(seed, at, w),
        }
        #[cfg(not(target_arch = "x86_64"))]
        rng::fill_words_scalar(seed, at, w);
    }

    #[cfg(target_arch = "x86_64")]
    mod stream {
        use std::arch::x86_64::*;

        /// `dst = src`: plain copies up to the first 32-byte boundary of `dst` and after
        /// the last one, `_mm256_stream_si256` in between.
        #[target_feature(enable = "avx2")]
        pub(super) fn copy<T: Copy>(dst: &mut [T], src: &[T]) {
            assert_eq!(dst.len(), src.len(), "stream copy of unequal lengths");
            let size = std::mem::size_of::<T>();
            let head = dst.as_ptr().align_offset(32).min(dst.len());
            let lanes = 32 / size; // elements per 32-byte store (T is f32 or f64)
            let body = (dst.len() - head) / lanes * lanes;
            dst[..head].copy_from_slice(&src[..head]);
            let (d, s) = (dst[head..].as_mut_ptr(), src[head..].as_ptr());
            for k in 0..body / lanes {
                // SAFETY: elements head + k*lanes .. + lanes lie inside both slices
                // (k*lanes + lanes <= body <= len - head); `d` is 32-byte aligned here
                // (align_offset), as `_mm256_stream_si256` requires; the source load is
                // unaligned; the two slices do not overlap (`&mut` and `&`).
                unsafe {
                    let v = _mm256_loadu_si256(s.add(k * lanes) as *const __m256i);
                    _mm256_stream_si256(d.add(k * lanes) as *mut __m256i, v);
                }
            }
            dst[head + body..].copy_from_slice(&src[head + body..]);
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    fn chunk_avx2<T: Real, M: KeepMap<T>>(src: Src<'_, T>, out: &mut [T], stream: bool, t: u32, map: M, seed: u64, start: HalfPos) {
        chunk::<T, M, AVX2>(src, out, stream, t, map, seed, start)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    fn chunk_avx512<T: Real, M: KeepMap<T>>(src: Src<'_, T>, out: &mut [T], stream: bool, t: u32, map: M, seed: u64, start: HalfPos) {
        chunk::<T, M, AVX512>(src, out, stream, t, map, seed, start)
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn run<T: Real, M: KeepMap<T>>(
        isa: Isa,
        src: Src<'_, T>,
        out: &mut [T],
        stream: bool,
        t: u32,
        map: M,
        seed: u64,
        start: HalfPos,
    ) {
        match isa.level() {
            #[cfg(target_arch = "x86_64")]
            Level::Avx2 => {
                if let Some(lin) = map.linear() {
                    // SAFETY: an `Isa` of level Avx2 exists only when AVX2 and FMA were
                    // detected on this CPU (`rng::Isa::new`): what `fused::run` requires.
                    if unsafe { super::fused_avx2::run(src, out, stream, t, lin, seed, start) } {
                        return;
                    }
                }
                // SAFETY: as above: every feature `chunk_avx2` enables was detected.
                unsafe { chunk_avx2(src, out, stream, t, map, seed, start) }
            }
            #[cfg(target_arch = "x86_64")]
            Level::Avx512 => {
                if let Some(lin) = map.linear() {
                    // SAFETY: an `Isa` of level Avx512 exists only when AVX-512F/BW/DQ
                    // were detected (`rng::Isa::new`): what `fused_avx512::run` requires.
                    if unsafe { super::fused_avx512::run(src, out, stream, t, lin, seed, start) } {
                        return;
                    }
                }
                // SAFETY: AVX-512F/BW/DQ, AVX2 and FMA were detected (`rng::Isa::new`):
                // a superset of what `chunk_avx512` enables.
                unsafe { chunk_avx512(src, out, stream, t, map, seed, start) }
            }
            _ => chunk::<T, M, SCALAR>(src, out, stream, t, map, seed, start),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition, one element at a time, from the scalar words (main and tie).
    fn reference<T: Real>(x: &[T], rule: DropoutRule, seed: u64, start: HalfPos) -> Vec<T> {
        let s = T::of(rule.scale);
        x.iter()
            .enumerate()
            .map(|(i, &v)| if rng::element_keep(seed, start.advance(i), rule.threshold) { v * s } else { T::zero() })
            .collect()
    }

    fn ramp<T: Real>(n: usize) -> Vec<T> {
        (0..n).map(|i| T::of(i as f64 * 0.25 - 7.0)).collect()
    }

    /// A drop probability whose `T_hi` equals `u` and whose `T_lo` is `lo` (exact in f64).
    fn p_with_threshold(u: u16, lo: u16) -> f64 {
        let t = ((u as u64) << 16) | lo as u64;
        let p = 1.0 - t as f64 / 4_294_967_296.0;
        assert_eq!(rng::keep_threshold(p), t);
        p
    }

    fn check_all_paths<T: Real>() {
        for &n in &[0usize, 1, 2, 3, 63, 255, 256, 257, 1000, parallel::SERIAL_BELOW + 4099] {
            for &(p, inverted) in &[(0.5, true), (0.1, true), (0.9, false), (0.3, true)] {
                let rule = DropoutRule::new(p, inverted).unwrap();
                let x = ramp::<T>(n);
                // The last start ends 2414 words before the end of the stream (word 2^64 - 1);
                // the one before it crosses block 2^32, where the low counter word wraps.
                let wrap = HalfPos::new(4 * ((1u64 << 32) - 60) + 1, 1);
                for start in [HalfPos::new(5, 0), HalfPos::new(5, 1), wrap, HalfPos::new(u64::MAX - 70_000, 1)] {
                    let want = reference(&x, rule, 11, start);
                    for isa in rng::available_isas() {
                        let mut out = vec![T::one(); n];
                        dropout_forward_with(isa, &x, &mut out, rule, 11, start).unwrap();
                        assert_eq!(out, want, "{isa:?} n={n} p={p} start={start:?}");
                        let mut inplace = x.clone();
                        dropout_forward_inplace_with(isa, &mut inplace, rule, 11, start);
                        assert_eq!(inplace, want, "in place {isa:?} n={n} p={p} start={start:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn f32_every_path_matches_reference() {
        check_all_paths::<f32>();
    }

    #[test]
    fn f64_every_path_matches_reference() {
        check_all_paths::<f64>();
    }

    #[test]
    fn forced_ties_are_settled_by_the_tie_word_on_every_path() {
        // Make T_hi equal the lanes of chosen elements, so that those elements are ties,
        // with T_lo at both sides of their tie lanes: the tie word alone decides them.
        let seed = 21;
        let n = 3 * 2 * BLOCK + 7;
        let x = vec![1.0f32; n];
        let mut seen_keep = 0;
        let mut seen_drop = 0;
        for &i in &[0usize, 1, 2 * BLOCK - 1, 2 * BLOCK, n - 1] {
            for phase in [0, 1] {
                let start = HalfPos::new(9, phase);
                let pos = start.advance(i);
                let (u, v) = (rng::half(seed, pos), rng::tie_half(seed, pos));
                for lo in [v.saturating_add(1).max(1), v.max(1), 1, u16::MAX] {
                    let rule = DropoutRule { threshold: ((u as u64) << 16) | lo as u64, scale: 2.0 };
                    let p = p_with_threshold(u, lo);
                    assert_eq!(DropoutRule::new(p, true).unwrap().threshold, rule.threshold);
                    let keep = v < lo;
                    assert_eq!(rng::element_keep(seed, pos, rule.threshold), keep);
                    if keep { seen_keep += 1 } else { seen_drop += 1 }
                    let want = reference(&x, rule, seed, start);
                    assert_eq!(want[i], if keep { 2.0 } else { 0.0 });
                    for isa in rng::available_isas() {
                        let mut out = vec![0.0f32; n];
                        dropout_forward_with(isa, &x, &mut out, rule, seed, start).unwrap();
                        assert_eq!(out, want, "{isa:?} element {i} phase {phase} lo {lo}");
                        let mut inplace = x.clone();
                        dropout_forward_inplace_with(isa, &mut inplace, rule, seed, start);
                        assert_eq!(inplace, want, "in place {isa:?} element {i} phase {phase} lo {lo}");
                    }
                }
            }
        }
        assert!(seen_keep > 0 && seen_drop > 0, "{seen_keep} {seen_drop}");
    }

    #[test]
    fn ties_in_a_long_call_match_the_definition() {
        // 2^22 elements at p = 0.3 (T_lo != 0): about 64 ties, every one checked.
        let rule = DropoutRule::new(0.3, true).unwrap();
        let (t_hi, t_lo) = ((rule.threshold >> 16) as u16, rule.threshold as u16);
        assert_ne!(t_lo, 0);
        let n = 1 << 22;
        let start = HalfPos::new(1 << 35, 1);
        let x = vec![1.0f64; n];
        let mut out = vec![0.0f64; n];
        dropout_forward(&x, &mut out, rule, 4, start).unwrap();
        let mut ties = [0usize; 2];
        for (i, &o) in out.iter().enumerate() {
            let pos = start.advance(i);
            if rng::half(4, pos) == t_hi {
                let keep = rng::tie_half(4, pos) < t_lo;
                ties[keep as usize] += 1;
                assert_eq!(o != 0.0, keep, "tie at {i}");
            }
        }
        assert!(ties[0] > 0 && ties[1] > 0, "{ties:?}");
        assert_eq!(out, reference(&x, rule, 4, start));
    }

    #[test]
    fn result_does_not_depend_on_thread_count() {
        let x = ramp::<f32>(5 * parallel::CHUNK + 77);
        let rule = DropoutRule::new(0.5, true).unwrap();
        for start in [HalfPos::new(1 << 40, 0), HalfPos::new(1 << 40, 1)] {
            let mut outs = Vec::new();
            for threads in [1, 2, 7] {
                parallel::set_num_threads(threads).unwrap();
                let mut out = vec![0.0f32; x.len()];
                dropout_forward(&x, &mut out, rule, 3, start).unwrap();
                outs.push(out);
            }
            parallel::set_num_threads(2).unwrap();
            assert_eq!(outs[0], outs[1]);
            assert_eq!(outs[0], outs[2]);
            assert_eq!(outs[0], reference(&x, rule, 3, start));
        }
    }

    #[test]
    fn splitting_a_call_anywhere_gives_the_same_result() {
        // Pieces at consecutive half-word positions == one call on the whole, also when
        // a piece starts on an odd element (the high half of a word).
        let x = ramp::<f64>(1000);
        let rule = DropoutRule::new(0.4, true).unwrap();
        for phase in [0, 1] {
            let start = HalfPos::new(17, phase);
            let mut whole = vec![0.0; 1000];
            dropout_forward(&x, &mut whole, rule, 8, start).unwrap();
            for cut in [1usize, 2, 333, 334, 999] {
                let mut parts = vec![0.0; 1000];
                let (a, b) = parts.split_at_mut(cut);
                dropout_forward(&x[..cut], a, rule, 8, start).unwrap();
                dropout_forward(&x[cut..], b, rule, 8, start.advance(cut)).unwrap();
                assert_eq!(whole, parts, "phase {phase} cut {cut}");
            }
        }
    }

    #[test]
    fn cache_sizes_parse_as_sysfs_writes_them() {
        assert_eq!(parse_cache_size("32768K"), Some(32 << 20));
        assert_eq!(parse_cache_size("480M"), Some(480 << 20));
        assert_eq!(parse_cache_size("1G"), Some(1 << 30));
        assert_eq!(parse_cache_size("512"), Some(512));
        assert_eq!(parse_cache_size("12Q"), None);
        assert_eq!(parse_cache_size(""), None);
        assert!(stream_threshold() >= STREAM_MIN_BYTES);
    }

    #[test]
    fn streamed_outputs_equal_the_scalar_path_at_any_alignment() {
        // Outputs of at least the threshold take the non-temporal store path on SIMD
        // levels (lowered here to its minimum: only speed depends on it, so other tests
        // running meanwhile are unaffected); start them 0-15 elements past the buffer's
        // start, so every alignment mod 64 bytes occurs (64-, 32-, 16-byte and plain stores).
        STREAM_BYTES.store(STREAM_MIN_BYTES, Ordering::Relaxed);
        let n = STREAM_MIN_BYTES / 4 + 37;
        let x = ramp::<f32>(n + 16);
        let rule = DropoutRule::new(0.3, true).unwrap();
        let start = HalfPos::new(7, 1);
        for skew in 0..16 {
            let mut want = vec![0.0f32; n];
            dropout_forward_with(Isa::SCALAR, &x[..n], &mut want, rule, 2, start).unwrap();
            for i in (0..n).step_by(9973) {
                assert_eq!(want[i] != 0.0, rng::element_keep(2, start.advance(i), rule.threshold));
            }
            for isa in rng::available_isas() {
                let mut buf = vec![0.0f32; n + 16];
                dropout_forward_with(isa, &x[..n], &mut buf[skew..skew + n], rule, 2, start).unwrap();
                assert!(buf[skew..skew + n] == want[..], "{isa:?} skew {skew}");
            }
        }
    }

    #[test]
    fn the_last_words_of_the_stream_are_usable() {
        let rule = DropoutRule::new(0.3, true).unwrap();
        for (n, start) in [(3usize, HalfPos::new(u64::MAX - 1, 1)), (300, HalfPos::new(u64::MAX - 149, 0))] {
            assert_eq!(start.advance(n), HalfPos::new(0, 0)); // ends exactly on word 2^64 - 1
            let x = ramp::<f32>(n);
            let want = reference(&x, rule, 5, start);
            for isa in rng::available_isas() {
                let mut out = vec![0.0f32; n];
                dropout_forward_with(isa, &x, &mut out, rule, 5, start).unwrap();
                assert_eq!(out, want, "{isa:?} n={n}");
            }
        }
    }

    #[test]
    fn half_positions_count_words() {
        assert_eq!(HalfPos::new(3, 1).advance(1), HalfPos::new(4, 0));
        assert_eq!(HalfPos::new(3, 0).advance(3), HalfPos::new(4, 1));
        assert_eq!(HalfPos::new(0, 0).words_for(5), 3);
        assert_eq!(HalfPos::new(0, 1).words_for(5), 3);
        assert_eq!(HalfPos::new(0, 1).words_for(4), 3);
        assert_eq!(HalfPos::new(0, 0).words_for(0), 0);
        assert_eq!(HalfPos::new(u64::MAX, 1).advance(1), HalfPos::new(0, 0));
    }

    #[test]
    fn keep_rate_is_exactly_t_over_2_32_in_expectation() {
        // Binomial 6-sigma bound on 2^21 elements for a p whose T_lo is large.
        let p = p_with_threshold(0x0100, 0xff00); // keep probability ~ 1/256
        let rule = DropoutRule::new(p, false).unwrap();
        let n = 1usize << 21;
        let mut out = vec![0.0f32; n];
        dropout_forward(&vec![1.0f32; n], &mut out, rule, 77, HalfPos::new(0, 0)).unwrap();
        let kept = out.iter().filter(|v| **v != 0.0).count() as f64;
        let q = rule.threshold as f64 / 4_294_967_296.0;
        let (mean, sd) = (n as f64 * q, (n as f64 * q * (1.0 - q)).sqrt());
        assert!((kept - mean).abs() < 6.0 * sd, "{kept} vs {mean}");
    }

    #[test]
    fn edges_p0_p1_and_non_finite() {
        let x = vec![1.0f32, f32::INFINITY, f32::NAN, -2.0];
        let mut out = vec![9.0f32; 4];
        let at = HalfPos::new(0, 0);
        dropout_forward(&x, &mut out, DropoutRule::new(1.0, true).unwrap(), 1, at).unwrap();
        assert_eq!(out, vec![0.0; 4]);
        dropout_forward(&x[..1], &mut out[..1], DropoutRule::new(0.0, true).unwrap(), 1, at).unwrap();
        assert_eq!(out[0], 1.0);
        // A dropped inf/NaN leaves an exact zero, never NaN.
        let big = vec![f32::NAN; 4096];
        let mut o = vec![1.0f32; 4096];
        dropout_forward(&big, &mut o, DropoutRule::new(0.5, true).unwrap(), 2, at).unwrap();
        let zeros = o.iter().filter(|v| **v == 0.0).count();
        assert!(zeros > 1800 && zeros < 2300, "{zeros}");
        assert!(o.iter().all(|v| *v == 0.0 || v.is_nan()));
    }

    #[test]
    fn scale_is_rounded_once_to_the_dtype() {
        let rule = DropoutRule::new(0.3, true).unwrap();
        let x = vec![1.0f32; 256];
        let mut out = vec![0.0f32; 256];
        dropout_forward(&x, &mut out, rule, 0, HalfPos::new(0, 0)).unwrap();
        let s = (1.0f64 / 0.7) as f32;
        assert!(out.iter().all(|&v| v == 0.0 || v == s));
    }

    /// Bit patterns, so that -0.0 and NaN payloads count.
    fn bits<T: Real>(v: &[T]) -> Vec<u64> {
        v.iter().map(|&x| if std::mem::size_of::<T>() == 4 { x.to_f32().unwrap().to_bits() as u64 } else { x.f64().to_bits() }).collect()
    }

    /// Inputs with signed zeros, infinities and NaN between ordinary values.
    fn awkward<T: Real>(n: usize) -> Vec<T> {
        let specials = [-0.0, 0.0, f64::INFINITY, f64::NEG_INFINITY, f64::NAN, 1e-40, -3.5];
        (0..n).map(|i| T::of(if i % 5 == 3 { specials[(i / 5) % specials.len()] } else { i as f64 * 0.37 - 11.0 })).collect()
    }

    fn check_maps_bit_for_bit<T: Real>() {
        // Every start lane inside a block (lead 0..7), lengths around the rows (16 and
        // 32 elements) and steps (64 elements on AVX2, 256 on AVX-512), thresholds with
        // T_lo = 0 and T_lo != 0.
        let scale = Scale(T::of(1.0 / 0.7));
        let affine = Affine { a: T::of(1.7), b: T::of(-0.25), dropped: T::of(-1.75) };
        for &n in &[0usize, 1, 7, 15, 16, 17, 31, 33, 63, 64, 65, 127, 129, 200, 255, 256, 257, 511, 513, 1001] {
            let x = awkward::<T>(n);
            for word in [8u64, 9, 10, 11] {
                for phase in [0u8, 1] {
                    let start = HalfPos::new(word, phase);
                    for threshold in [1u64 << 31, rng::keep_threshold(0.3), 0x0000_0001, 0xffff_0000, 0xffff_ffff] {
                        let keep: Vec<bool> = (0..n).map(|i| rng::element_keep(6, start.advance(i), threshold)).collect();
                        let want_s: Vec<T> = (0..n).map(|i| if keep[i] { x[i] * scale.0 } else { T::zero() }).collect();
                        let want_a: Vec<T> =
                            (0..n).map(|i| if keep[i] { x[i] * affine.a + affine.b } else { affine.dropped }).collect();
                        for isa in rng::available_isas() {
                            let what = format!("{isa:?} n={n} start={start:?} t={threshold:#x}");
                            let mut out = vec![T::one(); n];
                            masked_map_with(isa, &x, &mut out, threshold, scale, 6, start).unwrap();
                            assert_eq!(bits(&out), bits(&want_s), "scale {what}");
                            masked_map_with(isa, &x, &mut out, threshold, affine, 6, start).unwrap();
                            assert_eq!(bits(&out), bits(&want_a), "affine {what}");
                            let mut inplace = x.clone();
                            masked_map_inplace_with(isa, &mut inplace, threshold, affine, 6, start);
                            assert_eq!(bits(&inplace), bits(&want_a), "affine in place {what}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn scale_and_affine_maps_match_the_definition_bit_for_bit_f32() {
        check_maps_bit_for_bit::<f32>();
    }

    #[test]
    fn scale_and_affine_maps_match_the_definition_bit_for_bit_f64() {
        check_maps_bit_for_bit::<f64>();
    }

    #[test]
    fn random_calls_match_the_definition_on_every_path() {
        // Lengths, start positions, output offsets (so every store alignment), thresholds
        // (forced ties included) and maps drawn at random: every path, in place and not,
        // against the scalar definition. A fixed LCG keeps the draw reproducible.
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = |m: u64| {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) % m
        };
        let x32 = awkward::<f32>(3000);
        let x64 = awkward::<f64>(3000);
        for _ in 0..300 {
            let n = next(2900) as usize;
            let skew = next(16) as usize;
            let start = HalfPos::new(next(1 << 40), next(2) as u8);
            let seed = next(1 << 62);
            let threshold = match next(3) {
                0 => next(1 << 32),
                // T_hi equal to the first element's half-word: a tie at element 0 when T_lo != 0.
                1 => ((rng::half(seed, start) as u64) << 16) | next(1 << 16),
                _ => rng::keep_threshold(next(100) as f64 / 100.0),
            };
            let what = format!("n={n} skew={skew} start={start:?} seed={seed} t={threshold:#x}");
            check_random_call(&x32[..n], skew, threshold, seed, start, &what);
            check_random_call(&x64[..n], skew, threshold, seed, start, &what);
        }
    }

    fn check_random_call<T: Real>(x: &[T], skew: usize, threshold: u64, seed: u64, start: HalfPos, what: &str) {
        let n = x.len();
        let scale = Scale(T::of(1.25));
        let affine = Affine { a: T::of(1.7), b: T::of(-0.25), dropped: T::of(-1.75) };
        let keep: Vec<bool> = (0..n).map(|i| rng::element_keep(seed, start.advance(i), threshold)).collect();
        let want_s: Vec<T> = (0..n).map(|i| if keep[i] { x[i] * scale.0 } else { T::zero() }).collect();
        let want_a: Vec<T> = (0..n).map(|i| if keep[i] { x[i] * affine.a + affine.b } else { affine.dropped }).collect();
        for isa in rng::available_isas() {
            let mut buf = vec![T::one(); n + 16];
            let out = &mut buf[skew..skew + n];
            masked_map_with(isa, x, out, threshold, scale, seed, start).unwrap();
            assert_eq!(bits(out), bits(&want_s), "scale {isa:?} {what}");
            masked_map_with(isa, x, out, threshold, affine, seed, start).unwrap();
            assert_eq!(bits(out), bits(&want_a), "affine {isa:?} {what}");
            out.copy_from_slice(x);
            masked_map_inplace_with(isa, out, threshold, scale, seed, start);
            assert_eq!(bits(out), bits(&want_s), "scale in place {isa:?} {what}");
            if threshold != 0 && threshold < 1 << 32 {
                // The same chunk with streaming stores, whatever its size (calls pick them
                // only for outputs past the cache-size threshold).
                let t = threshold as u32;
                kernel::run(isa, Src::Other(x), out, true, t, scale, seed, start);
                assert_eq!(bits(out), bits(&want_s), "scale streamed {isa:?} {what}");
                kernel::run(isa, Src::Other(x), out, true, t, affine, seed, start);
                assert_eq!(bits(out), bits(&want_a), "affine streamed {isa:?} {what}");
            }
        }
    }

    #[test]
    fn forced_ties_inside_whole_steps_on_every_path() {
        // A tie deep inside a long chunk (in a whole 64-element step, not the head or
        // tail), in the first and last row of its step, with T_lo on both sides of its
        // tie lane; other elements sharing that T_hi are ties too and must also match.
        let seed = 33;
        let start = HalfPos::new(4 * 1000, 0);
        let n = 64 * 40 + 5;
        let x = ramp::<f64>(n);
        let mut seen = [0usize; 2];
        for i in [64 * 7, 64 * 7 + 63, 64 * 20 + 17, 64 * 20 + 48] {
            let pos = start.advance(i);
            let (u, v) = (rng::half(seed, pos), rng::tie_half(seed, pos));
            for lo in [v.saturating_add(1).max(1), v.max(1)] {
                let rule = DropoutRule { threshold: ((u as u64) << 16) | lo as u64, scale: 3.0 };
                seen[(v < lo) as usize] += 1;
                let want = reference(&x, rule, seed, start);
                for isa in rng::available_isas() {
                    let mut out = vec![0.0; n];
                    dropout_forward_with(isa, &x, &mut out, rule, seed, start).unwrap();
                    assert_eq!(out, want, "{isa:?} element {i} lo {lo}");
                }
            }
        }
        assert!(seen[0] > 0 && seen[1] > 0, "{seen:?}");
    }

    #[test]
    fn bad_probability_is_an_error() {
        for p in [-0.1, 1.5, f64::NAN] {
            assert!(DropoutRule::new(p, true).is_err());
        }
        let err = DropoutRule::new(1.5, true).unwrap_err().to_string();
        assert_eq!(err, "dropout probability has to be between 0 and 1, but got 1.5");
        let rule = DropoutRule::new(0.5, true).unwrap();
        assert!(dropout_forward(&[1.0f32; 3], &mut [0.0f32; 2], rule, 0, HalfPos::new(0, 0)).is_err());
    }
}
