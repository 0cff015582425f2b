//! The PyO3 binding: the only module that knows Python.
//!
//! Conventions every binding file follows:
//! - arguments are converted and validated here (dtype -> `TypeError`, engine errors
//!   -> `ValueError` via `From<EngineError> for PyErr`), then the kernel runs inside
//!   `py.detach` so the GIL is released;
//! - arrays arrive C-contiguous (the Python layer makes them so) and are read through
//!   slices; outputs are fresh NumPy arrays filled in place, so nothing is copied;
//! - one generic body per function serves f32 and f64 through [`dispatch_float!`];
//! - a Rust panic becomes a Python exception (PyO3's `PanicException`), never an abort.
//!
//! As in every NumPy extension, another Python thread mutating an array while a kernel
//! reads it (with the GIL released) is a data race the caller must avoid.

use numpy::ndarray::IxDyn;
use numpy::{dtype, PyArray, PyArrayDescrMethods, PyArrayDyn, PyArrayMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;

use crate::{EngineError, Real};

mod dropout;
mod variants;

impl From<EngineError> for PyErr {
    fn from(e: EngineError) -> PyErr {
        PyValueError::new_err(e.to_string())
    }
}

/// An element type that crosses the boundary: `f32` or `f64`.
pub(crate) trait Elem: Real + numpy::Element {}
impl Elem for f32 {}
impl Elem for f64 {}

/// A float NumPy array of either dtype.
pub(crate) enum FloatArray<'py> {
    F32(Bound<'py, PyArrayDyn<f32>>),
    F64(Bound<'py, PyArrayDyn<f64>>),
}

/// `x` as a float32/float64 array, or a `TypeError` naming `name` and the dtype.
pub(crate) fn float_array<'py>(x: &Bound<'py, PyAny>, name: &str) -> PyResult<FloatArray<'py>> {
    let py = x.py();
    let arr = x
        .cast::<PyUntypedArray>()
        .map_err(|_| PyTypeError::new_err(format!("{name} must be a numpy.ndarray, but got {}", type_name(x))))?;
    let dt = arr.dtype();
    if dt.is_equiv_to(&dtype::<f32>(py)) {
        Ok(FloatArray::F32(arr.cast::<PyArrayDyn<f32>>()?.clone()))
    } else if dt.is_equiv_to(&dtype::<f64>(py)) {
        Ok(FloatArray::F64(arr.cast::<PyArrayDyn<f64>>()?.clone()))
    } else {
        Err(PyTypeError::new_err(format!("{name} must be float32 or float64, but got dtype {dt}")))
    }
}

fn type_name(x: &Bound<'_, PyAny>) -> String {
    x.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "?".into())
}

/// Run one generic body for whichever float dtype the array has:
/// `dispatch_float!(arr, |a| body)` binds `a: Bound<PyArrayDyn<T>>` with `T` f32 or f64.
macro_rules! dispatch_float {
    ($arr:expr, |$a:ident| $body:expr) => {
        match $arr {
            $crate::python::FloatArray::F32($a) => $body,
            $crate::python::FloatArray::F64($a) => $body,
        }
    };
}
pub(crate) use dispatch_float;

/// A fresh C-contiguous array of `shape`, to be completely written by a kernel.
pub(crate) fn new_array<'py, T: Elem>(py: Python<'py>, shape: &[usize]) -> Bound<'py, PyArrayDyn<T>> {
    // SAFETY: `PyArray::new` returns uninitialised memory; every caller hands the
    // whole slice to a kernel that writes each element before Python can see the
    // array (the array is not returned before the kernel finishes). f32/f64 have no
    // invalid bit patterns.
    unsafe { PyArray::<T, IxDyn>::new(py, IxDyn(shape), false) }
}

/// Where a kernel writes the result for input `a`: the caller's `out` (checked: the
/// input's dtype and shape, C-contiguous) or a fresh array.
pub(crate) fn output_for<'py, T: Elem>(
    a: &Bound<'py, PyArrayDyn<T>>,
    out: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyArrayDyn<T>>> {
    let Some(o) = out else {
        return Ok(new_array::<T>(a.py(), a.shape()));
    };
    let o = o
        .cast::<PyArrayDyn<T>>()
        .map_err(|_| PyValueError::new_err("out must be an array of the input's dtype"))?
        .clone();
    require_contiguous(&o, "out")?;
    if o.shape() != a.shape() {
        return Err(PyValueError::new_err(format!(
            "out has shape {:?} but the input has shape {:?}",
            o.shape(),
            a.shape()
        )));
    }
    Ok(o)
}

/// `kernel(x, out)` with the GIL released, into `out` (checked) or a fresh array.
pub(crate) fn map_into<'py, T: Elem>(
    a: &Bound<'py, PyArrayDyn<T>>,
    out: Option<&Bound<'py, PyAny>>,
    kernel: impl FnOnce(&[T], &mut [T]) -> crate::Result<()> + Send,
) -> PyResult<Bound<'py, PyAny>> {
    let py = a.py();
    require_contiguous(a, "input")?;
    let out = output_for(a, out)?;
    {
        let ro = a.readonly();
        let xs = ro.as_slice()?;
        // Fails (rather than aliasing) if `out` overlaps `x` or is read-only.
        let mut rw = out
            .try_readwrite()
            .map_err(|e| PyValueError::new_err(format!("out must be writeable and must not overlap the input: {e}")))?;
        let os = rw.as_slice_mut()?;
        py.detach(|| kernel(xs, os))?;
    }
    Ok(out.into_any())
}

/// The contiguous data of `a` for reading, or a `ValueError`.
pub(crate) fn require_contiguous<T: Elem>(a: &Bound<'_, PyArrayDyn<T>>, name: &str) -> PyResult<()> {
    if a.is_c_contiguous() {
        Ok(())
    } else {
        Err(PyValueError::new_err(format!("{name} must be C-contiguous (the Python layer copies it)")))
    }
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    dropout::register(m)?;
    variants::register(m)?;
    Ok(())
}
