//! # gatehouse-tests
//!
//! The black-box conformance suite shared by every deployable: the daemon, the firmware on the
//! host-tap board and the firmware under QEMU. Each case drives a running deployable over real
//! sockets with exact bytes and asserts what the app behind it *received*, using a recording
//! upstream. The same case runs against every target; a difference between targets is a bug in
//! a shell.
//!
//! - [`target`]: start a deployable with a [`Setup`], reach it, stop it by PID (QEMU and network
//!   namespaces are cleaned up on every path, a panic included);
//! - [`upstream`]: the recording app, with every framing an app may answer with;
//! - [`client`]: raw-socket clients (exact bytes, split writes, pipelining, slow senders);
//! - [`conformance!`]: one `#[test]` per case and target, `case::daemon`, `case::qemu`, ….
//!
//! Under `CI=true` a target that cannot run (a missing tool, image or privilege) fails its
//! tests; elsewhere they are skipped with the reason printed.

pub mod browser;
pub mod client;
pub mod flows;
pub mod net;
pub mod peers;
pub mod target;
pub mod upstream;

pub use client::{Client, Response, contains_ignore_case};
pub use flows::*;
pub use target::{Gateway, HEALTH, Kind, Outcome, Setup, Trust, Unavailable, exchange, run_case};
pub use upstream::{Reply, Seen, Upstream};

/// Declares conformance cases, each run against the targets listed after `on`:
///
/// ```text
/// conformance! {
///     /// What the case shows.
///     fn health_answers(kind) on [daemon, host_tap, qemu] {
///         let gw = Gateway::start(kind, Setup::new())?;
///         assert_eq!(gw.send(HEALTH).status, 200);
///         Ok(())
///     }
/// }
/// ```
///
/// expands to a module `health_answers` with one `#[test]` per target, so
/// `cargo test -p gatehouse-tests daemon` runs every case against the daemon.
#[macro_export]
macro_rules! conformance {
    ($(
        $(#[$meta:meta])*
        fn $name:ident($kind:ident) on [$($target:ident),+ $(,)?] $body:block
    )*) => {
        $(
            $(#[$meta])*
            #[allow(non_snake_case)]
            mod $name {
                #[allow(unused_imports)]
                use super::*;

                fn case($kind: $crate::Kind) -> $crate::Outcome $body

                $(
                    #[test]
                    fn $target() {
                        $crate::run_case(
                            stringify!($name),
                            $crate::Kind::from_name(stringify!($target)),
                            case,
                        );
                    }
                )+
            }
        )*
    };
}
