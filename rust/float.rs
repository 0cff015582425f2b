//! The element types kernels are generic over: `f32` and `f64`.

use num_traits::{Float, FromPrimitive, ToPrimitive};

/// A floating-point element: `f32` or `f64`. One generic kernel serves both.
pub trait Real:
    Float + FromPrimitive + ToPrimitive + Default + Send + Sync + std::fmt::Debug + std::iter::Sum + 'static
{
    /// `v` rounded once to this type.
    #[inline(always)]
    fn of(v: f64) -> Self {
        <Self as FromPrimitive>::from_f64(v).expect("f64 converts to every Real")
    }
    /// This value as f64 (exact).
    #[inline(always)]
    fn f64(self) -> f64 {
        self.to_f64().expect("every Real converts to f64")
    }
}

impl Real for f32 {}
impl Real for f64 {}
