//! Logging that goes to `defmt` on Cortex-M boards, to `log` on the host board, and nowhere in
//! host unit tests (defmt cannot link there). Arguments must be usable by both: `{}` for
//! numbers and strings, `{:?}` for types that derive both `Debug` and `defmt::Format`, `{}`
//! for core's errors (`Display` under log; under defmt, the `defmt::Format` that core derives
//! with its `defmt` feature: `defmt::Display2Format` would link all of `core::fmt`).

#[cfg(all(feature = "defmt", feature = "log"))]
compile_error!("enable at most one of the `defmt` and `log` features");

macro_rules! log_at {
    ($level:ident, $($arg:tt)+) => {{
        #[cfg(feature = "defmt")]
        ::defmt::$level!($($arg)+);
        #[cfg(feature = "log")]
        ::log::$level!($($arg)+);
        #[cfg(not(any(feature = "defmt", feature = "log")))]
        {
            let _ = ($($arg)+);
        }
    }};
}

#[allow(unused_macros)]
macro_rules! info { ($($arg:tt)+) => { log_at!(info, $($arg)+) }; }
#[allow(unused_macros)]
macro_rules! warn { ($($arg:tt)+) => { log_at!(warn, $($arg)+) }; }
#[allow(unused_macros)]
macro_rules! error { ($($arg:tt)+) => { log_at!(error, $($arg)+) }; }
#[allow(unused_macros)]
macro_rules! debug { ($($arg:tt)+) => { log_at!(debug, $($arg)+) }; }
