//! Binding of the dropout variants: alpha (element and grouped), channel / DropPath
//! (grouped), Gaussian, DropBlock and per-example DropConnect.

use numpy::{PyArrayDyn, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use super::{dispatch_float, float_array, map_into, new_array, read, require_contiguous, write, Elem};
use crate::dropout::{masked_map, Affine, KeepMap, Scale};
use crate::error::check_probability;
use super::dropout::half_pos;
use crate::rng::{keep_threshold, HalfPos};
use crate::variants::dropblock::DropBlock;
use crate::variants::dropconnect::DropConnect;
use crate::variants::gaussian;
use crate::variants::grouped::grouped_masked_map;

/// The kept/dropped map: `x * a` and 0 when `b == dropped == 0`, else `a x + b` / `dropped`.
fn run_map<T: Elem>(
    xs: &[T],
    os: &mut [T],
    inner: Option<usize>,
    threshold: u64,
    (a, b, dropped): (f64, f64, f64),
    seed: u64,
    start: HalfPos,
) -> crate::Result<()> {
    fn go<T: Elem, M: KeepMap<T>>(xs: &[T], os: &mut [T], inner: Option<usize>, t: u64, m: M, seed: u64, start: HalfPos) -> crate::Result<()> {
        match inner {
            None => masked_map(xs, os, t, m, seed, start),
            Some(inner) => grouped_masked_map(xs, os, inner, t, m, seed, start.word),
        }
    }
    if b == 0.0 && dropped == 0.0 {
        go(xs, os, inner, threshold, Scale(T::of(a)), seed, start)
    } else {
        go(xs, os, inner, threshold, Affine { a: T::of(a), b: T::of(b), dropped: T::of(dropped) }, seed, start)
    }
}

/// Bernoulli keep/drop with drop probability `p` and an affine kept/dropped map:
/// kept `a x + b`, dropped `dropped`. `inner=None`: element masks, element `i` at
/// half-word `2 * offset + phase + i` (SPEC §2, contract v2); otherwise one word per
/// contiguous group of `inner` elements (`phase` must be 0). Writes into `out` when given.
#[pyfunction]
#[pyo3(signature = (x, p, a, b, dropped, seed, offset, inner = None, out = None, phase = 0))]
#[allow(clippy::too_many_arguments)]
fn bernoulli_map<'py>(
    x: &Bound<'py, PyAny>,
    p: f64,
    a: f64,
    b: f64,
    dropped: f64,
    seed: u64,
    offset: u64,
    inner: Option<usize>,
    out: Option<&Bound<'py, PyAny>>,
    phase: u8,
) -> PyResult<Bound<'py, PyAny>> {
    check_probability("dropout probability", p)?;
    let t = keep_threshold(p);
    let start = half_pos(offset, phase)?;
    if inner.is_some() && phase != 0 {
        return Err(PyValueError::new_err("phase applies to element masks only (inner=None); grouped masks read whole words"));
    }
    dispatch_float!(float_array(x, "input")?, |arr| map_into(&arr, out, |xs, os| run_map(xs, os, inner, t, (a, b, dropped), seed, start)))
}

/// Gaussian noise: `x * (1 + scale z)` if `multiplicative`, else `x + scale z`, element
/// `i` taking variate `phase + i` of the call at word `offset` (paired Box-Muller: the
/// variates `2k`, `2k + 1` read words `offset + 2k`, `offset + 2k + 1`). Writes into
/// `out` when given.
#[pyfunction]
#[pyo3(signature = (x, scale, multiplicative, seed, offset, out = None, phase = 0))]
#[allow(clippy::too_many_arguments)]
fn gaussian_map<'py>(
    x: &Bound<'py, PyAny>,
    scale: f64,
    multiplicative: bool,
    seed: u64,
    offset: u64,
    out: Option<&Bound<'py, PyAny>>,
    phase: u8,
) -> PyResult<Bound<'py, PyAny>> {
    if !scale.is_finite() || scale < 0.0 {
        return Err(PyValueError::new_err(format!("noise scale must be finite and non-negative, but got {scale}")));
    }
    half_pos(offset, phase)?; // the same check of `phase` as the element masks'
    dispatch_float!(float_array(x, "input")?, |arr| map_into(&arr, out, |xs, os| if multiplicative {
        gaussian::gaussian_dropout_at(xs, os, scale, seed, offset, phase)
    } else {
        gaussian::gaussian_noise_at(xs, os, scale, seed, offset, phase)
    }))
}

/// DropBlock on a C-contiguous (N, C, H, W) array (forward, or backward on a gradient).
/// Writes into `out` when given.
#[pyfunction]
#[pyo3(signature = (x, p, block_size, seed, offset, out = None))]
fn drop_block2d<'py>(
    x: &Bound<'py, PyAny>,
    p: f64,
    block_size: usize,
    seed: u64,
    offset: u64,
    out: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    dispatch_float!(float_array(x, "input")?, |arr| {
        let shape = arr.shape().to_vec();
        if shape.len() != 4 {
            return Err(PyValueError::new_err(format!("drop_block2d expects (N, C, H, W), but got shape {shape:?}")));
        }
        let db = DropBlock::new(shape[0] * shape[1], shape[2], shape[3], block_size, p, seed, offset)?;
        map_into(&arr, out, |xs, os| db.apply(xs, os))
    })
}

/// Per-example DropConnect forward: `x (B, I)`, `weight (O, I)`, optional `bias (O,)`.
#[pyfunction]
#[pyo3(signature = (x, weight, bias, p, seed, offset))]
fn dropconnect_forward<'py>(
    x: &Bound<'py, PyAny>,
    weight: &Bound<'py, PyAny>,
    bias: Option<&Bound<'py, PyAny>>,
    p: f64,
    seed: u64,
    offset: u64,
) -> PyResult<Bound<'py, PyAny>> {
    dispatch_float!(float_array(x, "input")?, |xa| {
        let wa = same_dtype(&xa, weight, "weight")?;
        let ba = bias.map(|b| same_dtype(&xa, b, "bias")).transpose()?;
        let (bsz, ni, no) = linear_dims(&xa, &wa)?;
        let dc = DropConnect::new(bsz, ni, no, p, seed, offset)?;
        let py = xa.py();
        let out = new_array(py, &[bsz, no])?;
        {
            let (xr, wr) = (read(&xa, "input")?, read(&wa, "weight")?);
            let br = ba.as_ref().map(|b| read(b, "bias")).transpose()?;
            let (xs, ws) = (xr.as_slice()?, wr.as_slice()?);
            let bs = br.as_ref().map(|b| b.as_slice()).transpose()?;
            let mut orw = write(&out, "output")?;
            let os = orw.as_slice_mut()?;
            py.detach(|| dc.forward(xs, ws, bs, os))?;
        }
        Ok(out.into_any())
    })
}

/// Per-example DropConnect backward: `(grad_input, grad_weight)` for the upstream gradient `g (B, O)`.
#[pyfunction]
fn dropconnect_backward<'py>(
    g: &Bound<'py, PyAny>,
    x: &Bound<'py, PyAny>,
    weight: &Bound<'py, PyAny>,
    p: f64,
    seed: u64,
    offset: u64,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    dispatch_float!(float_array(x, "input")?, |xa| {
        let wa = same_dtype(&xa, weight, "weight")?;
        let ga = same_dtype(&xa, g, "gradient")?;
        let (bsz, ni, no) = linear_dims(&xa, &wa)?;
        if ga.shape() != [bsz, no] {
            return Err(PyValueError::new_err(format!("gradient has shape {:?} but the output has shape {:?}", ga.shape(), [bsz, no])));
        }
        let dc = DropConnect::new(bsz, ni, no, p, seed, offset)?;
        let py = xa.py();
        let gx = new_array(py, &[bsz, ni])?;
        let gw = new_array(py, &[no, ni])?;
        {
            let (xr, wr, gr) = (read(&xa, "input")?, read(&wa, "weight")?, read(&ga, "gradient")?);
            let (xs, ws, gs) = (xr.as_slice()?, wr.as_slice()?, gr.as_slice()?);
            let (mut gxr, mut gwr) = (write(&gx, "grad_input")?, write(&gw, "grad_weight")?);
            let (gxs, gws) = (gxr.as_slice_mut()?, gwr.as_slice_mut()?);
            py.detach(|| -> crate::Result<()> {
                dc.grad_input(gs, ws, gxs)?;
                dc.grad_weight(gs, xs, gws)
            })?;
        }
        Ok((gx.into_any(), gw.into_any()))
    })
}

/// `other` as a contiguous array of `like`'s dtype, or a `TypeError`/`ValueError`.
fn same_dtype<'py, T: Elem>(like: &Bound<'py, PyArrayDyn<T>>, other: &Bound<'py, PyAny>, name: &str) -> PyResult<Bound<'py, PyArrayDyn<T>>> {
    let _ = like;
    let arr = other
        .cast::<PyArrayDyn<T>>()
        .map_err(|_| pyo3::exceptions::PyTypeError::new_err(format!("{name} must be an array of the input's dtype")))?
        .clone();
    require_contiguous(&arr, name)?;
    Ok(arr)
}

fn linear_dims<T: Elem>(x: &Bound<'_, PyArrayDyn<T>>, w: &Bound<'_, PyArrayDyn<T>>) -> PyResult<(usize, usize, usize)> {
    require_contiguous(x, "input")?;
    let (xs, ws) = (x.shape(), w.shape());
    if xs.len() != 2 || ws.len() != 2 || xs[1] != ws[1] {
        return Err(PyValueError::new_err(format!(
            "dropconnect expects input (B, I) and weight (O, I), but got shapes {xs:?} and {ws:?}"
        )));
    }
    Ok((xs[0], xs[1], ws[0]))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(bernoulli_map, m)?)?;
    m.add_function(wrap_pyfunction!(gaussian_map, m)?)?;
    m.add_function(wrap_pyfunction!(drop_block2d, m)?)?;
    m.add_function(wrap_pyfunction!(dropconnect_forward, m)?)?;
    m.add_function(wrap_pyfunction!(dropconnect_backward, m)?)?;
    Ok(())
}
