//! The subcommands other than the server loop itself: `serve` and `demo` start-up, `users`,
//! `trust` and `check`.
//!
//! Exit codes: 0 success; 1 a negative answer or a failed probe (`trust`: not trusted;
//! `check`: a probe failed) or a runtime failure; 2 the input is invalid (configuration,
//! arguments, state files).

use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use gatehouse_core::password::{
    PasswordHash, RECOMMENDED_ITERATIONS, generate_password, hash_password,
};
use gatehouse_core::peer::Peer;

use std::sync::Arc;

use crate::cli::{
    AppPasswordCommand, CheckArgs, DemoArgs, ServeArgs, SettingFlags, UsersArgs, UsersCommand,
};
use crate::config::{Config, ListenAddr, TrustedList, UpstreamAddr};
use crate::control::{self, Notified};
use crate::keys::SessionKeys;
use crate::server;
use crate::shared::Shared;
use crate::store::{UsersFile, password_randomness};
use crate::tls::TlsState;
use crate::{probe, whoami};

/// Exit code for invalid configuration, arguments or state files.
pub const EXIT_INVALID: u8 = 2;

/// `gatehouse trust SOURCES PEER [--proxies LIST]`.
pub fn trust(sources: &str, peer: &str, proxies: Option<&str>) -> ExitCode {
    let list = match TrustedList::parse(sources) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("gatehouse: invalid SOURCES: {e}");
            return ExitCode::from(EXIT_INVALID);
        }
    };
    let proxies = match proxies.map(TrustedList::parse).transpose() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("gatehouse: invalid --proxies: {e}");
            return ExitCode::from(EXIT_INVALID);
        }
    };
    let parsed_peer = match Peer::parse(peer.trim()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("gatehouse: invalid PEER {peer:?}: {e}");
            return ExitCode::from(EXIT_INVALID);
        }
    };
    let shown_peer = match parsed_peer {
        Peer::Unix => "the UNIX-socket peer (@)".to_owned(),
        other => other.to_string(),
    };
    if list.trusts_everyone() {
        eprintln!(
            "warning: this list contains a catch-all network: every client of that address \
             family could name its own user"
        );
    }
    match list.find(&parsed_peer) {
        Some(m) => {
            println!("trusted: {shown_peer} matches {m}: identity+forwarding");
            ExitCode::SUCCESS
        }
        None => {
            if let Some(m) = proxies.as_ref().and_then(|p| p.find(&parsed_peer)) {
                println!(
                    "trusted: {shown_peer} matches {m} of --proxies: forwarding only (its \
                     X-Forwarded-For and forward-auth headers are believed, its identity \
                     header is not)"
                );
                return ExitCode::SUCCESS;
            }
            if list.is_empty() {
                println!(
                    "not trusted: the list is empty, so nobody is trusted (the feature is off)"
                );
            } else {
                println!("not trusted: {shown_peer} matches none of: {list}");
                if let Peer::Ip(std::net::IpAddr::V6(v6)) = parsed_peer
                    && v6.to_ipv4_mapped().is_none()
                    && list.entries().iter().all(|e| {
                        matches!(e.cidr(), Some((std::net::IpAddr::V4(_), _))) || e.is_unix()
                    })
                {
                    println!(
                        "hint: the peer is IPv6 and every entry is IPv4; IPv4 entries never \
                         match IPv6 peers (is the proxy connecting over ::1?)"
                    );
                }
                if parsed_peer == Peer::Unix {
                    println!("hint: add `@` to trust peers on gatehouse's own UNIX socket");
                }
            }
            if let Some(p) = &proxies {
                println!("not a trusted proxy either: {shown_peer} matches none of: {p}");
            }
            ExitCode::from(1)
        }
    }
}

/// `gatehouse users ...`.
pub fn users(args: UsersArgs) -> ExitCode {
    match run_users(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("gatehouse: {e:#}");
            ExitCode::from(EXIT_INVALID)
        }
    }
}

fn run_users(args: UsersArgs) -> Result<ExitCode> {
    let flags = SettingFlags {
        state_dir: args.state_dir.clone(),
        ..SettingFlags::default()
    };
    let config = Config::load(args.config.as_deref(), &flags)?;
    let file = UsersFile::open(&config.state_dir)?;
    let iterations = args.iterations.unwrap_or(config.password_iterations);
    let changes_users = !matches!(
        args.command,
        UsersCommand::List | UsersCommand::AppPassword(AppPasswordCommand::List { .. })
    );
    match args.command {
        UsersCommand::Add {
            name,
            admin,
            password_stdin,
        } => {
            let (password, generated) = new_password(password_stdin)?;
            let hash = hash_new(&password, iterations)?;
            let created_admin = file.modify(|users| {
                let user = users
                    .add(&name, admin, hash)
                    .map_err(|e| anyhow!("cannot add user {name:?}: {e}"))?;
                Ok(user.admin)
            })?;
            let role = if created_admin { "admin" } else { "user" };
            println!("created {role} {name}");
            if generated {
                println!("password (shown once, write it down): {password}");
            }
        }
        UsersCommand::Passwd {
            name,
            password_stdin,
        } => {
            let (password, generated) = new_password(password_stdin)?;
            let hash = hash_new(&password, iterations)?;
            file.modify(|users| {
                users
                    .set_password(&name, hash)
                    .map_err(|e| anyhow!("cannot set the password of {name:?}: {e}"))
            })?;
            println!("password of {name} changed; their sessions are logged out");
            if generated {
                println!("new password (shown once, write it down): {password}");
            }
        }
        UsersCommand::Del { name } => {
            file.modify(|users| {
                users
                    .remove(&name)
                    .map_err(|e| anyhow!("cannot delete {name:?}: {e}"))
            })?;
            println!("deleted {name}");
        }
        UsersCommand::List => {
            let loaded = file.load()?;
            if loaded.users.is_empty() {
                println!(
                    "no users in {} (create one with `gatehouse users add NAME --admin`)",
                    file.path().display()
                );
            }
            for user in loaded.users.iter() {
                let role = if user.admin { "admin" } else { "user" };
                println!("{}\t{role}", user.name);
            }
        }
        UsersCommand::AppPassword(command) => app_password(&file, command)?,
    }
    if changes_users {
        apply_to_running_gateway(&config)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Returns once a gateway running on this state directory has applied the change just
/// written (a revoked credential is refused from its next request on), or says that none is
/// running; see [`crate::control`].
fn apply_to_running_gateway(config: &Config) -> Result<()> {
    let notified = control::notify_running_gateway(&config.state_dir)
        .context("the change is in the users file, but a running gateway may not have it yet")?;
    match notified {
        Notified::Applied(count) => {
            println!("the running gateway applied the change ({count} users)");
        }
        Notified::NoneRunning => println!(
            "no gateway is running on {}: the change is in the users file",
            config.state_dir.display()
        ),
    }
    Ok(())
}

/// `gatehouse users app-password …`.
fn app_password(file: &UsersFile, command: AppPasswordCommand) -> Result<()> {
    match command {
        AppPasswordCommand::Add { name, label } => {
            let (random, _) = crate::store::password_randomness()?;
            let now = unix_now();
            let secret = file.modify(|users| {
                users
                    .add_app_password(&name, &label, &random, now)
                    .map_err(|e| anyhow!("cannot add app password {label:?} for {name:?}: {e}"))
            })?;
            println!("app password {label:?} created for {name}");
            println!("app password (shown once, type it into the app): {secret}");
            println!(
                "use it as the password of {name} (Subsonic apps, HTTP Basic) or as the apiKey"
            );
        }
        AppPasswordCommand::List { name } => {
            let loaded = file.load()?;
            let Some(user) = loaded.users.find(&name) else {
                return Err(anyhow!("no user {name:?} in {}", file.path().display()));
            };
            let mut any = false;
            for app in loaded.users.app_passwords(&user.name) {
                any = true;
                let last = app.last_used.map_or_else(
                    || "never used".to_owned(),
                    |t| format!("last used {}", utc(t)),
                );
                println!("{}\tcreated {}\t{last}", app.label, utc(app.created));
            }
            if !any {
                println!(
                    "{name} has no app passwords (create one with `gatehouse users app-password add {name} LABEL`)"
                );
            }
        }
        AppPasswordCommand::Revoke { name, label } => {
            file.modify(|users| {
                users
                    .revoke_app_password(&name, &label)
                    .map_err(|e| anyhow!("cannot revoke app password {label:?} of {name:?}: {e}"))
            })?;
            println!("app password {label:?} of {name} revoked");
        }
    }
    Ok(())
}

/// A UNIX time as `YYYY-MM-DD HH:MM UTC` (core's, as the account page shows it).
fn utc(secs: u64) -> String {
    gatehouse_core::time::utc_text(secs).as_str().to_owned()
}

/// Now, in UNIX seconds (app passwords record when they were made).
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The password to set: the first line of standard input, or a generated one.
fn new_password(from_stdin: bool) -> Result<(String, bool)> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .context("reading the password from standard input")?;
        let password = line.trim_end_matches(['\r', '\n']).to_owned();
        if password.is_empty() {
            bail!("the password read from standard input is empty");
        }
        return Ok((password, false));
    }
    let (random, _) = password_randomness()?;
    Ok((generate_password(&random).as_str().to_owned(), true))
}

fn hash_new(password: &str, iterations: u32) -> Result<PasswordHash> {
    let (_, salt) = password_randomness()?;
    hash_password(password.as_bytes(), &salt, iterations)
        .map_err(|e| anyhow!("hashing the password with {iterations} iterations: {e}"))
}

/// Says why running as root is refused, unless allowed.
fn refuse_root(allow_root: bool) -> Option<ExitCode> {
    if rustix::process::geteuid().is_root() && !allow_root {
        eprintln!(
            "gatehouse: refusing to run as root. Run it as an unprivileged user (the systemd \
             unit in packaging/ uses DynamicUser=yes), or pass --allow-root if you really must."
        );
        return Some(ExitCode::from(EXIT_INVALID));
    }
    None
}

/// `gatehouse serve`.
pub fn serve(args: ServeArgs) -> ExitCode {
    if let Some(code) = refuse_root(args.allow_root) {
        return code;
    }
    let config = match Config::load(args.config.as_deref(), &args.settings) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("gatehouse: {e}");
            return ExitCode::from(EXIT_INVALID);
        }
    };
    let prepared = match Prepared::new(config) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("gatehouse: {e:#}");
            return ExitCode::from(EXIT_INVALID);
        }
    };
    run_runtime(prepared.run(None, None))
}

/// Runs start-up, the accept loops, signals and shutdown on the main thread's runtime; the
/// connections themselves run on the worker threads [`server::run`] starts.
fn run_runtime(fut: impl std::future::Future<Output = Result<()>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("gatehouse: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(fut) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gatehouse: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Called once the listeners are open, with their addresses (the demo prints its banner).
pub type OnReady = Box<dyn FnOnce(&[String]) + Send>;

/// Everything checked and loaded before any socket opens: configuration, state files, TLS.
pub struct Prepared {
    config: Config,
    users_file: UsersFile,
    keys: SessionKeys,
    tls: Option<TlsState>,
}

impl Prepared {
    pub fn new(config: Config) -> Result<Prepared> {
        let users_file = UsersFile::open(&config.state_dir)?;
        // Read now so that a corrupt file stops start-up with a clear message.
        users_file.load()?;
        let keys = SessionKeys::load_or_create(&config.state_dir)?;
        let tls = match &config.tls {
            Some(files) => Some(TlsState::load(files)?),
            None => None,
        };
        Ok(Prepared {
            config,
            users_file,
            keys,
            tls,
        })
    }

    /// Serves until SIGTERM or SIGINT (or `stop` resolves, for the demo).
    pub async fn run(
        self,
        stop: Option<tokio::sync::oneshot::Receiver<()>>,
        on_ready: Option<OnReady>,
    ) -> Result<()> {
        for note in &self.config.notes {
            if note.starts_with("WARNING") {
                tracing::warn!("{note}");
            } else {
                tracing::info!("{note}");
            }
        }
        raise_file_limit(self.config.max_connections);
        let listeners = server::bind_all(&self.config).await?;
        let shared = Arc::new(Shared::new(
            self.config.clone(),
            self.users_file.clone(),
            self.keys.clone(),
        )?);
        if shared.user_count() == 0 {
            tracing::warn!(
                "no users yet: nobody can log in until you create one with `gatehouse users \
                 add NAME --admin` (the gateway picks it up without a restart){}",
                if self.config.trusted_sources.is_empty() {
                    ""
                } else {
                    "; or the first user a trusted source names becomes admin"
                }
            );
        }
        for line in self.config.trust_summary() {
            tracing::info!("{line}");
        }
        let described: Vec<String> = listeners
            .iter()
            .map(|l| l.describe(self.tls.is_some()))
            .collect();
        for d in &described {
            tracing::info!("listening on {d} -> {}", self.config.upstream);
        }
        let unix_paths: Vec<std::path::PathBuf> = listeners
            .iter()
            .filter_map(|l| match l {
                server::Listener::Unix(_, p) => Some(p.clone()),
                server::Listener::Tcp(_) => None,
            })
            .collect();

        let watcher = tokio::spawn(watch_users(shared.clone()));
        // `gatehouse users …` asks here for its change to be applied at once.
        let control = control::bind(&self.config.state_dir).unwrap_or_else(|e| {
            tracing::warn!(
                "{e:#}: `gatehouse users` changes reach this gateway within a second, not at once"
            );
            None
        });
        let control_path = control.as_ref().map(|(_, path)| path.clone());
        let controller =
            control.map(|(listener, _)| tokio::spawn(control::serve(listener, shared.clone())));
        let trimmer = tokio::spawn(give_back_memory());
        let shutdown = shutdown_signal(shared.clone(), self.tls.clone(), stop);
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
        tracing::info!("gatehouse is ready");
        if let Some(f) = on_ready {
            f(&described);
        }
        let served = server::run(listeners, shared.clone(), self.tls.clone(), shutdown).await;
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
        watcher.abort();
        trimmer.abort();
        if let Some(controller) = controller {
            controller.abort();
        }
        if let Some(path) = control_path {
            let _ = std::fs::remove_file(path);
        }
        for p in unix_paths {
            let _ = std::fs::remove_file(p);
        }
        served?;
        tracing::info!("gatehouse stopped");
        Ok(())
    }
}

/// Each client connection can hold two descriptors (its socket and one to the app); the
/// usual soft limit of 1024 would stop a gateway at about 500 clients. Raise the soft limit
/// toward the hard one, as far as `max_connections` needs.
fn raise_file_limit(max_connections: usize) {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    let wanted = (max_connections as u64)
        .saturating_mul(2)
        .saturating_add(256);
    let current = limit.current.unwrap_or(u64::MAX);
    if current >= wanted {
        return;
    }
    let target = limit.maximum.map_or(wanted, |max| max.min(wanted));
    if target <= current {
        tracing::warn!(
            "open files are limited to {current}; max_connections = {max_connections} needs \
             about {wanted} (raise LimitNOFILE)"
        );
        return;
    }
    limit.current = Some(target);
    if let Err(e) = setrlimit(Resource::Nofile, limit) {
        tracing::warn!("cannot raise the open files limit to {target}: {e}");
    }
}

/// Resolves on SIGTERM or SIGINT; reloads TLS and the users file on SIGHUP meanwhile.
async fn shutdown_signal(
    shared: Arc<Shared>,
    tls: Option<TlsState>,
    stop: Option<tokio::sync::oneshot::Receiver<()>>,
) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        tracing::error!("cannot install signal handlers; stop gatehouse with SIGKILL");
        std::future::pending::<()>().await;
        return;
    };
    let stop = async move {
        match stop {
            Some(rx) => {
                let _ = rx.await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = term.recv() => { tracing::info!("SIGTERM received"); return; }
            _ = int.recv() => { tracing::info!("SIGINT received"); return; }
            _ = &mut stop => return,
            _ = hup.recv() => {
                tracing::info!("SIGHUP received: reloading the TLS certificate and the users file");
                if let Some(t) = &tls {
                    match t.reload() {
                        Ok(()) => tracing::info!("TLS certificate reloaded"),
                        Err(e) => tracing::error!("TLS reload failed, keeping the previous certificate: {e:#}"),
                    }
                }
                let _ = shared.reload_users_if_changed(true);
                shared.reload_keys();
            }
        }
    }
}

/// Notices changes to the users file made by `gatehouse users` (or an editor) and reloads it.
async fn watch_users(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let s = shared.clone();
        let _ = tokio::task::spawn_blocking(move || {
            let _ = s.reload_users_if_changed(false);
        })
        .await;
    }
}

/// After a peak of requests in flight, hands the memory the allocator kept back to the
/// system once the peak has passed (see [`crate::pool`]).
async fn give_back_memory() {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut state = crate::pool::TrimState::default();
    loop {
        tick.tick().await;
        state = crate::pool::trim_after_peak(state);
    }
}

/// `gatehouse demo`.
pub fn demo(args: DemoArgs) -> ExitCode {
    // The demo keeps nothing, guards nothing real and should work from the README on a fresh
    // machine (often a root shell in a container), so root only gets a word of advice here;
    // `serve` refuses it.
    if rustix::process::geteuid().is_root() && !args.allow_root {
        eprintln!(
            "note: running the demo as root. It is harmless here (a throw-away state directory), \
             but `gatehouse serve` refuses root: run the real gateway as an unprivileged user."
        );
    }
    let listen: std::net::SocketAddr = match args.listen.parse() {
        Ok(a) => a,
        Err(_) => {
            eprintln!("gatehouse: --listen {:?} is not ip:port", args.listen);
            return ExitCode::from(EXIT_INVALID);
        }
    };
    let tmp = match tempfile::Builder::new().prefix("gatehouse-demo-").tempdir() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("gatehouse: cannot create a temporary state directory: {e}");
            return ExitCode::from(1);
        }
    };
    let state_dir = tmp.path().join("state");
    let code = run_runtime(async move {
        let app = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("starting the whoami app on 127.0.0.1")?;
        let app_addr = app.local_addr()?;
        tokio::spawn(whoami::serve(app));

        let mut config = Config::defaults();
        config.listen = vec![ListenAddr::Tcp(listen)];
        config.upstream = UpstreamAddr::Tcp {
            host_port: app_addr.to_string(),
        };
        config.state_dir = state_dir.clone();
        let users_file = UsersFile::open(&state_dir)?;
        let (password, _) = new_password(false)?;
        let hash = hash_new(&password, RECOMMENDED_ITERATIONS)?;
        users_file.modify(|users| {
            users
                .add("admin", true, hash)
                .map(|_| ())
                .map_err(|e| anyhow!("creating the demo admin: {e}"))
        })?;
        let prepared = Prepared::new(config)?;
        let banner = move |addrs: &[String]| {
            let url = addrs.first().cloned().unwrap_or_default();
            println!();
            println!("  gatehouse demo is running.");
            println!();
            println!("  Open        {url}/");
            println!("  Log in as   admin");
            println!("  Password    {password}   (one-time: this demo forgets it on exit)");
            println!();
            println!("  The page behind the login is a tiny app that shows the identity headers");
            println!("  gatehouse sent it. Try to fool it:");
            println!("    curl -i -H 'Remote-User: admin' {url}/");
            println!("  Stop with Ctrl-C.");
            println!();
        };
        prepared.run(None, Some(Box::new(banner))).await
    });
    drop(tmp);
    code
}

/// `gatehouse check`.
pub fn check(args: CheckArgs) -> ExitCode {
    let config = match Config::load(args.config.as_deref(), &args.settings) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("gatehouse: {e}");
            return ExitCode::from(EXIT_INVALID);
        }
    };
    println!("ok    configuration is valid");
    for note in &config.notes {
        println!("note  {note}");
    }
    for line in config.trust_summary() {
        println!("trust {line}");
    }
    match check_files(&config) {
        Ok(lines) => {
            for l in lines {
                println!("{l}");
            }
        }
        Err(e) => {
            println!("FAIL  {e:#}");
            return ExitCode::from(EXIT_INVALID);
        }
    }
    if args.offline {
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("gatehouse: {e}");
            return ExitCode::from(1);
        }
    };
    if let Some(url) = &args.through {
        return match runtime.block_on(probe::run_through(url, &config)) {
            Ok(0) => ExitCode::SUCCESS,
            Ok(_) => ExitCode::from(1),
            Err(e) => {
                eprintln!("gatehouse: {e}");
                ExitCode::from(EXIT_INVALID)
            }
        };
    }
    let failures = runtime.block_on(probe::run_probes(&config));
    if failures == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn check_files(config: &Config) -> Result<Vec<String>> {
    let mut lines = Vec::new();
    let dir = &config.state_dir;
    if !dir.exists() {
        lines.push(format!(
            "note  state directory {} does not exist yet; `serve` creates it",
            dir.display()
        ));
        return Ok(lines);
    }
    let users = UsersFile::open(dir)?.load()?;
    let admins = users.users.iter().filter(|u| u.admin).count();
    lines.push(format!(
        "ok    users file: {} users, {admins} admins",
        users.users.len()
    ));
    if users.users.is_empty() {
        lines.push(
            "note  no users yet: create the first admin with `gatehouse users add NAME --admin`"
                .into(),
        );
    }
    if crate::keys::keys_path(dir).exists() {
        SessionKeys::load_or_create(dir)?;
        lines.push("ok    session keys file".into());
    }
    if let Some(files) = &config.tls {
        TlsState::load(files)?;
        lines.push("ok    TLS certificate and key".into());
    }
    Ok(lines)
}

/// `gatehouse rotate-key`.
pub fn rotate_key(
    config_file: Option<&std::path::Path>,
    state_dir: Option<String>,
    log_out_everyone: bool,
) -> ExitCode {
    let run = || -> Result<()> {
        let flags = SettingFlags {
            state_dir,
            ..SettingFlags::default()
        };
        let config = Config::load(config_file, &flags)?;
        let users_file = UsersFile::open(&config.state_dir)?;
        // The keys file shares the users file's lock: one writer at a time in the state dir.
        let _lock = users_file.lock()?;
        let mut keys = SessionKeys::load_or_create(&config.state_dir)?;
        let path = crate::keys::keys_path(&config.state_dir);
        if log_out_everyone {
            keys.replace()?;
            keys.save(&config.state_dir)?;
            println!(
                "new session key in {}; no earlier key verifies any more. Send SIGHUP to a \
                 running gateway (systemctl reload gatehouse): from then on every session \
                 signed before is refused.",
                path.display()
            );
        } else {
            keys.rotate()?;
            keys.save(&config.state_dir)?;
            println!(
                "new session key in {}; the previous one still verifies. Send SIGHUP to a \
                 running gateway (systemctl reload gatehouse) to sign with the new key.",
                path.display()
            );
        }
        Ok(())
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gatehouse: {e:#}");
            ExitCode::from(EXIT_INVALID)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::utc;

    #[test]
    fn unix_times_are_shown_as_utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(utc(1_790_000_000), "2026-09-21 14:13 UTC");
        assert_eq!(utc(4_102_448_340), "2100-01-01 00:59 UTC");
    }
}
