//! Where the suite's sockets live: the host's loopback, or a network namespace the suite made
//! itself (for the host-tap board). A socket keeps the namespace it was created in, so a thread
//! that enters the namespace only to create a socket is enough; the test thread never moves.

use std::fs::File;
use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// How long a connect may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The network a socket is created in.
#[derive(Clone)]
pub enum Net {
    /// The host's own network (loopback).
    Host,
    /// A network namespace made by the suite.
    Namespace(Arc<NetNs>),
}

impl Net {
    /// Connects to `to`, from the source address `from` when given.
    pub fn connect(&self, to: SocketAddr, from: Option<IpAddr>) -> io::Result<TcpStream> {
        self.inside(move || connect_from(to, from))
    }

    /// Listens on `at` (port 0 for any free port).
    pub fn listen(&self, at: SocketAddr) -> io::Result<TcpListener> {
        self.inside(move || {
            let socket = Socket::new(Domain::for_address(at), Type::STREAM, Some(Protocol::TCP))?;
            socket.set_reuse_address(true)?;
            socket.bind(&SockAddr::from(at))?;
            socket.listen(64)?;
            Ok(socket.into())
        })
    }

    fn inside<T: Send + 'static>(
        &self,
        op: impl FnOnce() -> io::Result<T> + Send + 'static,
    ) -> io::Result<T> {
        match self {
            Net::Host => op(),
            Net::Namespace(ns) => {
                let file = File::open(ns.path())?;
                std::thread::spawn(move || {
                    rustix::thread::move_into_link_name_space(
                        std::os::fd::AsFd::as_fd(&file),
                        Some(rustix::thread::LinkNameSpaceType::Network),
                    )?;
                    op()
                })
                .join()
                .map_err(|_| io::Error::other("socket thread panicked"))?
            }
        }
    }
}

fn connect_from(to: SocketAddr, from: Option<IpAddr>) -> io::Result<TcpStream> {
    let socket = Socket::new(Domain::for_address(to), Type::STREAM, Some(Protocol::TCP))?;
    if let Some(ip) = from {
        socket.bind(&SockAddr::from(SocketAddr::new(ip, 0)))?;
    }
    socket.connect_timeout(&SockAddr::from(to), CONNECT_TIMEOUT)?;
    Ok(socket.into())
}

/// A free TCP port on `ip` in `net`, chosen by the kernel. (The port is released before it is
/// used, so a start-up that loses the race is retried by the caller.)
pub fn free_port(net: &Net, ip: IpAddr) -> io::Result<u16> {
    Ok(net.listen(SocketAddr::new(ip, 0))?.local_addr()?.port())
}

/// A network namespace created by the suite, deleted when dropped (also on panic).
pub struct NetNs {
    name: String,
}

static NAMESPACES: AtomicUsize = AtomicUsize::new(0);

impl NetNs {
    /// Creates a fresh namespace with its loopback up.
    pub fn create() -> io::Result<NetNs> {
        let name = format!(
            "gh-conf-{}-{}",
            std::process::id(),
            NAMESPACES.fetch_add(1, Ordering::SeqCst)
        );
        run_ip(&["netns", "add", &name])?;
        let ns = NetNs { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `ip -n <ns> ARGS`.
    pub fn ip(&self, args: &[&str]) -> io::Result<()> {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        run_ip(&all)
    }

    fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        if let Err(e) = run_ip(&["netns", "del", &self.name]) {
            eprintln!("could not remove network namespace {}: {e}", self.name);
        }
    }
}

fn run_ip(args: &[&str]) -> io::Result<()> {
    let out = Command::new("ip").args(args).output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}
