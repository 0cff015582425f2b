//! Fused epilogues of a linear layer: bias + ReLU (+ element dropout) over the GEMM
//! output, in place, and the matching backward, one pass each.
//!
//! `Sequential(Linear, ReLU, Dropout)` costs, unfused, a pass for the bias, a pass and
//! a fresh array for the ReLU, a pass and a fresh array for the dropout, and in the
//! backward a Philox pass for the dropout mask and a pass for the ReLU mask. Here:
//!
//! - [`bias_relu_inplace`]: `z = relu(z + b)` (row-major `z`, `b` per column);
//! - [`relu_dropout_inplace`]: `z = dropout(relu(z))`, the element-dropout kernel of
//!   [`crate::dropout`] with the ReLU folded into its kept-element map, so the words,
//!   the keep rule and the result are exactly element dropout's on `relu(z)`;
//! - [`relu_mask_backward`]: `dz = y > 0 ? dy * s : 0` from the *output* `y` alone.
//!   With `s >= 1` (dropout's scale, or 1 without dropout) `y > 0` holds exactly when
//!   the element was kept and `relu(z) > 0` (a positive value times `s >= 1` stays
//!   positive; NaN is not `> 0`, and a NaN pre-activation gets no gradient from ReLU
//!   either), so no mask is stored and no Philox word is recomputed.
//!
//! Every result is bit-identical to the unfused NumPy/dropcore chain: ReLU is NumPy's
//! `maximum(x, 0)` (NaN kept with its bits, `-0.0` becomes `+0.0`), the bias add is one
//! IEEE addition, dropped elements are exactly `+0`, kept ones `relu(x) * s` with `s`
//! rounded once to the element type, and the backward is dropout's `dy * s` masked by
//! ReLU's `out > 0` (a dropped element's gradient is `+0` either way).

use crate::dropout::{masked_map_inplace, DropoutRule, KeepMap};
use crate::error::{check_same_len, EngineError};
use crate::parallel;
use crate::rng::HalfPos;
use crate::{Real, Result};

/// The element types of the epilogues: [`Real`] plus a branch-free select.
///
/// `if c { x } else { 0 }` on data-dependent signs (half the elements, at random)
/// compiles to a branch the predictor misses about every other element (measured: a
/// 256 x 256 backward took 378 us with the branch, 24 us as a select); ANDing the bits
/// with an all-ones or all-zeros word gives the same values (`x` unchanged, or `+0`)
/// and vectorises.
pub trait Epi: Real {
    /// `x` (every bit) if `c`, else `+0`.
    fn keep_if(c: bool, x: Self) -> Self;
}

impl Epi for f32 {
    #[inline(always)]
    fn keep_if(c: bool, x: f32) -> f32 {
        f32::from_bits(x.to_bits() & 0u32.wrapping_sub(c as u32))
    }
}

impl Epi for f64 {
    #[inline(always)]
    fn keep_if(c: bool, x: f64) -> f64 {
        f64::from_bits(x.to_bits() & 0u64.wrapping_sub(c as u64))
    }
}

/// NumPy's `maximum(x, 0)`: `x` if `x > 0` or `x` is NaN (its bits unchanged), else `+0`.
#[inline(always)]
pub fn relu<T: Epi>(x: T) -> T {
    T::keep_if(x > T::zero() || x.is_nan(), x)
}

/// Kept elements `relu(x) * s`, dropped ones exactly zero: dropout of `relu(x)`.
#[derive(Clone, Copy, Debug)]
pub struct ReluScale<T>(pub T);

impl<T: Epi> KeepMap<T> for ReluScale<T> {
    #[inline(always)]
    fn kept(&self, x: T) -> T {
        relu(x) * self.0
    }
    #[inline(always)]
    fn dropped(&self) -> T {
        T::zero()
    }
}

/// `out = relu(x)`.
pub fn relu_into<T: Epi>(x: &[T], out: &mut [T]) -> Result<()> {
    check_same_len("relu input and output lengths", x.len(), out.len())?;
    parallel::zip_chunks(x, out, |_, xc, oc| oc.iter_mut().zip(xc).for_each(|(o, &v)| *o = relu(v)));
    Ok(())
}

/// `z = relu(z + bias)` in place, `z` holding rows of `bias.len()` elements (no bias: an
/// empty slice, and then `cols` says the row length only for the chunking).
pub fn bias_relu_inplace<T: Epi>(z: &mut [T], bias: &[T], cols: usize) -> Result<()> {
    if cols == 0 {
        return if z.is_empty() { Ok(()) } else { Err(EngineError::Invalid("rows of 0 columns hold no element".into())) };
    }
    if !z.len().is_multiple_of(cols) {
        return Err(EngineError::Shape { what: "bias_relu: elements vs row length", left: vec![z.len()], right: vec![cols] });
    }
    if bias.is_empty() {
        parallel::for_each_chunk_mut(z, |_, c| c.iter_mut().for_each(|v| *v = relu(*v)));
        return Ok(());
    }
    check_same_len("bias_relu: row length vs bias length", cols, bias.len())?;
    // Whole rows per chunk, so each chunk pairs its elements with the bias from column 0.
    let rows_per_chunk = (parallel::CHUNK / cols).max(1);
    parallel::for_each_chunk_by(z, rows_per_chunk * cols, |_, c| {
        for row in c.chunks_exact_mut(cols) {
            row.iter_mut().zip(bias).for_each(|(v, &b)| *v = relu(*v + b));
        }
    });
    Ok(())
}

/// `z = dropout(relu(z))` in place: element `i` reads half-word `start + i` of `seed`
/// exactly as [`crate::dropout::dropout_forward_inplace`] does.
pub fn relu_dropout_inplace<T: Epi>(z: &mut [T], rule: DropoutRule, seed: u64, start: HalfPos) {
    masked_map_inplace(z, rule.threshold, ReluScale(T::of(rule.scale)), seed, start)
}

/// `dz = y > 0 ? dy * s : +0` (`s == 1`: `dy` with its bits unchanged), the gradient of
/// `y = dropout(relu(z))` (scale `s`) or `y = relu(z)` (`s = 1`) from the output alone.
pub fn relu_mask_backward<T: Epi>(y: &[T], dy: &[T], dz: &mut [T], s: T) -> Result<()> {
    check_same_len("relu backward: output and gradient lengths", y.len(), dy.len())?;
    check_same_len("relu backward: gradient lengths", dy.len(), dz.len())?;
    if s.is_nan() || s < T::one() {
        return Err(EngineError::Invalid(format!("relu backward: scale must be >= 1, but got {s:?}")));
    }
    let one = s == T::one();
    parallel::zip_chunks(y, dz, |at, yc, oc| {
        let gc = &dy[at..at + yc.len()];
        if one {
            oc.iter_mut().zip(yc.iter().zip(gc)).for_each(|(o, (&v, &g))| *o = T::keep_if(v > T::zero(), g));
        } else {
            oc.iter_mut().zip(yc.iter().zip(gc)).for_each(|(o, (&v, &g))| *o = T::keep_if(v > T::zero(), g * s));
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dropout::dropout_forward;

    fn values<T: Real>(n: usize) -> Vec<T> {
        let special = [T::nan(), -T::nan(), T::infinity(), T::neg_infinity(), T::zero(), -T::zero(), T::min_positive_value()];
        (0..n).map(|i| if i % 17 == 3 { special[(i / 17) % special.len()] } else { T::of(i as f64 * 0.37 - 40.0) }).collect()
    }

    fn bits<T: Real>(v: &[T]) -> Vec<u64> {
        v.iter().map(|x| x.f64().to_bits()).collect()
    }

    fn check<T: Epi>() {
        for &n in &[0usize, 1, 7, 256, 1000, parallel::SERIAL_BELOW + 4099] {
            let x = values::<T>(n);
            // relu: selection, so NaN keeps its sign, -0 becomes +0.
            let mut r = vec![T::zero(); n];
            relu_into(&x, &mut r).unwrap();
            for (&v, &o) in x.iter().zip(&r) {
                if v.is_nan() {
                    assert!(o.is_nan() && o.is_sign_negative() == v.is_sign_negative());
                } else {
                    assert_eq!(bits(&[o]), bits(&[if v > T::zero() { v } else { T::zero() }]));
                }
            }
            // bias + relu against the two steps.
            for cols in [1usize, 7, 256] {
                if n % cols != 0 {
                    continue;
                }
                let b: Vec<T> = (0..cols).map(|c| T::of(c as f64 * 0.5 - 3.0)).collect();
                let mut z = x.clone();
                bias_relu_inplace(&mut z, &b, cols).unwrap();
                let want: Vec<T> = x.iter().enumerate().map(|(i, &v)| relu(v + b[i % cols])).collect();
                assert_eq!(bits(&z), bits(&want));
            }
            // relu + dropout against dropout of the relu output.
            for &(p, inverted, phase) in &[(0.5, true, 0u8), (0.2, true, 1), (0.9, false, 0)] {
                let rule = DropoutRule::new(p, inverted).unwrap();
                let start = HalfPos::new(12345, phase);
                let mut want = vec![T::zero(); n];
                dropout_forward(&r, &mut want, rule, 9, start).unwrap();
                let mut z = x.clone();
                relu_dropout_inplace(&mut z, rule, 9, start);
                assert_eq!(bits(&z), bits(&want));
                // backward from the output against dropout's backward then relu's mask.
                let g: Vec<T> = (0..n).map(|i| T::of((i as f64 * 0.91).sin())).collect();
                let mut gd = vec![T::zero(); n];
                dropout_forward(&g, &mut gd, rule, 9, start).unwrap();
                let want_g: Vec<T> = gd.iter().zip(&r).map(|(&v, &o)| if o > T::zero() { v } else { T::zero() }).collect();
                let mut dz = vec![T::one(); n];
                relu_mask_backward(&z, &g, &mut dz, T::of(rule.scale)).unwrap();
                assert_eq!(bits(&dz), bits(&want_g));
            }
        }
    }

    #[test]
    fn fused_kernels_equal_the_unfused_chain_f32() {
        check::<f32>();
    }

    #[test]
    fn fused_kernels_equal_the_unfused_chain_f64() {
        check::<f64>();
    }

    #[test]
    fn bad_shapes_are_errors() {
        let mut z = vec![0f32; 10];
        assert!(bias_relu_inplace(&mut z, &[0.0; 3], 3).is_err());
        assert!(bias_relu_inplace(&mut z, &[0.0; 3], 5).is_err());
        assert!(relu_mask_backward(&[0f32; 3], &[0f32; 2], &mut [0f32; 3], 1.0).is_err());
        assert!(relu_mask_backward(&[0f32; 3], &[0f32; 3], &mut [0f32; 3], 0.5).is_err());
    }
}
