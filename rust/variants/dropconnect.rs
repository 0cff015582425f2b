//! DropConnect (Wan et al., ICML 2013) with one weight mask per example.
//!
//! For input `x (B, I)`, weight `W (O, I)`: `y[b, o] = s * sum_i x[b, i] W[o, i] keep(b, o, i) + bias[o]`
//! with `keep(b, o, i)` the contract-v2 element decision (SPEC §2) of half-word
//! `2 offset + (b O + o) I + i` and `s = 1/(1-p)`: one Philox word serves two entries,
//! so a call takes `ceil(B O I / 2)` words. The mask row of `(b, o)` is generated on
//! the fly (as comparison keys, [`rng::fill_element_keys_with`]) into a small buffer
//! inside the dot product, so the `B` masked weight matrices never exist.
//! Backward regenerates the same rows. (A mask shared by the batch is ordinary
//! element dropout of `W`, followed by a GEMM.)

use crate::error::EngineError;
use crate::parallel;
use crate::rng;
use crate::{Real, Result};

/// Sizes and randomness of one per-example DropConnect call.
#[derive(Clone, Copy, Debug)]
pub struct DropConnect {
    pub batch: usize,
    pub inputs: usize,
    pub outputs: usize,
    pub threshold: u64,
    pub scale: f64,
    pub seed: u64,
    pub offset: u64,
}

/// Keep iff `key < t`, compared in u32 so the loops vectorise.
#[inline(always)]
fn masked_dot<T: Real>(a: &[T], b: &[T], words: &[u32], t: u32) -> T {
    const L: usize = 16;
    let mut acc = [T::zero(); L];
    let n = a.len() / L * L;
    for ((ac, bc), wc) in a[..n].chunks_exact(L).zip(b[..n].chunks_exact(L)).zip(words[..n].chunks_exact(L)) {
        for k in 0..L {
            let v = ac[k] * bc[k];
            acc[k] = acc[k] + if wc[k] < t { v } else { T::zero() };
        }
    }
    let mut total = acc.iter().fold(T::zero(), |s, &v| s + v);
    for i in n..a.len() {
        if words[i] < t {
            total = total + a[i] * b[i];
        }
    }
    total
}

/// `dst += c * keep * src` over one row.
#[inline(always)]
fn masked_axpy<T: Real>(dst: &mut [T], c: T, src: &[T], words: &[u32], t: u32) {
    let n = dst.len();
    let (src, words) = (&src[..n], &words[..n]);
    for i in 0..n {
        let v = c * src[i];
        dst[i] = dst[i] + if words[i] < t { v } else { T::zero() };
    }
}

impl DropConnect {
    pub fn new(batch: usize, inputs: usize, outputs: usize, p: f64, seed: u64, offset: u64) -> Result<Self> {
        crate::error::check_probability("dropconnect probability", p)?;
        if p == 0.0 {
            return Err(EngineError::Invalid("dropconnect with p = 0 is the plain linear layer: use a GEMM".into()));
        }
        let scale = if p < 1.0 { 1.0 / (1.0 - p) } else { 0.0 };
        Ok(Self { batch, inputs, outputs, threshold: rng::keep_threshold(p), scale, seed, offset })
    }

    /// The threshold as u32 (`new` rejects p = 0, the one case that needs 2^32).
    fn t32(&self) -> u32 {
        self.threshold as u32
    }

    /// Comparison keys of mask row `(b, o)`: entry `i` is kept iff `buf[i] < t32()`.
    fn row_words(&self, b: usize, o: usize, buf: &mut [u32]) {
        let start = rng::HalfPos::new(self.offset, 0).advance((b * self.outputs + o) * self.inputs);
        rng::fill_element_keys_with(rng::isa(), self.seed, start, self.t32(), buf);
    }

    fn check(&self, what: &'static str, got: usize, want: usize) -> Result<()> {
        if got != want {
            return Err(EngineError::Shape { what, left: vec![got], right: vec![want] });
        }
        Ok(())
    }

    /// `out (B, O) = per-example masked x W^T * s + bias`.
    pub fn forward<T: Real>(&self, x: &[T], w: &[T], bias: Option<&[T]>, out: &mut [T]) -> Result<()> {
        let (bsz, ni, no) = (self.batch, self.inputs, self.outputs);
        self.check("dropconnect input length vs B*I", x.len(), bsz * ni)?;
        self.check("dropconnect weight length vs O*I", w.len(), no * ni)?;
        self.check("dropconnect output length vs B*O", out.len(), bsz * no)?;
        if let Some(bv) = bias {
            self.check("dropconnect bias length vs O", bv.len(), no)?;
        }
        let s = T::of(self.scale);
        parallel::for_each_chunk_by(out, no.max(1), |start, orow| {
            let b = start / no.max(1);
            let xr = &x[b * ni..(b + 1) * ni];
            let mut words = vec![0u32; ni];
            for (o, y) in orow.iter_mut().enumerate() {
                self.row_words(b, o, &mut words);
                let dot = masked_dot(xr, &w[o * ni..(o + 1) * ni], &words, self.t32());
                *y = dot * s + bias.map_or(T::zero(), |bv| bv[o]);
            }
        });
        Ok(())
    }

    /// `grad_x (B, I) = s * sum_o g[b, o] keep(b, o, :) W[o, :]`.
    pub fn grad_input<T: Real>(&self, g: &[T], w: &[T], grad_x: &mut [T]) -> Result<()> {
        let (bsz, ni, no) = (self.batch, self.inputs, self.outputs);
        self.check("dropconnect gradient length vs B*O", g.len(), bsz * no)?;
        self.check("dropconnect grad_input length vs B*I", grad_x.len(), bsz * ni)?;
        let s = T::of(self.scale);
        grad_x.fill(T::zero());
        parallel::for_each_chunk_by(grad_x, ni.max(1), |start, gx| {
            let b = start / ni.max(1);
            let mut words = vec![0u32; ni];
            for o in 0..no {
                self.row_words(b, o, &mut words);
                masked_axpy(gx, g[b * no + o] * s, &w[o * ni..(o + 1) * ni], &words, self.t32());
            }
        });
        Ok(())
    }

    /// `grad_W (O, I) = s * sum_b g[b, o] keep(b, o, :) x[b, :]`.
    pub fn grad_weight<T: Real>(&self, g: &[T], x: &[T], grad_w: &mut [T]) -> Result<()> {
        let (bsz, ni, no) = (self.batch, self.inputs, self.outputs);
        self.check("dropconnect gradient length vs B*O", g.len(), bsz * no)?;
        self.check("dropconnect grad_weight length vs O*I", grad_w.len(), no * ni)?;
        let s = T::of(self.scale);
        grad_w.fill(T::zero());
        parallel::for_each_chunk_by(grad_w, ni.max(1), |start, gw| {
            let o = start / ni.max(1);
            let mut words = vec![0u32; ni];
            for b in 0..bsz {
                self.row_words(b, o, &mut words);
                masked_axpy(gw, g[b * no + o] * s, &x[b * ni..(b + 1) * ni], &words, self.t32());
            }
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keep(dc: &DropConnect, b: usize, o: usize, i: usize) -> f64 {
        let j = (b * dc.outputs + o) * dc.inputs + i;
        rng::element_keep(dc.seed, rng::HalfPos::new(dc.offset, 0).advance(j), dc.threshold) as u8 as f64
    }

    #[test]
    fn forward_and_backward_match_the_definition() {
        let (bsz, ni, no) = (5, 19, 7);
        let dc = DropConnect::new(bsz, ni, no, 0.4, 3, 11).unwrap();
        let x: Vec<f64> = (0..bsz * ni).map(|k| ((k * 7) % 13) as f64 - 6.0).collect();
        let w: Vec<f64> = (0..no * ni).map(|k| ((k * 5) % 11) as f64 * 0.1 - 0.5).collect();
        let bias: Vec<f64> = (0..no).map(|o| o as f64).collect();
        let g: Vec<f64> = (0..bsz * no).map(|k| (k % 4) as f64 - 1.5).collect();
        let mut y = vec![0.0; bsz * no];
        dc.forward(&x, &w, Some(&bias), &mut y).unwrap();
        let mut gx = vec![0.0; bsz * ni];
        dc.grad_input(&g, &w, &mut gx).unwrap();
        let mut gw = vec![0.0; no * ni];
        dc.grad_weight(&g, &x, &mut gw).unwrap();
        for b in 0..bsz {
            for o in 0..no {
                let want: f64 = (0..ni).map(|i| x[b * ni + i] * w[o * ni + i] * keep(&dc, b, o, i)).sum::<f64>() * dc.scale + bias[o];
                assert!((y[b * no + o] - want).abs() < 1e-9);
            }
            for i in 0..ni {
                let want: f64 = (0..no).map(|o| g[b * no + o] * w[o * ni + i] * keep(&dc, b, o, i)).sum::<f64>() * dc.scale;
                assert!((gx[b * ni + i] - want).abs() < 1e-9);
            }
        }
        for o in 0..no {
            for i in 0..ni {
                let want: f64 = (0..bsz).map(|b| g[b * no + o] * x[b * ni + i] * keep(&dc, b, o, i)).sum::<f64>() * dc.scale;
                assert!((gw[o * ni + i] - want).abs() < 1e-9);
            }
        }
    }

    #[test]
    fn shape_errors() {
        let dc = DropConnect::new(2, 3, 4, 0.5, 0, 0).unwrap();
        let mut y = vec![0.0f32; 8];
        assert!(dc.forward(&[0.0f32; 5], &[0.0; 12], None, &mut y).is_err());
        assert!(DropConnect::new(2, 3, 4, -0.5, 0, 0).is_err());
        assert!(DropConnect::new(2, 3, 4, 0.0, 0, 0).is_err());
    }
}
