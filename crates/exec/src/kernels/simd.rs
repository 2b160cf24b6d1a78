//! Run-time choice of the instruction set: each kernel is written once as an
//! `#[inline(always)]` body and instantiated twice, for the baseline target and inside an
//! `#[target_feature(enable = "avx2,fma")]` wrapper; [`dispatch!`] picks the second when the
//! CPU reports both features. The bodies use plain multiplies and adds (never `mul_add`), so
//! the two instantiations compute the same values, only wider.

use std::sync::OnceLock;

/// Whether this CPU runs AVX2 and FMA (checked once).
pub(crate) fn has_avx2() -> bool {
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    })
}

/// `dispatch! { /// doc \n vis fn name(args) -> ret => body_fn }` defines `name`, calling
/// `body_fn` compiled for AVX2 + FMA when the CPU has them and for the baseline otherwise.
macro_rules! dispatch {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? => $body:ident) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[allow(unsafe_code)]
                #[target_feature(enable = "avx2,fma")]
                unsafe fn wide($($arg: $ty),*) $(-> $ret)? {
                    $body($($arg),*)
                }
                if $crate::kernels::simd::has_avx2() {
                    #[allow(unsafe_code)]
                    // SAFETY: `has_avx2` checked that this CPU executes AVX2 and FMA.
                    return unsafe { wide($($arg),*) };
                }
            }
            $body($($arg),*)
        }
    };
}
pub(crate) use dispatch;
