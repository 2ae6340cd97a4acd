//! The trusting side, under Navidrome's rules (`ExtAuth.TrustedSources`, `ExtAuth.UserHeader`):
//! the identity header is believed only from a trusted peer, judged on the raw peer address;
//! a user named for the first time is created, the first user ever is admin; anything not
//! trusted, or not a clean single name, falls back to normal login.

use std::time::{Duration, Instant};

use gatehouse_tests::*;

/// The request a trusted proxy sends for `user`, and what the app must then receive.
fn as_proxy(gw: &Gateway, header_line: &str) -> Response {
    let mut client = gw.proxy_client();
    exchange(&mut client, &get("/app/", &[header_line]))
}

/// `gatehouse users list` on the daemon's state: (name, role) pairs.
fn listed_users(gw: &Gateway) -> Vec<(String, String)> {
    let out = gw.cli(&["users", "list"], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (name, role) = l.split_once('\t')?;
            Some((name.to_owned(), role.to_owned()))
        })
        .collect()
}

/// Waits (bounded) until the users file lists `expected` (provisioned users are written back
/// after the request is forwarded).
fn wait_for_users(gw: &Gateway, expected: &[(&str, &str)]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let want: Vec<(String, String)> = expected
        .iter()
        .map(|(n, r)| (n.to_string(), r.to_string()))
        .collect();
    let mut got = listed_users(gw);
    while got != want && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        got = listed_users(gw);
    }
    assert_eq!(got, want, "users in the users file");
}

fn expect_refused_to_login(gw: &Gateway, response: &Response) {
    assert!(
        is_login_refusal(response) || response.status == 400,
        "{response}"
    );
    let seen = gw.upstream.seen();
    assert!(seen.is_empty(), "reached the app: {seen:#?}");
}

conformance! {
    /// A trusted proxy's `Remote-User` is believed: the first user named is created as admin,
    /// the next one as an ordinary user, and each reaches the app under its own name.
    fn trusted_proxy_provisions_users_first_one_admin(kind) on [daemon, host_tap] {
        let gw = Gateway::start(kind, Setup::new().trust(Trust::Proxy))?;
        let bob = as_proxy(&gw, "Remote-User: bob");
        assert_eq!(bob.status, 200, "{bob}");
        let seen = gw.upstream.only();
        assert_identity(&seen, "Remote-User", "bob");
        assert!(
            seen.header_values("remote-groups").iter().any(|g| g.contains("admins")),
            "the first user ever is admin: {seen}"
        );
        gw.upstream.clear();
        let carol = as_proxy(&gw, "remote-user:  carol ");
        assert_eq!(carol.status, 200, "{carol}");
        let seen = gw.upstream.only();
        assert_identity(&seen, "Remote-User", "carol");
        assert!(
            seen.header_values("remote-groups").iter().all(|g| !g.contains("admins")),
            "a later user is not admin: {seen}"
        );
        if kind == Kind::Daemon {
            wait_for_users(&gw, &[("bob", "admin"), ("carol", "user")]);
        }
        Ok(())
    }

    /// When users exist already, a newly named user is not admin.
    fn provisioned_user_is_not_admin_when_users_exist(kind) on [daemon, host_tap] {
        let gw = Gateway::start(kind, Setup::new().admin("root", "root password").trust(Trust::Proxy))?;
        let bob = as_proxy(&gw, "Remote-User: bob");
        assert_eq!(bob.status, 200, "{bob}");
        let seen = gw.upstream.only();
        assert_identity(&seen, "Remote-User", "bob");
        assert!(
            seen.header_values("remote-groups").iter().all(|g| !g.contains("admins")),
            "{seen}"
        );
        if kind == Kind::Daemon {
            wait_for_users(&gw, &[("root", "admin"), ("bob", "user")]);
        }
        Ok(())
    }

    /// Trust is per address: with the proxy's address trusted (127.0.0.2 on the daemon), a
    /// neighbouring address (127.0.0.3) is not, and its header is ignored.
    fn untrusted_neighbour_address_falls_back_to_login(kind) on [daemon, host_tap] {
        let proxy = match kind {
            Kind::Daemon => "127.0.0.2",
            _ => "192.0.2.2",
        };
        for list in [proxy.to_owned(), format!("{proxy}/32"), format!(" {proxy}/32 , 10.0.0.0/8 ")] {
            let gw = Gateway::start(kind, Setup::new().trust(Trust::List(list.clone())))?;
            let mut neighbour = gw.client();
            let response = exchange(&mut neighbour, &get("/app/", &["Remote-User: bob"]));
            expect_refused_to_login(&gw, &response);
            let trusted = as_proxy(&gw, "Remote-User: bob");
            assert_eq!(trusted.status, 200, "trusted_sources {list:?}: {trusted}");
            assert_identity(&gw.upstream.only(), "Remote-User", "bob");
        }
        Ok(())
    }

    /// Host bits in an entry are ignored: `127.0.0.3/31` is 127.0.0.2–127.0.0.3 (the proxy is
    /// 127.0.0.2; on host-tap the same with 192.0.2.3/31 and 192.0.2.2).
    fn host_bits_in_an_entry_are_ignored(kind) on [daemon, host_tap] {
        let list = match kind {
            Kind::Daemon => "127.0.0.3/31",
            _ => "192.0.2.3/31",
        };
        let gw = Gateway::start(kind, Setup::new().trust(Trust::List(list.into())))?;
        let trusted = as_proxy(&gw, "Remote-User: bob");
        assert_eq!(trusted.status, 200, "{trusted}");
        assert_identity(&gw.upstream.only(), "Remote-User", "bob");
        Ok(())
    }

    /// `::/0` trusts every IPv6 peer and no IPv4 peer (v4 and v6 entries never cross-match).
    fn ipv6_catch_all_does_not_trust_ipv4_peers(kind) on [daemon, host_tap, qemu] {
        let gw = Gateway::start(kind, Setup::new().trust(Trust::List("::/0".into())))?;
        let mut ipv4_peer = gw.client();
        let response = exchange(&mut ipv4_peer, &get("/app/", &["Remote-User: bob"]));
        expect_refused_to_login(&gw, &response);
        Ok(())
    }

    /// `0.0.0.0/0` trusts everyone, so gatehouse starts only with a loud warning naming it.
    fn catch_all_trusted_sources_start_with_a_warning(kind) on [daemon, host_tap] {
        let gw = Gateway::start(kind, Setup::new().trust(Trust::List("0.0.0.0/0".into())))?;
        let log = gw.log();
        assert!(
            log.lines().any(|l| l.contains("WARN") && l.contains("0.0.0.0/0")),
            "no warning naming 0.0.0.0/0 in the log:\n{log}"
        );
        let mut anyone = gw.client();
        let response = exchange(&mut anyone, &get("/app/", &["Remote-User: bob"]));
        assert_eq!(response.status, 200, "{response}");
        assert_identity(&gw.upstream.only(), "Remote-User", "bob");
        Ok(())
    }

    /// An empty (or blank) header from a trusted proxy is no identity: normal login applies,
    /// and a user's own credentials still work.
    fn empty_header_from_a_trusted_proxy_falls_back_to_login(kind) on [daemon, host_tap] {
        let gw = Gateway::start(kind, Setup::new().user("alice", "pw of alice").trust(Trust::Proxy))?;
        for line in ["Remote-User:", "Remote-User: ", "Remote-User:    \t "] {
            gw.upstream.clear();
            let response = as_proxy(&gw, line);
            expect_refused_to_login(&gw, &response);
        }
        let mut client = gw.proxy_client();
        let response = exchange(
            &mut client,
            &get("/app/", &["Remote-User: ", &basic("alice", "pw of alice")]),
        );
        assert_eq!(response.status, 200, "{response}");
        assert_identity(&gw.upstream.only(), "Remote-User", "alice");
        Ok(())
    }

    /// A header a trusted proxy sends twice, or with a control character, or too long a name,
    /// is refused, never guessed; and no user is created from it.
    fn ambiguous_or_malformed_trusted_header_is_refused(kind) on [daemon, host_tap] {
        let gw = Gateway::start(kind, Setup::new().trust(Trust::Proxy))?;
        let long = format!("Remote-User: {}", "x".repeat(300));
        for lines in [
            vec!["Remote-User: bob", "Remote-User: carol"],
            vec!["Remote-User: bob", "remote-user: bob"],
            vec!["Remote-User: bo\x01b"],
            vec!["Remote-User: bo\x7fb"],
            vec![long.as_str()],
        ] {
            gw.upstream.clear();
            let mut client = gw.proxy_client();
            let response = exchange(&mut client, &get("/app/", &lines));
            expect_refused_to_login(&gw, &response);
        }
        if kind == Kind::Daemon {
            wait_for_users(&gw, &[]);
        }
        Ok(())
    }

    /// Only the configured header is read: `Remote_User` (underscore) from a trusted proxy is
    /// not `Remote-User`, and with `user_header = "X-Forwarded-User"` a `Remote-User` is not
    /// believed either (and neither reaches the app).
    fn only_the_configured_header_is_believed(kind) on [daemon] {
        let gw = Gateway::start(kind, Setup::new().trust(Trust::Proxy))?;
        let response = as_proxy(&gw, "Remote_User: bob");
        expect_refused_to_login(&gw, &response);
        drop(gw);

        let gw = Gateway::start(
            kind,
            Setup::new().trust(Trust::Proxy).set("user_header", "X-Forwarded-User"),
        )?;
        let response = as_proxy(&gw, "Remote-User: bob");
        expect_refused_to_login(&gw, &response);
        let mut client = gw.proxy_client();
        let response = exchange(
            &mut client,
            &get("/app/", &["x-forwarded-user: carol", "Remote-User: bob"]),
        );
        assert_eq!(response.status, 200, "{response}");
        let seen = gw.upstream.only();
        assert_identity(&seen, "X-Forwarded-User", "carol");
        assert_never_seen(&[seen], "bob");
        Ok(())
    }

    /// `@` trusts a peer on gatehouse's own UNIX socket, and nobody over TCP.
    fn unix_socket_peer_is_the_at_source(kind) on [daemon] {
        let gw = Gateway::start(
            kind,
            Setup::new().trust(Trust::List("@".into())).with_unix_listener(),
        )?;
        let mut unix = gw.unix_client();
        let response = exchange(&mut unix, &get("/app/", &["Remote-User: carol"]));
        assert_eq!(response.status, 200, "{response}");
        assert_identity(&gw.upstream.only(), "Remote-User", "carol");
        gw.upstream.clear();
        let tcp = as_proxy(&gw, "Remote-User: carol");
        expect_refused_to_login(&gw, &tcp);
        Ok(())
    }

    /// Without `@`, a UNIX-socket peer is an ordinary client.
    fn unix_socket_peer_is_untrusted_without_at(kind) on [daemon] {
        let gw = Gateway::start(kind, Setup::new().trust(Trust::Proxy).with_unix_listener())?;
        let mut unix = gw.unix_client();
        let response = exchange(&mut unix, &get("/app/", &["Remote-User: carol"]));
        expect_refused_to_login(&gw, &response);
        Ok(())
    }

    /// Forwarding trust is not identity trust: a proxy in `trusted_proxies` relays its
    /// clients' headers, so its `Remote-User` names nobody and provisions nobody.
    fn a_forwarding_proxy_names_nobody(kind) on [daemon, host_tap] {
        let gw = Gateway::start(
            kind,
            Setup::new().admin("root", "root password").trust(Trust::ForwardingProxy),
        )?;
        let response = as_proxy(&gw, "Remote-User: mallory");
        expect_refused_to_login(&gw, &response);
        let mut proxy = gw.proxy_client();
        let response =
            exchange(&mut proxy, &get("/_GATEHOUSE/x", &["Remote-User: mallory"]));
        assert_eq!(response.status, 404, "{response}");
        assert!(gw.upstream.seen().is_empty(), "reached the app");
        if kind == Kind::Daemon {
            assert_eq!(listed_users(&gw), [("root".to_owned(), "admin".to_owned())]);
        }
        Ok(())
    }

    /// Gatehouse's own paths are matched in any case and with `_` escaped, the way a proxy in
    /// front routes them (Caddy's `handle /_gatehouse/*` takes `/_GATEHOUSE/x`): even a
    /// trusted source's `Remote-User` there reaches no app and provisions nobody.
    fn reserved_paths_in_any_spelling_provision_nobody(kind) on [daemon, host_tap] {
        let gw = Gateway::start(kind, Setup::new().trust(Trust::Proxy))?;
        for (path, status) in [
            ("/_GATEHOUSE/x", 404),
            ("/_GateHouse/x/y", 404),
            ("/%5Fgatehouse/x", 404),
            ("/%5fGATEHOUSE/app/", 404),
            ("/_GateHouse/login", 200),
            ("/%5Fgatehouse/login", 200),
            ("/%5fGATEHOUSE/health", 200),
        ] {
            let mut proxy = gw.proxy_client();
            let response = exchange(&mut proxy, &get(path, &["Remote-User: mallory"]));
            assert_eq!(response.status, status, "{path}: {response}");
        }
        assert!(gw.upstream.seen().is_empty(), "reached the app");
        if kind == Kind::Daemon {
            assert_eq!(listed_users(&gw), []);
        }
        Ok(())
    }

    /// The login throttle charges the client a forwarding proxy names (the last
    /// `X-Forwarded-For` entry): junk from one client behind it does not lock out another.
    fn a_forwarding_proxys_clients_are_throttled_apart(kind) on [daemon, host_tap] {
        let gw = Gateway::start(
            kind,
            Setup::new().user("alice", "correct horse").trust(Trust::ForwardingProxy),
        )?;
        let attempt = |xff: &str, user: &str, password: &str| {
            let mut proxy = gw.proxy_client();
            let xff = format!("X-Forwarded-For: {xff}");
            exchange(&mut proxy, &get("/app/", &[&xff, &basic(user, password), "Accept: */*"]))
        };
        for i in 0..25 {
            attempt("198.51.100.7", &format!("junk{i}"), "junk");
        }
        let response = attempt("198.51.100.7", "alice", "correct horse");
        assert_eq!(response.status, 429, "{response}");
        let response = attempt("203.0.113.9", "alice", "correct horse");
        assert_eq!(response.status, 200, "{response}");
        assert_identity(&gw.upstream.only(), "Remote-User", "alice");
        Ok(())
    }

    /// A client in neither trust list cannot escape the throttle by naming other clients in
    /// `X-Forwarded-For`: every attempt is charged to its own address.
    fn a_client_in_neither_list_is_throttled_by_its_own_address(kind) on [daemon, host_tap] {
        let gw = Gateway::start(
            kind,
            Setup::new().user("alice", "correct horse").trust(Trust::ForwardingProxy),
        )?;
        let attempt = |xff: &str, user: &str, password: &str| {
            let mut client = gw.client();
            let xff = format!("X-Forwarded-For: {xff}");
            exchange(&mut client, &get("/app/", &[&xff, &basic(user, password), "Accept: */*"]))
        };
        for i in 0..25 {
            attempt(&format!("198.51.100.{i}"), &format!("junk{i}"), "junk");
        }
        let response = attempt("203.0.113.9", "alice", "correct horse");
        assert_eq!(response.status, 429, "{response}");
        assert!(gw.upstream.seen().is_empty(), "reached the app");
        Ok(())
    }
}
