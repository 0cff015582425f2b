//! What the fused SIMD element-dropout kernels ([`super::fused_avx2`],
//! [`super::fused_avx512`]) share: the element-type dispatch, and the scalar rule for
//! the few elements a chunk's head, tail or tie step finishes one at a time.

use super::{Linear, Src};
use crate::rng::{self, HalfPos};
use crate::Real;
use std::any::TypeId;

/// One chunk's pointers and map, for an element type with fused rows.
pub(super) struct Call<E> {
    /// Input (the output itself in place).
    pub x: *const E,
    pub o: *mut E,
    pub n: usize,
    pub lin: Linear<E>,
    /// `x * a + b` (kept) with a dropped constant, rather than `x * a` with dropped `+0.0`.
    pub affine: bool,
}

/// A chunk split by element type.
pub(super) enum Typed {
    F32(Call<f32>),
    F64(Call<f64>),
}

/// The chunk as f32 or f64 with a map the fused rows can apply (`x * a` with dropped
/// `+0.0`, or `x * a + b`); `None` for any other element type or map.
pub(super) fn typed<T: Real>(src: Src<'_, T>, out: &mut [T], lin: Linear<T>) -> Option<Typed> {
    let affine = match lin.b {
        Some(_) => true,
        None if lin.dropped == T::zero() && lin.dropped.is_sign_positive() => false,
        None => return None,
    };
    let n = out.len();
    let o = out.as_mut_ptr();
    let x = match src {
        Src::Other(xs) => {
            assert_eq!(xs.len(), n, "dropout chunk: input and output lengths differ");
            xs.as_ptr()
        }
        Src::Same => o as *const T,
    };
    let conv = |v: T| v.f64(); // exact: T is f32 or f64 below
    if TypeId::of::<T>() == TypeId::of::<f32>() {
        let lin = Linear { a: conv(lin.a) as f32, b: lin.b.map(|b| conv(b) as f32), dropped: conv(lin.dropped) as f32 };
        Some(Typed::F32(Call { x: x.cast(), o: o.cast(), n, lin, affine }))
    } else if TypeId::of::<T>() == TypeId::of::<f64>() {
        let lin = Linear { a: conv(lin.a), b: lin.b.map(conv), dropped: conv(lin.dropped) };
        Some(Typed::F64(Call { x: x.cast(), o: o.cast(), n, lin, affine }))
    } else {
        None
    }
}

/// Whether the element at `pos`, whose half-word is `u`, is kept (contract v2).
#[inline(always)]
pub(super) fn keeps(u: u16, t: u32, seed: u64, pos: HalfPos) -> bool {
    let (t_hi, t_lo) = ((t >> 16) as u16, t as u16);
    if u == t_hi && t_lo != 0 {
        rng::tie_half(seed, pos) < t_lo
    } else {
        u < t_hi
    }
}

/// `o[j] = keep_j ? x[j] * a (+ b) : dropped` for the `u.len()` elements from `pos`,
/// `u[j]` being element `j`'s half-word: one at a time by the scalar rule.
///
/// # Safety
/// `x` readable and `o` writable for `u.len()` elements (equal or disjoint).
pub(super) unsafe fn finish<T: Real>(u: &[u16], x: *const T, o: *mut T, t: u32, lin: &Linear<T>, seed: u64, pos: HalfPos) {
    for (j, &uj) in u.iter().enumerate() {
        // SAFETY: j < u.len(), which the caller guarantees readable / writable.
        unsafe {
            let v = *x.add(j);
            *o.add(j) = if !keeps(uj, t, seed, pos.advance(j)) {
                lin.dropped
            } else {
                match lin.b {
                    Some(b) => v * lin.a + b,
                    None => v * lin.a,
                }
            };
        }
    }
}

/// The keep decisions of a step with a tie, as all-ones / all-zeros 16-bit lanes.
pub(super) fn keep_lanes<const N: usize>(u: &[u16; N], t: u32, seed: u64, pos: HalfPos) -> [u16; N] {
    let mut m = [0u16; N];
    for (j, (mj, &uj)) in m.iter_mut().zip(u).enumerate() {
        *mj = if keeps(uj, t, seed, pos.advance(j)) { 0xffff } else { 0 };
    }
    m
}

/// One instruction set's fused kernel, as the shared [`chunk`] driver sees it: its step
/// length, the few elements it finishes one by one, and its whole steps.
pub(super) trait Steps<T: Real> {
    /// Elements per step.
    const STEP: usize;

    /// `n` elements from lane `lead` of the step from the block holding `pos` (a
    /// chunk's head or tail), one at a time by the scalar rule.
    ///
    /// # Safety
    /// The instruction set is available; `x` readable and `o` writable for `n` elements
    /// (equal or disjoint); `lead + n <= STEP`; `lead` is `pos`'s lane in its block.
    #[allow(clippy::too_many_arguments)]
    unsafe fn partial(&mut self, x: *const T, o: *mut T, n: usize, lead: usize, t: u32, lin: &Linear<T>, seed: u64, pos: HalfPos);

    /// `steps` whole steps from the block-aligned `pos`: stored plainly, or streamed
    /// when `stream` asks for it and the output's alignment allows.
    ///
    /// # Safety
    /// The instruction set is available; `x` readable and `o` writable for
    /// `steps * STEP` elements (equal or disjoint); `pos` starts a block.
    #[allow(clippy::too_many_arguments)]
    unsafe fn steps<const AFFINE: bool>(&mut self, x: *const T, o: *mut T, steps: usize, stream: bool, t: u32, seed: u64, pos: HalfPos);
}

/// One chunk on a fused kernel `s`: the head up to the first block boundary, whole
/// steps, the tail; a fence after streaming stores. Always inlined into the instruction
/// set's `#[target_feature]` wrapper.
///
/// # Safety
/// `s`'s instruction set is available; `x` readable and `o` writable for `n` elements,
/// equal or not overlapping.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn chunk<T: Real, S: Steps<T>, const AFFINE: bool>(
    s: &mut S,
    x: *const T,
    o: *mut T,
    n: usize,
    stream: bool,
    t: u32,
    lin: &Linear<T>,
    seed: u64,
    start: HalfPos,
) {
    let mut i = 0;
    let mut pos = start;
    // Head: from inside a block to the end of its step.
    let lead = (pos.word % 4) as usize * 2 + pos.odd as usize;
    if lead != 0 && n > 0 {
        let take = (S::STEP - lead).min(n);
        // SAFETY: elements 0 .. take <= n; `lead + take <= STEP`.
        unsafe { s.partial(x, o, take, lead, t, lin, seed, pos) };
        i = take;
        pos = pos.advance(take);
    }
    let steps = (n - i) / S::STEP;
    if steps > 0 {
        // SAFETY: elements i .. i + steps * STEP <= n; `pos` is block-aligned here.
        unsafe { s.steps::<AFFINE>(x.add(i), o.add(i), steps, stream, t, seed, pos) };
        i += steps * S::STEP;
        pos = pos.advance(steps * S::STEP);
    }
    if i < n {
        // SAFETY: elements i .. n, fewer than a step, from a block boundary.
        unsafe { s.partial(x.add(i), o.add(i), n - i, 0, t, lin, seed, pos) };
    }
    if stream {
        // SAFETY: SSE is part of the x86-64 baseline. Streaming stores are weakly
        // ordered: the fence orders them before the chunk counts as done.
        unsafe { std::arch::x86_64::_mm_sfence() };
    }
}
