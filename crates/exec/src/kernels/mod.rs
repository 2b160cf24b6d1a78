//! The numeric kernels. Each is a plain loop over slices written for the compiler to
//! vectorize, instantiated for AVX2 + FMA when the CPU has them ([`simd`]).

pub(crate) mod act;
pub(crate) mod conv;
pub(crate) mod depthwise;
pub(crate) mod gemm;
pub(crate) mod simd;
