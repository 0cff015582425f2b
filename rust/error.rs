//! The engine's one error type; the binding maps each kind to a Python exception.

use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq)]
pub enum EngineError {
    /// A probability outside [0, 1] or NaN (Python: ValueError).
    #[error("{what} has to be between 0 and 1, but got {value}")]
    Probability { what: &'static str, value: f64 },
    /// Two buffers or shapes that must agree do not (Python: ValueError).
    #[error("shape mismatch: {what}: {left:?} vs {right:?}")]
    Shape { what: &'static str, left: Vec<usize>, right: Vec<usize> },
    /// Any other invalid argument (Python: ValueError).
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T> = std::result::Result<T, EngineError>;

/// Validate a drop probability: finite and in [0, 1].
pub fn check_probability(what: &'static str, p: f64) -> Result<()> {
    if p.is_nan() || !(0.0..=1.0).contains(&p) {
        return Err(EngineError::Probability { what, value: p });
    }
    Ok(())
}

/// Validate that two lengths agree (buffers of one logical shape).
pub fn check_same_len(what: &'static str, left: usize, right: usize) -> Result<()> {
    if left != right {
        return Err(EngineError::Shape { what, left: vec![left], right: vec![right] });
    }
    Ok(())
}
