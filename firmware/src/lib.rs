//! # gatehouse-firmware
//!
//! gatehouse as firmware: the board-independent shell that runs the gateway over an
//! [`embassy_net::Stack`]. A board crate (`boards/<board>/`) brings up clocks, the network device,
//! a time driver and a random source, then hands the stack to [`spawn`].
//!
//! This crate moves bytes and keeps state in flash; it never decides who may pass, which path is
//! public or which headers reach the app. Those answers come from `gatehouse-core`.
//!
//! Memory is fixed at compile time: [`MAX_CONNECTIONS`] connection tasks, each with its own
//! client and upstream buffers ([`ConnectionBuffers`]), all in the tasks' static storage. No
//! allocator is linked.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

#[macro_use]
mod fmt;

pub mod boot;
pub mod clock;
pub mod config;
pub mod connection;
pub mod ram_flash;
pub mod random;
pub mod server;
pub mod sntp;
pub mod state;
pub mod store;

pub use connection::{ConnectionBuffers, Timeouts};
pub use server::spawn;
pub use state::{Engine, EngineParts};

/// Connection tasks, and so the number of clients served at once. A client beyond it gets a
/// 503 from the overflow task until a task is free.
pub const MAX_CONNECTIONS: usize = 4;

/// Sockets the board must give `embassy_net::StackResources`: per connection one towards the
/// client and one towards the app, the overflow socket, and the SNTP client's UDP socket.
pub const SOCKETS_NEEDED: usize = 2 * MAX_CONNECTIONS + 2;
