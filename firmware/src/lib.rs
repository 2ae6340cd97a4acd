//! gatehouse-firmware: the board-independent embassy-net shell around `gatehouse-core`.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
