//! Real proxies and gatehouse, configured exactly as the README says: nginx with `auth_request`
//! and Caddy with `forward_auth` in front of gatehouse's forward-auth endpoints, and both as a
//! plain proxy in front of gatehouse (front mode). The app behind them (the recording upstream)
//! must see the logged-in user, never a client's spoofed header, and an anonymous browser must
//! be sent to the login page. (`proxy_attacks` attacks the same deployments.)

use gatehouse_tests::peers::{Deployment, PASSWORD, exercise, public_path_carries_no_identity};
use gatehouse_tests::*;

/// gatehouse as the README configures it behind these proxies: alice, and the proxies on
/// 127.0.0.1 trusted for forwarding only.
fn setup() -> Setup {
    Setup::new()
        .user("alice", PASSWORD)
        .trust(Trust::ProxiesList("127.0.0.1".into()))
}

fn run(kind: Kind, deployment: Deployment) -> Outcome {
    let gw = Gateway::start(kind, setup())?;
    let proxy = deployment.start(gw.addr(), gw.upstream.addr())?;
    exercise(&proxy, &gw);
    public_path_carries_no_identity(&proxy, &gw);
    Ok(())
}

conformance! {
    /// nginx `auth_request` (the README's snippet) in front of gatehouse.
    fn nginx_auth_request_in_front_of_gatehouse(kind) on [daemon] {
        run(kind, Deployment::NginxForwardAuth)
    }

    /// Caddy `forward_auth` (the README's snippet) in front of gatehouse.
    fn caddy_forward_auth_in_front_of_gatehouse(kind) on [daemon] {
        run(kind, Deployment::CaddyForwardAuth)
    }

    /// nginx as a plain proxy in front of gatehouse (the README's front-mode snippet).
    fn nginx_proxy_pass_to_gatehouse(kind) on [daemon] {
        run(kind, Deployment::NginxFront)
    }

    /// Caddy as a plain proxy in front of gatehouse (the README's front-mode snippet).
    fn caddy_reverse_proxy_to_gatehouse(kind) on [daemon] {
        run(kind, Deployment::CaddyFront)
    }
}
