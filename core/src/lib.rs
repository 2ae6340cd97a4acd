//! # gatehouse-core
//!
//! The decision core of gatehouse, an authenticating gateway for self-hosted apps that trust a
//! `Remote-User`-style identity header (Navidrome's externalized authentication and its kin).
//!
//! This crate is *sans-I/O*: it never reads a socket, never asks the time, never draws a random
//! number and never allocates. The shells (the tokio daemon and the embassy firmware) hand it
//! bytes, the peer address, the current time and random bytes; it answers with what to do.
//! Every question of *who is this, may they pass, which headers reach the app* is answered
//! here, once, so that both shells behave the same.
//!
//! Capacities are compile-time constants or const generics. When one is full, the API says so
//! with an error; nothing panics and nothing is silently dropped.
//!
//! Layers:
//! - [`peer`] and [`trusted`]: who is on the other end of the socket and whether it is a
//!   trusted proxy (Navidrome's `ExtAuth.TrustedSources`).
//! - [`identity`]: the identity header, read from trusted peers and stripped from everyone else.
//! - [`users`], [`password`], [`session`], [`throttle`]: accounts, password hashes, signed
//!   session cookies and login throttling.
//! - [`credential_cache`]: recently verified HTTP Basic credentials, as keyed MACs, so a Basic
//!   client does not pay a password hash on every request.
//! - [`gateway`]: the one decision both shells call for every request: who is asking, may
//!   they pass, what the app receives; gatehouse's own login, logout and forward-auth, and
//!   (feature `account`) each user's account page.
//! - [`subsonic`]: the Subsonic API's own credentials (`u`+`p`, `u`+`t`+`s`, `apiKey`), the
//!   answers a Subsonic server gives, and the query without the secrets.
//! - [`time`]: UNIX seconds as UTC calendar text, for what core shows people.
//! - [`http`]: HTTP/1.1 framing, canonical paths, the forwarded head and gatehouse's own
//!   responses.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

pub mod credential_cache;
pub mod gateway;
pub mod http;
pub mod identity;
pub mod password;
pub mod peer;
pub mod session;
pub mod subsonic;
pub mod throttle;
pub mod time;
pub mod trusted;
pub mod users;

/// Longest username, in bytes, that gatehouse stores or accepts from an identity header.
pub const MAX_USERNAME_LEN: usize = 64;

/// A username as stored: at most [`MAX_USERNAME_LEN`] bytes, kept as given
/// (comparisons fold ASCII case).
pub type Username = heapless::String<MAX_USERNAME_LEN>;
