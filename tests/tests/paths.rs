//! Paths: the request target is canonicalised before any prefix match, and what stays ambiguous
//! is refused. No spelling of a protected path reaches the app without login by posing as the
//! public `/share/` prefix.

use gatehouse_tests::*;

const PASSWORD: &str = "correct horse battery";

fn alice() -> Setup {
    Setup::new().user("alice", PASSWORD)
}

/// Sends an anonymous `GET target` (raw bytes, so the target is exactly as written) and checks
/// it is refused: 400, or the login refusal, and the app received nothing.
fn expect_no_anonymous_access(gw: &Gateway, target: &[u8]) -> Response {
    gw.upstream.clear();
    let request = [
        b"GET ".as_slice(),
        target,
        b" HTTP/1.1\r\nHost: gw.test\r\n\r\n",
    ]
    .concat();
    let mut client = gw.client();
    let response = exchange(&mut client, &request);
    assert!(
        response.status == 400 || is_login_refusal(&response),
        "anonymous {:?} was not refused: {response}",
        String::from_utf8_lossy(target)
    );
    let seen = gw.upstream.seen();
    assert!(
        seen.is_empty(),
        "anonymous {:?} reached the app: {seen:#?}",
        String::from_utf8_lossy(target)
    );
    response
}

conformance! {
    /// `..` out of the public prefix, in every spelling, lands on a protected path: login.
    fn dot_dot_out_of_share_is_protected(kind) on [daemon, host_tap, qemu] {
        let gw = Gateway::start(kind, alice())?;
        for target in [
            "/share/../app/",
            "/share/%2e%2e/app/",
            "/share/%2E%2E/app/",
            "/share/.%2e/app/",
            "/share/%2e./app/",
            "/share/./../app/",
            "/share/x/../../app/",
            "/share//../app/",
            "//share/../app/",
            "/share/../share/../app/",
            "/share/%2e%2e",
        ] {
            expect_no_anonymous_access(&gw, target.as_bytes());
        }
        Ok(())
    }

    /// Encoded slashes and backslashes are ambiguous (apps decode them differently): 400.
    fn encoded_slash_and_backslash_are_refused(kind) on [daemon, host_tap, qemu] {
        let gw = Gateway::start(kind, alice())?;
        for target in [
            "/share%2F..%2Fapp/",
            "/share/..%2Fapp/",
            "/share/..%2fapp/",
            "/share/..%5Capp/",
            "/share/..%5capp/",
            "/share/..\\app/",
            "/share\\..\\app/",
            "/share/a%2Fb",
        ] {
            let response = expect_no_anonymous_access(&gw, target.as_bytes());
            assert_eq!(response.status, 400, "{target}: {response}");
        }
        Ok(())
    }

    /// NUL and other control bytes, raw or escaped, and invalid escapes are refused with 400.
    fn nul_control_bytes_and_bad_escapes_are_refused(kind) on [daemon, host_tap, qemu] {
        let gw = Gateway::start(kind, alice())?;
        for target in [
            &b"/share/%00/../app/"[..],
            b"/share/a%00b",
            b"/share/%01x",
            b"/share/a\x00b/../../app/",
            b"/share/%zz/../app/",
            b"/share/%2/../app/",
            b"/share/%/../app/",
        ] {
            let response = expect_no_anonymous_access(&gw, target);
            assert_eq!(response.status, 400, "{:?}: {response}", String::from_utf8_lossy(target));
        }
        Ok(())
    }

    /// Dot segments in disguise: parameters after an escaped `;` (servlet containers decode
    /// `%3B` and then strip `;…`), trailing dots or spaces (trimmed by Windows and others), a
    /// tab. To such an app `/share/..%3B/app/` is `/app/`: refused with 400, never public.
    fn dot_segments_in_disguise_are_refused(kind) on [daemon, host_tap, qemu] {
        let gw = Gateway::start(kind, alice())?;
        for target in [
            "/share/..%3B/app/",
            "/share/..%3b/app/",
            "/share/.%3B/app/",
            "/share/..%3Bjsessionid=x/app/",
            "/share/%2e%2e%3B/app/",
            "/share/..%20/app/",
            "/share/.%20/app/",
            "/share/..%09/app/",
            "/share/.%09/app/",
            "/share/.../app/",
            "/share/..%20.%20/app/",
            "/share/..%2e/app/",
            "/share/...;x/app/",
        ] {
            let response = expect_no_anonymous_access(&gw, target.as_bytes());
            assert_eq!(response.status, 400, "{target}: {response}");
        }
        Ok(())
    }

    /// `..` that would climb above the root is refused, not clamped into something else.
    fn climbing_above_the_root_is_refused(kind) on [daemon, host_tap, qemu] {
        let gw = Gateway::start(kind, alice())?;
        for target in ["/../app/", "/share/../../app/", "/%2e%2e/app/", "/share/../../../etc/passwd"] {
            let response = expect_no_anonymous_access(&gw, target.as_bytes());
            assert_eq!(response.status, 400, "{target}: {response}");
        }
        Ok(())
    }

    /// Overlong UTF-8 for `.` (`%c0%ae`) is not a dot: either refused, or forwarded as the
    /// public path it literally is, without identity; never a way out of `/share/`.
    fn overlong_encodings_and_long_paths_stay_where_they_are(kind) on [daemon, host_tap, qemu] {
        let gw = Gateway::start(kind, alice())?;
        let long = format!("/share/{}", "a/".repeat(2000));
        for target in ["/share/%c0%ae%c0%ae/app/", "/share/%e0%80%ae%e0%80%ae/app/", long.as_str()] {
            gw.upstream.clear();
            let response = gw.send(&get(target, &["Remote-User: mallory"]));
            let seen = gw.upstream.seen();
            match response.status {
                200 => {
                    assert_eq!(seen.len(), 1, "{seen:#?}");
                    assert!(seen[0].target().starts_with("/share/"), "{}", seen[0]);
                    assert_eq!(seen[0].identity("Remote-User"), None, "{}", seen[0]);
                }
                400 | 414 | 431 => assert!(seen.is_empty(), "{seen:#?}"),
                other => panic!("{target}: unexpected {other}: {response}"),
            }
        }
        Ok(())
    }

    /// Protected paths that merely mention `/share/` later (in a segment, the query, an encoded
    /// `#` or `;`) are protected.
    fn share_later_in_the_target_is_not_public(kind) on [daemon, host_tap, qemu] {
        let gw = Gateway::start(kind, alice())?;
        for target in [
            "/app/share/",
            "/app/?/share/",
            "/app/%23/share/",
            "/app;/share/",
            "/shares/x",
            "/_gatehouse/../app/",
        ] {
            expect_no_anonymous_access(&gw, target.as_bytes());
        }
        Ok(())
    }

    /// The public prefix itself works without login, and reaches the app with no identity;
    /// the same canonical path written with `.` and `//` is public too.
    fn public_paths_are_forwarded_without_identity(kind) on [daemon, host_tap, qemu] {
        let gw = Gateway::start(kind, alice())?;
        for target in ["/share/abc", "/share/./abc", "/share//abc", "/share/x/../abc", "/share/%61bc"] {
            gw.upstream.clear();
            let response = gw.send(&get(target, &[]));
            assert_eq!(response.status, 200, "{target}: {response}");
            let seen = gw.upstream.only();
            assert!(seen.target().starts_with("/share/"), "{target} reached the app as {}", seen.target());
            assert_eq!(seen.identity("Remote-User"), None, "{seen}");
        }
        Ok(())
    }

    /// With credentials, a protected path written in a roundabout way reaches the app as the
    /// canonical path, as alice.
    fn authenticated_requests_reach_the_canonical_path(kind) on [daemon, host_tap, qemu] {
        let gw = Gateway::start(kind, alice())?;
        for target in ["/share/../app/x", "/app/./x", "/app//x", "/%61pp/x"] {
            gw.upstream.clear();
            let response = gw.send(&get(target, &[&basic("alice", PASSWORD)]));
            assert_eq!(response.status, 200, "{target}: {response}");
            let seen = gw.upstream.only();
            assert_identity(&seen, "Remote-User", "alice");
            assert!(
                !seen.target().contains("share") && !seen.target().contains(".."),
                "{target} reached the app as {}",
                seen.target()
            );
        }
        Ok(())
    }
}
