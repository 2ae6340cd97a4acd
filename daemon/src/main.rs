//! `gatehouse`: the authenticating gateway as a Linux daemon.

fn main() {
    eprintln!("gatehouse: the daemon is not built yet; see README.md for what works today");
    std::process::exit(2);
}
