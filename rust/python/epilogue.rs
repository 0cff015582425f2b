//! Binding of the fused linear-layer epilogues ([`crate::epilogue`]).

use numpy::{PyArrayDyn, PyUntypedArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;

use super::dropout::half_pos;
use super::{dispatch_float, float_array, is_writeable, map_into, new_array, read, require_contiguous, write, Elem};
use crate::dropout::DropoutRule;
use crate::epilogue::{self, Epi};
use crate::rng::HalfPos;

/// `other` as an array of `T` (the first array's dtype), C-contiguous and aligned.
fn same_dtype<'py, T: Elem>(other: &Bound<'py, PyAny>, name: &str) -> PyResult<Bound<'py, PyArrayDyn<T>>> {
    let a = other
        .cast::<PyArrayDyn<T>>()
        .map_err(|_| PyTypeError::new_err(format!("{name} must be an array of the input's dtype")))?
        .clone();
    require_contiguous(&a, name)?;
    Ok(a)
}

/// `z` checked for an in-place write: C-contiguous, aligned, writeable.
fn writeable<T: Elem>(z: &Bound<'_, PyArrayDyn<T>>) -> PyResult<()> {
    require_contiguous(z, "z")?;
    if !is_writeable(z) {
        return Err(PyValueError::new_err("z must be writeable, but it is read-only"));
    }
    Ok(())
}

/// NumPy's `maximum(x, 0)` (NaN kept, -0.0 -> +0.0) into a new array, or into `out`.
#[pyfunction]
#[pyo3(signature = (x, out = None))]
fn relu<'py>(x: &Bound<'py, PyAny>, out: Option<&Bound<'py, PyAny>>) -> PyResult<Bound<'py, PyAny>> {
    dispatch_float!(float_array(x, "input")?, |a| map_into(&a, out, epilogue::relu_into))
}

/// `z = relu(z + bias)` in place over rows of `z.shape[-1]` elements; `bias` (1-D, the
/// row length) may be None. Returns `z`.
#[pyfunction]
#[pyo3(signature = (z, bias = None))]
fn bias_relu_<'py>(z: &Bound<'py, PyAny>, bias: Option<&Bound<'py, PyAny>>) -> PyResult<Bound<'py, PyAny>> {
    dispatch_float!(float_array(z, "z")?, |a| bias_relu_typed(a, bias))
}

fn bias_relu_typed<'py, T: Elem + Epi>(z: Bound<'py, PyArrayDyn<T>>, bias: Option<&Bound<'py, PyAny>>) -> PyResult<Bound<'py, PyAny>> {
    let py = z.py();
    writeable(&z)?;
    let cols = z.shape().last().copied().unwrap_or(1);
    let b = bias.map(|b| same_dtype::<T>(b, "bias")).transpose()?;
    if let Some(b) = &b {
        if b.ndim() != 1 || b.len() != cols {
            return Err(PyValueError::new_err(format!("bias must be 1-D of length {cols}, but has shape {:?}", b.shape())));
        }
    }
    {
        let rb = b.as_ref().map(|b| read(b, "bias")).transpose()?;
        let bs: &[T] = match &rb {
            Some(r) => r.as_slice()?,
            None => &[],
        };
        let mut rw = write(&z, "z")?;
        let zs = rw.as_slice_mut()?;
        py.detach(|| epilogue::bias_relu_inplace(zs, bs, cols))?;
    }
    Ok(z.into_any())
}

/// `z = dropout(relu(z))` in place, element `i` reading half-word `2 * offset + phase + i`
/// of `seed` (the words and rule of `dropout(relu(z), p, ...)`). Returns `z`.
#[pyfunction]
#[pyo3(signature = (z, p, seed, offset, inverted = true, phase = 0))]
fn relu_dropout_<'py>(z: &Bound<'py, PyAny>, p: f64, seed: u64, offset: u64, inverted: bool, phase: u8) -> PyResult<Bound<'py, PyAny>> {
    let rule = DropoutRule::new(p, inverted)?;
    let start = half_pos(offset, phase)?;
    dispatch_float!(float_array(z, "z")?, |a| relu_dropout_typed(a, rule, seed, start))
}

fn relu_dropout_typed<'py, T: Elem + Epi>(z: Bound<'py, PyArrayDyn<T>>, rule: DropoutRule, seed: u64, start: HalfPos) -> PyResult<Bound<'py, PyAny>> {
    let py = z.py();
    writeable(&z)?;
    {
        let mut rw = write(&z, "z")?;
        let zs = rw.as_slice_mut()?;
        py.detach(|| epilogue::relu_dropout_inplace(zs, rule, seed, start));
    }
    Ok(z.into_any())
}

/// The gradient of `y = dropout(relu(z))` (scale `s`, e.g. 1/(1-p)) or of `y = relu(z)`
/// (`s = 1`) from the output: a new array `y > 0 ? dy * s : 0`.
#[pyfunction]
#[pyo3(signature = (y, dy, scale = 1.0))]
fn relu_mask_backward<'py>(y: &Bound<'py, PyAny>, dy: &Bound<'py, PyAny>, scale: f64) -> PyResult<Bound<'py, PyAny>> {
    dispatch_float!(float_array(y, "y")?, |a| relu_mask_backward_typed(a, dy, scale))
}

fn relu_mask_backward_typed<'py, T: Elem + Epi>(y: Bound<'py, PyArrayDyn<T>>, dy: &Bound<'py, PyAny>, scale: f64) -> PyResult<Bound<'py, PyAny>> {
    let py = y.py();
    require_contiguous(&y, "y")?;
    let g = same_dtype::<T>(dy, "dy")?;
    if g.shape() != y.shape() {
        return Err(PyValueError::new_err(format!("dy has shape {:?} but y has shape {:?}", g.shape(), y.shape())));
    }
    let s = T::of(scale);
    let out = new_array::<T>(py, y.shape())?; // the kernel writes every element
    {
        let ry = read(&y, "y")?;
        let rg = read(&g, "dy")?;
        let mut rw = write(&out, "out")?;
        let (ys, gs, os) = (ry.as_slice()?, rg.as_slice()?, rw.as_slice_mut()?);
        py.detach(|| epilogue::relu_mask_backward(ys, gs, os, s))?;
    }
    Ok(out.into_any())
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(relu, m)?)?;
    m.add_function(wrap_pyfunction!(bias_relu_, m)?)?;
    m.add_function(wrap_pyfunction!(relu_dropout_, m)?)?;
    m.add_function(wrap_pyfunction!(relu_mask_backward, m)?)?;
    Ok(())
}
