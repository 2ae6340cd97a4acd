//! Real proxies in front of gatehouse's forward-auth endpoint, configured exactly as the README
//! says: nginx with `auth_request` and Caddy with `forward_auth`. The app behind the proxy (the
//! recording upstream) must see the logged-in user, never a client's spoofed header, and an
//! anonymous browser must be sent to the login page.

use gatehouse_tests::peers::{PASSWORD, Proxy, exercise, public_path_carries_no_identity};
use gatehouse_tests::*;

/// gatehouse with alice, with forwarding trust (only) for the proxies on 127.0.0.1.
fn setup() -> Setup {
    Setup::new()
        .user("alice", PASSWORD)
        .trust(Trust::ProxiesList("127.0.0.1/32".into()))
}

conformance! {
    /// nginx `auth_request` (the README's snippet) in front of gatehouse.
    fn nginx_auth_request_in_front_of_gatehouse(kind) on [daemon] {
        let gw = Gateway::start(kind, setup())?;
        let proxy = Proxy::nginx(gw.addr(), gw.upstream.addr(), "")?;
        exercise(&proxy, &gw);
        public_path_carries_no_identity(&proxy, &gw);
        Ok(())
    }

    /// Caddy `forward_auth` (the README's snippet) in front of gatehouse.
    fn caddy_forward_auth_in_front_of_gatehouse(kind) on [daemon] {
        let gw = Gateway::start(kind, setup())?;
        let proxy = Proxy::caddy(gw.addr(), gw.upstream.addr())?;
        exercise(&proxy, &gw);
        public_path_carries_no_identity(&proxy, &gw);
        Ok(())
    }
}
