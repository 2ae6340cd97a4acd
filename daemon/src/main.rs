//! `gatehouse`: the authenticating gateway as a Linux daemon.
//!
//! A thin tokio shell around `gatehouse-core`: it accepts connections, moves bytes between
//! clients and the app, keeps the users file and the session keys on disk, and asks core about
//! everything else. The files are named for what they hold:
//!
//! - [`cli`]: the command line; [`config`]: the configuration and its checks;
//! - [`server`]: listeners, the worker threads, the connection limit, graceful shutdown;
//! - [`connection`]: one client connection, request after request, through the core engine;
//! - [`upstream`]: connections to the app and their keep-alive pool;
//! - [`store`]: the state directory (users file, session keys); [`files`]: atomic writes;
//! - [`tls`]: rustls and certificate reloads; [`metrics`]: the Prometheus counters;
//! - [`whoami`]: the demo's app; [`commands`]: `users`, `trust`, `check` and `demo`;
//! - [`board`]: `config-blob`, the configuration region of a firmware board.

mod board;
mod cli;
mod client;
mod commands;
mod config;
mod connection;
mod control;
mod engine;
mod files;
mod keys;
mod metrics;
mod pool;
mod probe;
mod pump;
mod server;
mod shared;
mod store;
mod tls;
mod upstream;
mod whoami;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match cli.command {
        Command::Serve(args) => commands::serve(args),
        Command::Demo(args) => commands::demo(args),
        Command::Users(args) => commands::users(args),
        Command::Trust {
            sources,
            peer,
            proxies,
        } => commands::trust(&sources, &peer, proxies.as_deref()),
        Command::Check(args) => commands::check(args),
        Command::ConfigBlob(args) => board::config_blob(args),
        Command::RotateKey {
            config,
            state_dir,
            log_out_everyone,
        } => commands::rotate_key(config.as_deref(), state_dir, log_out_everyone),
    }
}

/// Logs go to standard error, one line per event; systemd's journal adds the time, so under
/// systemd (`JOURNAL_STREAM` set) the timestamp is left out. `RUST_LOG` tunes the level.
fn init_logging() {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        builder.without_time().with_ansi(false).init();
    } else {
        builder.with_ansi(std::io::stderr().is_terminal()).init();
    }
}
