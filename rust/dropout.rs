//! Element dropout: forward, in-place forward and backward.
//!
//! For drop probability `p`, element `i` of a call at stream offset `o` reads word
//! `o + i` and is kept iff `word < T`, `T = round((1 - p) 2^32)` ([`rng::keep_threshold`]).
//! A kept element becomes `x * s` and a dropped one exactly `0` (chosen, not
//! multiplied, so a dropped `inf`/`NaN` leaves nothing behind). Inverted dropout uses
//! `s = 1/(1-p)` rounded once to the element type (PyTorch's CPU rule); the original
//! ("vanilla") rule of Srivastava et al. uses `s = 1` while training and multiplies by
//! `1 - p` at test time.
//!
//! The backward pass is the same map applied to the incoming gradient with the same
//! `(seed, offset)`: `dx = dy * keep * s`. Nothing is stored between the two.
//!
//! Kernels run over fixed 64-element blocks (fill 64 words, then a branch-free
//! select), compiled twice, plain and with AVX2, and chosen at run time.

use crate::error::{check_probability, check_same_len};
use crate::parallel;
use crate::rng::{self, Isa, BLOCK};
use crate::{Real, Result};

/// What a dropout call does to a kept and to a dropped element.
///
/// `Scale` is ordinary dropout (kept `x * s`, dropped `0`); `Affine` serves alpha
/// dropout (kept `a x + b`, dropped a constant). One generic kernel runs both.
pub trait KeepMap<T: Real>: Copy + Send + Sync {
    fn kept(&self, x: T) -> T;
    fn dropped(&self) -> T;
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

/// `out = dropout(x)` with words `offset ..` of `seed`.
pub fn dropout_forward<T: Real>(x: &[T], out: &mut [T], rule: DropoutRule, seed: u64, offset: u64) -> Result<()> {
    dropout_forward_with(rng::isa(), x, out, rule, seed, offset)
}

/// `x = dropout(x)` in place.
pub fn dropout_forward_inplace<T: Real>(x: &mut [T], rule: DropoutRule, seed: u64, offset: u64) {
    dropout_forward_inplace_with(rng::isa(), x, rule, seed, offset)
}

/// `grad_in = grad_out * keep * s`: the mask recomputed from `(seed, offset)`.
pub fn dropout_backward<T: Real>(
    grad_out: &[T],
    grad_in: &mut [T],
    rule: DropoutRule,
    seed: u64,
    offset: u64,
) -> Result<()> {
    dropout_forward(grad_out, grad_in, rule, seed, offset)
}

/// [`dropout_forward`] on an explicit instruction set.
pub fn dropout_forward_with<T: Real>(
    isa: Isa,
    x: &[T],
    out: &mut [T],
    rule: DropoutRule,
    seed: u64,
    offset: u64,
) -> Result<()> {
    masked_map_with(isa, x, out, rule.threshold, Scale(T::of(rule.scale)), seed, offset)
}

/// [`dropout_forward_inplace`] on an explicit instruction set.
pub fn dropout_forward_inplace_with<T: Real>(isa: Isa, x: &mut [T], rule: DropoutRule, seed: u64, offset: u64) {
    masked_map_inplace_with(isa, x, rule.threshold, Scale(T::of(rule.scale)), seed, offset)
}

/// `out[i] = map.kept(x[i])` if word `offset + i` of `seed` is below `threshold`,
/// else `map.dropped()`: the element-wise Bernoulli kernel every variant shares.
pub fn masked_map<T: Real, M: KeepMap<T>>(
    x: &[T],
    out: &mut [T],
    threshold: u64,
    map: M,
    seed: u64,
    offset: u64,
) -> Result<()> {
    masked_map_with(rng::isa(), x, out, threshold, map, seed, offset)
}

/// [`masked_map`] in place.
pub fn masked_map_inplace<T: Real, M: KeepMap<T>>(x: &mut [T], threshold: u64, map: M, seed: u64, offset: u64) {
    masked_map_inplace_with(rng::isa(), x, threshold, map, seed, offset)
}

fn masked_map_with<T: Real, M: KeepMap<T>>(
    isa: Isa,
    x: &[T],
    out: &mut [T],
    threshold: u64,
    map: M,
    seed: u64,
    offset: u64,
) -> Result<()> {
    check_same_len("dropout input and output lengths", x.len(), out.len())?;
    if threshold == 0 {
        out.fill(map.dropped());
    } else if threshold >= 1 << 32 {
        parallel::zip_chunks(x, out, |_, xc, oc| oc.iter_mut().zip(xc).for_each(|(o, &v)| *o = map.kept(v)));
    } else {
        let t = threshold as u32;
        parallel::zip_chunks(x, out, |start, xc, oc| {
            kernel::run(isa, Src::Other(xc), oc, t, map, seed, offset.wrapping_add(start as u64))
        });
    }
    Ok(())
}

fn masked_map_inplace_with<T: Real, M: KeepMap<T>>(isa: Isa, x: &mut [T], threshold: u64, map: M, seed: u64, offset: u64) {
    if threshold == 0 {
        x.fill(map.dropped());
    } else if threshold >= 1 << 32 {
        parallel::for_each_chunk_mut(x, |_, c| c.iter_mut().for_each(|v| *v = map.kept(*v)));
    } else {
        let t = threshold as u32;
        parallel::for_each_chunk_mut(x, |start, c| {
            kernel::run(isa, Src::Same, c, t, map, seed, offset.wrapping_add(start as u64))
        });
    }
}

/// Where a block reads its input: a separate slice, or the output itself (in place).
#[derive(Clone, Copy)]
enum Src<'a, T> {
    Other(&'a [T]),
    Same,
}

mod kernel {
    use super::*;

    /// One chunk, block by block; `word0` is the word of the chunk's first element.
    #[inline(always)]
    fn chunk<T: Real, M: KeepMap<T>, const LEVEL: u8>(src: Src<'_, T>, out: &mut [T], t: u32, map: M, seed: u64, word0: u64) {
        let mut words = [0u32; BLOCK];
        for (k, oc) in out.chunks_mut(BLOCK).enumerate() {
            let n = oc.len();
            let w = &mut words[..n];
            let at = word0.wrapping_add((k * BLOCK) as u64);
            fill::<LEVEL>(seed, at, w);
            match src {
                Src::Other(x) => select(&x[k * BLOCK..k * BLOCK + n], oc, w, t, map),
                Src::Same => select_inplace(oc, w, t, map),
            }
        }
    }

    /// `o = keep ? map.kept(x) : map.dropped()`, branch-free over one block (vectorises).
    #[inline(always)]
    fn select<T: Real, M: KeepMap<T>>(x: &[T], o: &mut [T], w: &[u32], t: u32, map: M) {
        let n = o.len();
        let (x, w) = (&x[..n], &w[..n]);
        let dropped = map.dropped();
        for i in 0..n {
            let kept = map.kept(x[i]);
            o[i] = if w[i] < t { kept } else { dropped };
        }
    }

    #[inline(always)]
    fn select_inplace<T: Real, M: KeepMap<T>>(o: &mut [T], w: &[u32], t: u32, map: M) {
        let n = o.len();
        let w = &w[..n];
        let dropped = map.dropped();
        for i in 0..n {
            let kept = map.kept(o[i]);
            o[i] = if w[i] < t { kept } else { dropped };
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
            // SAFETY: LEVEL == AVX2 only inside `chunk_avx2`, called only when the
            // CPU has AVX2 (see `run`); likewise AVX512 inside `chunk_avx512`.
            AVX2 => unsafe { rng::avx2::fill_words(seed, at, w) },
            // SAFETY: as above, for AVX-512F.
            AVX512 => unsafe { rng::avx512::fill_words(seed, at, w) },
            _ => rng::fill_words_scalar(seed, at, w),
        }
        #[cfg(not(target_arch = "x86_64"))]
        rng::fill_words_scalar(seed, at, w);
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn chunk_avx2<T: Real, M: KeepMap<T>>(src: Src<'_, T>, out: &mut [T], t: u32, map: M, seed: u64, word0: u64) {
        chunk::<T, M, AVX2>(src, out, t, map, seed, word0)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx2,fma")]
    fn chunk_avx512<T: Real, M: KeepMap<T>>(src: Src<'_, T>, out: &mut [T], t: u32, map: M, seed: u64, word0: u64) {
        chunk::<T, M, AVX512>(src, out, t, map, seed, word0)
    }

    pub(super) fn run<T: Real, M: KeepMap<T>>(isa: Isa, src: Src<'_, T>, out: &mut [T], t: u32, map: M, seed: u64, word0: u64) {
        match isa {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Isa::Avx2` exists only when the CPU reported AVX2 (rng::isa).
            Isa::Avx2 => unsafe { chunk_avx2(src, out, t, map, seed, word0) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Isa::Avx512` exists only when the CPU reported AVX-512F.
            Isa::Avx512 => unsafe { chunk_avx512(src, out, t, map, seed, word0) },
            _ => chunk::<T, M, SCALAR>(src, out, t, map, seed, word0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition, one element at a time, from the scalar word.
    fn reference<T: Real>(x: &[T], rule: DropoutRule, seed: u64, offset: u64) -> Vec<T> {
        let s = T::of(rule.scale);
        x.iter()
            .enumerate()
            .map(|(i, &v)| if (rng::word(seed, offset + i as u64) as u64) < rule.threshold { v * s } else { T::zero() })
            .collect()
    }

    fn ramp<T: Real>(n: usize) -> Vec<T> {
        (0..n).map(|i| T::of(i as f64 * 0.25 - 7.0)).collect()
    }

    fn check_all_paths<T: Real>() {
        for &n in &[0usize, 1, 63, 64, 65, 1000, parallel::SERIAL_BELOW + 4099] {
            for &(p, inverted) in &[(0.5, true), (0.1, true), (0.9, false), (0.3, true)] {
                let rule = DropoutRule::new(p, inverted).unwrap();
                let x = ramp::<T>(n);
                let want = reference(&x, rule, 11, 5);
                for isa in rng::available_isas() {
                    let mut out = vec![T::one(); n];
                    dropout_forward_with(isa, &x, &mut out, rule, 11, 5).unwrap();
                    assert_eq!(out, want, "{isa:?} n={n} p={p}");
                    let mut inplace = x.clone();
                    dropout_forward_inplace_with(isa, &mut inplace, rule, 11, 5);
                    assert_eq!(inplace, want, "in place {isa:?} n={n} p={p}");
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
    fn result_does_not_depend_on_thread_count() {
        let x = ramp::<f32>(5 * parallel::CHUNK + 77);
        let rule = DropoutRule::new(0.5, true).unwrap();
        let mut outs = Vec::new();
        for threads in [1, 2, 7] {
            parallel::set_num_threads(threads).unwrap();
            let mut out = vec![0.0f32; x.len()];
            dropout_forward(&x, &mut out, rule, 3, 1 << 40).unwrap();
            outs.push(out);
        }
        parallel::set_num_threads(2).unwrap();
        assert_eq!(outs[0], outs[1]);
        assert_eq!(outs[0], outs[2]);
        assert_eq!(outs[0], reference(&x, rule, 3, 1 << 40));
    }

    #[test]
    fn splitting_a_call_gives_the_same_result() {
        // Two calls on halves with consecutive offsets == one call on the whole.
        let x = ramp::<f64>(1000);
        let rule = DropoutRule::new(0.4, true).unwrap();
        let mut whole = vec![0.0; 1000];
        dropout_forward(&x, &mut whole, rule, 8, 17).unwrap();
        let mut parts = vec![0.0; 1000];
        let (a, b) = parts.split_at_mut(333);
        dropout_forward(&x[..333], a, rule, 8, 17).unwrap();
        dropout_forward(&x[333..], b, rule, 8, 17 + 333).unwrap();
        assert_eq!(whole, parts);
    }

    #[test]
    fn edges_p0_p1_and_non_finite() {
        let x = vec![1.0f32, f32::INFINITY, f32::NAN, -2.0];
        let mut out = vec![9.0f32; 4];
        dropout_forward(&x, &mut out, DropoutRule::new(1.0, true).unwrap(), 1, 0).unwrap();
        assert_eq!(out, vec![0.0; 4]);
        dropout_forward(&x[..1], &mut out[..1], DropoutRule::new(0.0, true).unwrap(), 1, 0).unwrap();
        assert_eq!(out[0], 1.0);
        // A dropped inf/NaN leaves an exact zero, never NaN.
        let big = vec![f32::NAN; 4096];
        let mut o = vec![1.0f32; 4096];
        dropout_forward(&big, &mut o, DropoutRule::new(0.5, true).unwrap(), 2, 0).unwrap();
        let zeros = o.iter().filter(|v| **v == 0.0).count();
        assert!(zeros > 1800 && zeros < 2300, "{zeros}");
        assert!(o.iter().all(|v| *v == 0.0 || v.is_nan()));
    }

    #[test]
    fn scale_is_rounded_once_to_the_dtype() {
        let rule = DropoutRule::new(0.3, true).unwrap();
        let x = vec![1.0f32; 256];
        let mut out = vec![0.0f32; 256];
        dropout_forward(&x, &mut out, rule, 0, 0).unwrap();
        let s = (1.0f64 / 0.7) as f32;
        assert!(out.iter().all(|&v| v == 0.0 || v == s));
    }

    #[test]
    fn bad_probability_is_an_error() {
        for p in [-0.1, 1.5, f64::NAN] {
            assert!(DropoutRule::new(p, true).is_err());
        }
        let err = DropoutRule::new(1.5, true).unwrap_err().to_string();
        assert_eq!(err, "dropout probability has to be between 0 and 1, but got 1.5");
        assert!(dropout_forward(&[1.0f32; 3], &mut [0.0f32; 2], DropoutRule::new(0.5, true).unwrap(), 0, 0).is_err());
    }
}
