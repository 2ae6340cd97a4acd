//! Faults and load: an app that is down, slow clients and slow apps, the connection limit, and
//! a bounded soak with the gateway's memory measured before and after.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use gatehouse_tests::*;

const PASSWORD: &str = "correct horse battery";

fn alice() -> Setup {
    Setup::new().user("alice", PASSWORD)
}

fn app_request(path: &str) -> Vec<u8> {
    get(path, &[&basic("alice", PASSWORD)])
}

/// Requests in the soak (override with `GATEHOUSE_SOAK_REQUESTS`).
fn soak_requests() -> usize {
    std::env::var("GATEHOUSE_SOAK_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000)
}

conformance! {
    /// An app that is down gets the client a 502 (and the gateway stays up); once the app is
    /// back, requests reach it again.
    fn upstream_down_gives_502_then_recovers(kind) on [daemon, host_tap, qemu] {
        let mut gw = Gateway::start(kind, alice())?;
        assert_eq!(gw.send(&app_request("/app/before")).status, 200);
        gw.upstream.go_down();
        let down = gw.send(&app_request("/app/down"));
        assert_eq!(down.status, 502, "{down}");
        assert!(gw.is_running(), "the gateway died with its app");
        gw.upstream.come_up().expect("the app comes back on its port");
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut last = gw.send(&app_request("/app/after"));
        while last.status != 200 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(200));
            last = gw.send(&app_request("/app/after"));
        }
        assert_eq!(last.status, 200, "no recovery after the app came back: {last}");
        let targets: Vec<String> = gw.upstream.seen().iter().map(Seen::target).collect();
        assert_eq!(targets.first().map(String::as_str), Some("/app/before"));
        assert_eq!(targets.last().map(String::as_str), Some("/app/after"));
        assert!(!targets.iter().any(|t| t == "/app/down"));
        Ok(())
    }

    /// A slow app delays only its own client: others are served meanwhile, and the slow answer
    /// arrives whole.
    fn slow_upstream_does_not_stall_other_clients(kind) on [daemon, host_tap, qemu] {
        let gw = Gateway::start(kind, alice())?;
        gw.upstream.set_reply(Reply::Slow(Duration::from_secs(3)));
        let mut slow = gw.client();
        slow.send(&app_request("/app/slow")).expect("send");
        assert_eq!(gw.upstream.wait_for(1).len(), 1, "the slow request never reached the app");
        // While the app sits on it, the gateway answers others.
        let health = gw.send(HEALTH);
        assert_eq!(health.status, 200, "{health}");
        let response = slow.response().expect("the slow answer");
        assert_eq!(response.status, 200, "{response}");
        assert_eq!(response.body, b"app saw: GET /app/slow HTTP/1.1\n");
        Ok(())
    }

    /// A client that dribbles its head (slowloris) is cut off at the head-read timeout, while
    /// other clients are served throughout.
    fn slowloris_is_cut_off_while_others_are_served(kind) on [daemon] {
        let gw = Gateway::start(kind, alice().set("head_read_timeout", "2s"))?;
        let (done_tx, done_rx) = mpsc::channel();
        let mut slow = gw.client();
        let dribbler = std::thread::spawn(move || {
            let head = b"GET /app/ HTTP/1.1\r\nHost: gw.test\r\nX-Slow: ";
            let _ = slow.send(head);
            // At most 30 s of one byte every 200 ms; the gateway must end it long before.
            for _ in 0..150 {
                if slow.send(b"a").is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            let ended = slow.is_closed_by_peer() || slow.response().is_ok_and(|r| r.status == 408);
            let _ = done_tx.send(ended);
        });
        let mut served = 0;
        while done_rx.try_recv().is_err() && served < 100 {
            let response = gw.send(HEALTH);
            assert_eq!(response.status, 200, "a real client was not served: {response}");
            served += 1;
            std::thread::sleep(Duration::from_millis(100));
        }
        dribbler.join().expect("dribbler");
        assert!(served < 100, "the slow client was never cut off");
        assert!(gw.upstream.seen().is_empty(), "the dribbled head reached the app");
        Ok(())
    }

    /// At the connection limit a new client waits (or gets 503), never crashes the gateway, and
    /// is served once a connection frees up.
    fn connection_limit_waits_or_refuses_and_recovers(kind) on [daemon] {
        let mut gw = Gateway::start(kind, alice().set("max_connections", "3"))?;
        let mut held: Vec<Client> = (0..3).map(|_| gw.client()).collect();
        for client in &mut held {
            assert_eq!(exchange(client, HEALTH).status, 200);
        }
        let mut extra = gw.client();
        extra.send(HEALTH).expect("send");
        let answered_at_limit = extra.anything_within(Duration::from_millis(500));
        if answered_at_limit {
            let response = extra.response().expect("response at the limit");
            assert!(matches!(response.status, 200 | 503), "{response}");
        }
        held.clear();
        if !answered_at_limit {
            let response = extra.response().expect("served once a connection freed up");
            assert_eq!(response.status, 200, "{response}");
        }
        assert!(gw.is_running(), "the gateway died at its connection limit");
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut response = gw.send(HEALTH);
        while response.status != 200 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
            response = gw.send(HEALTH);
        }
        assert_eq!(response.status, 200, "{response}");
        Ok(())
    }

    /// A bounded soak: many authenticated requests over keep-alive connections all reach the
    /// app, and the gateway's resident memory does not grow with the request count.
    fn soak_keeps_memory_flat(kind) on [daemon] {
        let gw = Gateway::start(kind, alice())?;
        let total = soak_requests();
        let connections = 8;
        let run = |count: usize| {
            std::thread::scope(|scope| {
                for c in 0..connections {
                    let gw = &gw;
                    scope.spawn(move || {
                        let mut client = gw.client();
                        let request = app_request(&format!("/app/soak/{c}"));
                        for i in 0..count / connections {
                            let response = exchange(&mut client, &request);
                            assert_eq!(response.status, 200, "request {i} on connection {c}: {response}");
                        }
                    });
                }
            });
        };
        // One request first, so the credentials are verified (and cached) before the
        // connections start in parallel.
        assert_eq!(gw.send(&app_request("/app/first")).status, 200);
        run(2_000);
        let before = gw.rss_kib();
        gw.upstream.clear();
        run(total);
        let after = gw.rss_kib();
        let seen = gw.upstream.seen().len();
        assert_eq!(seen, total / connections * connections, "requests the app received");
        eprintln!("soak: {total} requests, RSS {before} KiB before, {after} KiB after");
        assert!(
            after <= before + 8 * 1024,
            "RSS grew from {before} KiB to {after} KiB over {total} requests"
        );
        Ok(())
    }
}
