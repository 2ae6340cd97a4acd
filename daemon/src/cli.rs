//! The command line: what each subcommand is for, in the words `--help` prints.
//!
//! Every configuration key is also a flag of `serve`, `check` and `demo`; flags win over
//! `GATEHOUSE_<KEY>` environment variables, which win over the configuration file, which wins
//! over the defaults. The flags are kept as raw strings here and validated in one place
//! ([`crate::config`]), so an error names the key and the value the same way whatever the
//! source.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

const ABOUT: &str =
    "An authenticating gateway for self-hosted apps that trust a Remote-User header";

const LONG_ABOUT: &str = "\
gatehouse stands in front of an app that trusts an identity header (Navidrome's
externalized authentication, Grafana's auth proxy, ...). It logs users in (login page
and session cookie, HTTP Basic), removes every identity header a client tries to send,
adds its own, and forwards the request to the app over TCP or a UNIX socket.

Try it in one minute:   gatehouse demo
Run it for real:        gatehouse users add alice --admin
                        gatehouse serve --config /etc/gatehouse/gatehouse.toml
Diagnose trust:         gatehouse trust 192.168.1.0/24,@ 192.168.1.7:52100
Provision a board:      gatehouse config-blob --board-config board.toml -o region.bin";

/// The `gatehouse` command line.
#[derive(Debug, Parser)]
#[command(name = "gatehouse", version, about = ABOUT, long_about = LONG_ABOUT)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway (what systemd starts).
    ///
    /// Reads the configuration file (if any), then GATEHOUSE_<KEY> environment variables,
    /// then the flags below; later sources win. Stops with exit code 2 and a message naming
    /// the key and the value when anything is wrong, before opening any socket.
    Serve(ServeArgs),

    /// Try gatehouse in a browser: a gateway on 127.0.0.1:8080 in front of a built-in "whoami"
    /// page.
    ///
    /// Uses a throw-away state directory and creates a first admin user whose one-time
    /// password is printed. Open the printed address, log in, and the page shows which
    /// identity headers the app received. Nothing is kept when it stops.
    Demo(DemoArgs),

    /// Manage the users file in the state directory (add, passwd, del, list).
    ///
    /// A running gateway notices the change on disk and reloads the file.
    Users(UsersArgs),

    /// Tell whether PEER would be trusted by the trusted-sources list SOURCES (and, with
    /// --proxies, by a trusted-proxies list).
    ///
    /// The troubleshooting tool for the most common misconfiguration of this setup. Prints
    /// the entry that matched and which trust it gives (SOURCES: identity+forwarding, the
    /// peer's identity header is believed; --proxies: forwarding only, its X-Forwarded-For
    /// and forward-auth headers are believed, never its identity header). Exits 0 when
    /// either list trusts the peer, 1 when not, and 2 when a list or PEER is invalid (naming
    /// the bad entry).
    ///
    /// Matching follows Navidrome's rules: only the raw address of the peer counts (never
    /// X-Forwarded-For); IPv4-mapped IPv6 peers match IPv4 entries; IPv4 and IPv6 never
    /// cross-match; `@` is a peer on a UNIX socket.
    #[command(after_help = "\
Examples:
  gatehouse trust 192.168.1.0/24 192.168.1.7:52100   -> trusted by 192.168.1.0/24 (exit 0)
  gatehouse trust 10.0.0.0/8 '[::ffff:10.1.2.3]:80'   -> trusted (mapped IPv4)
  gatehouse trust ::/0 127.0.0.1                      -> not trusted (exit 1)
  gatehouse trust @ @                                 -> a UNIX-socket peer is trusted
  gatehouse trust '' 127.0.0.1 --proxies 127.0.0.1    -> forwarding only (exit 0)")]
    Trust {
        /// Comma-separated CIDRs and `@`, as in `trusted_sources` (Navidrome's
        /// ExtAuth.TrustedSources), e.g. `127.0.0.1/32,192.168.1.0/24,@`.
        sources: String,
        /// The peer as the app would see it: `ip`, `ip:port`, `[v6]:port`, or `@`.
        peer: String,
        /// The `trusted_proxies` list, same syntax: peers with forwarding trust only.
        #[arg(long, value_name = "LIST")]
        proxies: Option<String>,
    },

    /// Make a new session signing key; the old one stays valid as the previous key.
    ///
    /// Sessions signed with the old key keep working until they expire or the next rotation,
    /// whichever comes first: they are not renewed under the new key. With
    /// --log-out-everyone the old keys are dropped and every session ends at once (a leaked
    /// key). A running gateway uses the new key after SIGHUP (`systemctl reload gatehouse`).
    RotateKey {
        /// Keep no previous key: every session ends when the gateway reloads.
        #[arg(long)]
        log_out_everyone: bool,
        /// The TOML configuration file (only `state_dir` is read from it).
        #[arg(long, short = 'c', value_name = "FILE", env = "GATEHOUSE_CONFIG")]
        config: Option<PathBuf>,
        /// The state directory holding session-keys.
        #[arg(long, value_name = "DIR")]
        state_dir: Option<String>,
    },

    /// Validate the configuration and state files, then probe the running setup.
    ///
    /// Without serving: checks every key, the users file and the session keys. Then, like a
    /// careful admin: the upstream answers; a request carrying a spoofed Remote-User through
    /// the gateway does not reach the app with that value; public paths answer without login.
    /// With --through URL, the probes are attacks sent through a proxy in front of gatehouse.
    /// Exits 0 when all is well, 1 when a probe failed, 2 when the configuration is invalid.
    Check(CheckArgs),

    /// Make the configuration region a gatehouse board reads at boot: its configuration and
    /// its users, ready for the flasher.
    ///
    /// The board configuration is TOML or JSON (by extension; otherwise JSON is tried first)
    /// with the keys of the board's configuration JSON, documented in firmware/src/config.rs;
    /// only `upstream` is required. The users come from a users file as `gatehouse users`
    /// writes it: --users FILE, or users.json in the state directory of --state-dir or of the
    /// daemon's configuration (--config), by default $STATE_DIRECTORY, else
    /// ./gatehouse-state.
    ///
    /// Everything is checked as the board checks it, before anything is written: a bad key
    /// or value is named (exit 2); more users or app passwords than a board holds, or an
    /// argon2id password hash (a board cannot verify one) is refused; password hashes with
    /// many PBKDF2 iterations get a warning, as they make logins slow on a microcontroller.
    /// The region is written atomically to --output and its size and how to flash it are
    /// printed.
    #[command(after_help = "\
Example:
  cat > board.toml <<'TOML'
  upstream = \"192.168.1.10:4533\"
  address = \"192.168.1.80/24\"
  gateway = \"192.168.1.1\"
  public_paths = [\"/share/\"]
  ntp_server = \"192.168.1.1\"
  clock_unix = 1767225600
  TOML
  gatehouse users add alice --admin --iterations 10000 --state-dir board-state
  gatehouse config-blob --board-config board.toml --state-dir board-state -o region.bin

Then, per board:
  qemu-mps2-an386  GATEHOUSE_CONFIG_BLOB=region.bin cargo run --release
                   (QEMU loads it with -device loader at 0x00380000)
  host-tap         cargo run --release -- --tap tap0 --config region.bin --state store.bin
  nucleo-h743zi    probe-rs download --chip STM32H743ZITx --binary-format bin \\
                     --base-address 0x08100000 region.bin")]
    ConfigBlob(ConfigBlobArgs),
}

#[derive(Debug, Args)]
pub struct ConfigBlobArgs {
    /// The board configuration: TOML or JSON, keys as in firmware/src/config.rs.
    #[arg(long, value_name = "FILE")]
    pub board_config: PathBuf,

    /// The users file to put on the board (core's JSON, as `gatehouse users` writes it).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["state_dir", "config"])]
    pub users: Option<PathBuf>,

    /// Take users.json from this state directory.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<String>,

    /// The daemon's TOML configuration: users.json is taken from its `state_dir`.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Where to write the region (replaced atomically, mode 0600: it holds password hashes).
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: PathBuf,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The TOML configuration file (see packaging/gatehouse.toml for every key).
    #[arg(long, short = 'c', value_name = "FILE", env = "GATEHOUSE_CONFIG")]
    pub config: Option<PathBuf>,

    /// Start even when running as root (not advised: run gatehouse and the app as
    /// unprivileged users; systemd's DynamicUser=yes does that for you).
    #[arg(long)]
    pub allow_root: bool,

    #[command(flatten)]
    pub settings: SettingFlags,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The TOML configuration file.
    #[arg(long, short = 'c', value_name = "FILE", env = "GATEHOUSE_CONFIG")]
    pub config: Option<PathBuf>,

    /// Only validate the configuration and files; do not probe the upstream or the gateway.
    #[arg(long)]
    pub offline: bool,

    /// Probe a proxy in front of gatehouse instead (its plain-HTTP address as browsers reach
    /// it, e.g. http://127.0.0.1:8443): sends known attacks through it (a client's own
    /// X-Original-URI or X-Forwarded-Uri, /_GATEHOUSE/ with a spoofed identity header, a
    /// spoofed identity on a protected page) and says, for each, `held` or `GOT THROUGH` and
    /// what to change. Exits 1 when one got through.
    #[arg(long, value_name = "URL", conflicts_with = "offline")]
    pub through: Option<String>,

    #[command(flatten)]
    pub settings: SettingFlags,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where the demo gateway listens.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    pub listen: String,

    /// Say nothing about running as root (the demo keeps nothing; `serve` refuses root).
    #[arg(long)]
    pub allow_root: bool,
}

#[derive(Debug, Args)]
pub struct UsersArgs {
    /// The TOML configuration file (only `state_dir` is read from it).
    #[arg(
        long,
        short = 'c',
        value_name = "FILE",
        env = "GATEHOUSE_CONFIG",
        global = true
    )]
    pub config: Option<PathBuf>,

    /// The state directory holding users.json (default: $STATE_DIRECTORY, else
    /// ./gatehouse-state).
    #[arg(long, value_name = "DIR", global = true)]
    pub state_dir: Option<String>,

    /// PBKDF2 iterations for new password hashes [default: `password_iterations` of the
    /// configuration, 600000].
    #[arg(long, value_name = "N", global = true)]
    pub iterations: Option<u32>,

    #[command(subcommand)]
    pub command: UsersCommand,
}

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Create a user. Without --password-stdin a random password is generated and printed
    /// once.
    Add {
        /// The username (matched case-insensitively, stored as given).
        name: String,
        /// Make the user an administrator (the `admins` group reaches the app).
        #[arg(long)]
        admin: bool,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set a user's password (this logs the user out everywhere).
    Passwd {
        name: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Delete a user (their sessions stop working at once).
    Del { name: String },
    /// List the users: name and whether they are admin.
    List,
    /// Manage a user's app passwords: the secrets music apps (Subsonic `p`, token or
    /// `apiKey`) and other non-interactive clients (HTTP Basic) use instead of the login
    /// password.
    #[command(subcommand)]
    AppPassword(AppPasswordCommand),
}

#[derive(Debug, Subcommand)]
pub enum AppPasswordCommand {
    /// Create an app password for NAME, labelled LABEL ("phone", "car"); it is printed
    /// once.
    Add { name: String, label: String },
    /// List NAME's app passwords: label, created, last used (never the secret).
    List { name: String },
    /// Revoke NAME's app password LABEL; clients using it are refused at once.
    Revoke { name: String, label: String },
}

/// Every configuration key as a flag. Values stay raw text until [`crate::config`] checks
/// them, so a bad value is reported the same way from a flag, the environment or the file.
#[derive(Debug, Default, Args, Clone)]
pub struct SettingFlags {
    /// Where to listen; repeat for several: `127.0.0.1:8080`, `[::]:443`,
    /// `unix:/run/gatehouse/gatehouse.sock`. [default: 127.0.0.1:8080]
    #[arg(long, value_name = "ADDR", help_heading = "Settings")]
    pub listen: Vec<String>,
    /// The app: `http://127.0.0.1:4533` (Navidrome's default) or `unix:/path/to.sock`.
    #[arg(long, value_name = "URL", help_heading = "Settings")]
    pub upstream: Option<String>,
    /// Users file and session keys. [default: $STATE_DIRECTORY, else ./gatehouse-state]
    #[arg(long, value_name = "DIR", help_heading = "Settings")]
    pub state_dir: Option<String>,
    /// TLS certificate chain (PEM); serve HTTPS when set with --tls-key. Reloaded on SIGHUP.
    #[arg(long, value_name = "FILE", help_heading = "Settings")]
    pub tls_cert: Option<String>,
    /// TLS private key (PEM).
    #[arg(long, value_name = "FILE", help_heading = "Settings")]
    pub tls_key: Option<String>,
    /// Identity trust: authenticating proxies (Authelia, Authentik, …) whose identity header
    /// gatehouse believes, and whose X-Forwarded-* it believes too: comma-separated CIDRs and
    /// `@` (a UNIX-socket peer). Empty (the default) trusts nobody.
    #[arg(long, value_name = "LIST", help_heading = "Settings")]
    pub trusted_sources: Option<String>,
    /// Forwarding trust only: plain proxies (a TLS proxy in front, a forward-auth caller)
    /// whose X-Forwarded-For, X-Forwarded-Host and forward-auth headers gatehouse believes,
    /// never their identity header. Same syntax as --trusted-sources. Empty (the default)
    /// trusts nobody.
    #[arg(long, value_name = "LIST", help_heading = "Settings")]
    pub trusted_proxies: Option<String>,
    /// Who may read /_gatehouse/metrics (a Prometheus scraper): comma-separated CIDRs and `@`,
    /// matched on the socket peer. Empty (the default): nobody, everyone gets 404.
    #[arg(long, value_name = "LIST", help_heading = "Settings")]
    pub metrics_sources: Option<String>,
    /// The identity header read from trusted sources and sent to the app. [default:
    /// Remote-User]
    #[arg(long, value_name = "NAME", help_heading = "Settings")]
    pub user_header: Option<String>,
    /// Path prefixes reachable without login (comma-separated). [default: /share/]
    #[arg(long, value_name = "LIST", help_heading = "Settings")]
    pub public_paths: Option<String>,
    /// Subsonic API path prefixes (comma-separated). [default: /rest/]
    #[arg(long, value_name = "LIST", help_heading = "Settings")]
    pub subsonic_paths: Option<String>,
    /// Who checks the credentials of Subsonic apps: `authenticate` (gatehouse, with app
    /// passwords; the app gets the identity header) or `pass-through` (the app itself).
    /// [default: authenticate]
    #[arg(long, value_name = "MODE", help_heading = "Settings")]
    pub subsonic: Option<String>,
    /// How long a login lasts: seconds, or `30m`, `12h`, `7d`. [default: 7d]
    #[arg(long, value_name = "DURATION", help_heading = "Settings")]
    pub session_ttl: Option<String>,
    /// Let non-admin users change their own password on the account page (Navidrome's
    /// EnableUserEditing).
    /// [default: true]
    #[arg(long, value_name = "BOOL", help_heading = "Settings")]
    pub enable_user_editing: Option<String>,
    /// Where the browser goes after logging out (e.g. your SSO's logout page).
    #[arg(long, value_name = "URL", help_heading = "Settings")]
    pub logout_url: Option<String>,
    /// Open client connections at most; beyond it new ones wait. [default: 4096]
    #[arg(long, value_name = "N", help_heading = "Settings")]
    pub max_connections: Option<String>,
    /// Threads serving connections, each with its own event loop, or `auto` for one per CPU.
    /// [default: auto]
    #[arg(long, value_name = "N", help_heading = "Settings")]
    pub workers: Option<String>,
    /// Time a client has to send a whole request head (slowloris). [default: 10s]
    #[arg(long, value_name = "DURATION", help_heading = "Settings")]
    pub head_read_timeout: Option<String>,
    /// Time an idle keep-alive connection is kept open. [default: 60s]
    #[arg(long, value_name = "DURATION", help_heading = "Settings")]
    pub idle_timeout: Option<String>,
    /// Time to connect to the app before answering 502. [default: 5s]
    #[arg(long, value_name = "DURATION", help_heading = "Settings")]
    pub upstream_connect_timeout: Option<String>,
    /// On SIGTERM, time in-flight requests get to finish. [default: 10s]
    #[arg(long, value_name = "DURATION", help_heading = "Settings")]
    pub shutdown_timeout: Option<String>,
    /// Permissions of gatehouse's own UNIX socket (octal). Anyone who can write to it is the
    /// trusted `@` peer. [default: 0660]
    #[arg(long, value_name = "MODE", help_heading = "Settings")]
    pub unix_socket_mode: Option<String>,
    /// PBKDF2 iterations for new password hashes; lower it only on very slow hardware.
    /// [default: 600000]
    #[arg(long, value_name = "N", help_heading = "Settings")]
    pub password_iterations: Option<String>,
    /// Mark cookies Secure on plain HTTP too: set it when a proxy in front of gatehouse
    /// terminates TLS. [default: false; always Secure on gatehouse's own TLS]
    #[arg(long, value_name = "BOOL", help_heading = "Settings")]
    pub secure_cookies: Option<String>,
}

impl SettingFlags {
    /// The flags that were given, as (key, raw value) pairs in configuration-key spelling.
    pub fn given(&self) -> Vec<(&'static str, FlagValue)> {
        let mut out = Vec::new();
        if !self.listen.is_empty() {
            out.push(("listen", FlagValue::List(self.listen.clone())));
        }
        let singles: [(&'static str, &Option<String>); 23] = [
            ("upstream", &self.upstream),
            ("state_dir", &self.state_dir),
            ("tls_cert", &self.tls_cert),
            ("tls_key", &self.tls_key),
            ("trusted_sources", &self.trusted_sources),
            ("trusted_proxies", &self.trusted_proxies),
            ("user_header", &self.user_header),
            ("public_paths", &self.public_paths),
            ("subsonic_paths", &self.subsonic_paths),
            ("subsonic", &self.subsonic),
            ("session_ttl", &self.session_ttl),
            ("enable_user_editing", &self.enable_user_editing),
            ("logout_url", &self.logout_url),
            ("max_connections", &self.max_connections),
            ("workers", &self.workers),
            ("head_read_timeout", &self.head_read_timeout),
            ("idle_timeout", &self.idle_timeout),
            ("upstream_connect_timeout", &self.upstream_connect_timeout),
            ("shutdown_timeout", &self.shutdown_timeout),
            ("unix_socket_mode", &self.unix_socket_mode),
            ("password_iterations", &self.password_iterations),
            ("secure_cookies", &self.secure_cookies),
            ("metrics_sources", &self.metrics_sources),
        ];
        for (key, value) in singles {
            if let Some(v) = value {
                out.push((key, FlagValue::One(v.clone())));
            }
        }
        out
    }
}

/// A flag's raw value: most keys take one, `--listen` may repeat.
#[derive(Debug, Clone)]
pub enum FlagValue {
    One(String),
    List(Vec<String>),
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn listen_repeats_and_settings_come_back_in_key_spelling() {
        let cli = Cli::try_parse_from([
            "gatehouse",
            "serve",
            "--listen",
            "127.0.0.1:1",
            "--listen",
            "unix:/tmp/x.sock",
            "--session-ttl",
            "1h",
        ])
        .expect("parses");
        let Command::Serve(args) = cli.command else {
            panic!("not serve")
        };
        let given = args.settings.given();
        assert!(matches!(&given[0], ("listen", FlagValue::List(v)) if v.len() == 2));
        assert!(matches!(&given[1], ("session_ttl", FlagValue::One(v)) if v == "1h"));
    }
}
