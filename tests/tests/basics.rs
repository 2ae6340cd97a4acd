//! Basics every deployable shares: its health endpoint, keep-alive, pipelining, heads split
//! across reads, several clients at once.

use std::time::Duration;

use gatehouse_tests::*;

conformance! {
    /// `GET /_gatehouse/health` answers 200 without login.
    fn health_answers(kind) on [daemon, host_tap, qemu] {
        let gw = Gateway::start(kind, Setup::new())?;
        let response = gw.send(HEALTH);
        assert_eq!(response.status, 200, "{response}");
        Ok(())
    }

    /// A kept-alive connection serves one request after another.
    fn keep_alive_serves_several_requests(kind) on [daemon, host_tap, qemu] {
        let gw = Gateway::start(kind, Setup::new())?;
        let mut client = gw.client();
        for i in 0..3 {
            let response = exchange(&mut client, HEALTH);
            assert_eq!(response.status, 200, "request {i}: {response}");
        }
        Ok(())
    }

    /// Requests sent back to back in one write are each answered, in order.
    fn pipelined_requests_are_each_answered(kind) on [daemon, host_tap, qemu] {
        let gw = Gateway::start(kind, Setup::new())?;
        let mut client = gw.client();
        client.send(&[HEALTH, HEALTH, HEALTH].concat()).expect("send");
        for i in 0..3 {
            let response = client.response().expect("pipelined response");
            assert_eq!(response.status, 200, "pipelined request {i}: {response}");
        }
        Ok(())
    }

    /// A head that arrives in pieces (cut inside the method, the target and the final CRLF) is
    /// answered once, as a whole.
    fn head_split_across_reads(kind) on [daemon, host_tap, qemu] {
        let gw = Gateway::start(kind, Setup::new())?;
        let mut client = gw.client();
        let cuts = [2, 9, 20, HEALTH.len() - 3, HEALTH.len() - 1];
        client.send_split(HEALTH, &cuts).expect("send");
        let response = client.response().expect("response");
        assert_eq!(response.status, 200, "{response}");
        assert!(!client.anything_within(Duration::from_millis(300)), "a second answer arrived");
        Ok(())
    }

    /// Several clients connected at once are all served.
    fn concurrent_clients_are_all_served(kind) on [daemon, host_tap, qemu] {
        let gw = Gateway::start(kind, Setup::new())?;
        let mut clients: Vec<Client> = (0..3).map(|_| gw.client()).collect();
        for client in &mut clients {
            client.send(HEALTH).expect("send");
        }
        for (i, client) in clients.iter_mut().enumerate() {
            let response = client.response().expect("response");
            assert_eq!(response.status, 200, "client {i}: {response}");
        }
        Ok(())
    }

    /// Clients that connect one after another, each closing after its answer, are all
    /// accepted: a connection slot that was just used is ready for the next client (a busy
    /// gateway makes a client wait or answers 503; it never refuses the connection).
    fn back_to_back_connections_are_all_accepted(kind) on [daemon, host_tap, qemu] {
        let gw = Gateway::start(kind, Setup::new())?;
        for i in 0..20 {
            let response = gw.send(HEALTH);
            assert_eq!(response.status, 200, "connection {i}: {response}");
        }
        Ok(())
    }

    /// The same with requests the gateway forwards to the app: every connection is accepted
    /// and every request reaches the app.
    fn back_to_back_forwarded_connections_are_all_accepted(kind) on [daemon, host_tap, qemu] {
        let gw = Gateway::start(kind, Setup::new().user("alice", "alice's password"))?;
        let request = get("/app/", &[&basic("alice", "alice's password")]);
        for i in 0..20 {
            let response = gw.send(&request);
            assert_eq!(response.status, 200, "connection {i}: {response}");
        }
        assert_eq!(gw.upstream.wait_for(20).len(), 20, "requests the app received");
        Ok(())
    }
}
