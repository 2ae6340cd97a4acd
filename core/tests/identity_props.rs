//! Property tests of the identity layer: no input makes any parser panic, what parses prints
//! back to the same value, matching agrees with a plain model of Navidrome's rules, and the
//! login throttle never refuses a stranger, however full the table is of others.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use gatehouse_core::credential_cache::{CredentialCache, KEY_LEN, Lookup};
use gatehouse_core::identity::{DEFAULT_USER_HEADER, parse_username, read_identity};
use gatehouse_core::peer::Peer;
use gatehouse_core::throttle::{Throttle, ThrottlePolicy, Verdict};
use gatehouse_core::trusted::{TrustedSource, TrustedSources};
use proptest::prelude::*;

/// Strings made of the characters peer and list syntax is made of, so that the parsers'
/// interesting branches are reached far more often than with arbitrary text.
fn address_like() -> impl Strategy<Value = String> {
    proptest::string::string_regex(r"[0-9a-fA-F:.\[\]%@/, \t]{0,60}").unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn peer_parse_never_panics(text in any::<String>()) {
        let _ = Peer::parse(&text);
    }

    #[test]
    fn peer_parse_round_trips(text in address_like()) {
        if let Ok(peer) = Peer::parse(&text) {
            prop_assert_eq!(Peer::parse(&peer.to_string()), Ok(peer));
        }
    }

    #[test]
    fn trusted_list_parse_never_panics(text in any::<String>()) {
        let _ = TrustedSources::<4>::parse(&text);
    }

    #[test]
    fn trusted_list_round_trips_or_names_a_real_entry(text in address_like()) {
        match TrustedSources::<4>::parse(&text) {
            Ok(list) => {
                let shown = list.to_string();
                prop_assert_eq!(TrustedSources::<4>::parse(&shown), Ok(list));
            }
            Err(err) => {
                let entry = &text[err.span()];
                prop_assert!(!entry.is_empty());
                prop_assert_eq!(entry.trim_ascii(), entry);
                prop_assert!(!entry.contains(','));
                prop_assert!(entry.starts_with(err.excerpt()));
                prop_assert_eq!(err.excerpt_is_cut(), err.excerpt().len() < entry.len());
            }
        }
    }

    #[test]
    fn identity_value_never_panics_and_what_passes_is_clean(value in any::<Vec<u8>>()) {
        if let Ok(name) = parse_username(&value) {
            prop_assert!(!name.is_empty());
            prop_assert!(name.len() <= gatehouse_core::MAX_USERNAME_LEN);
            prop_assert!(!name.chars().any(char::is_control));
            prop_assert_eq!(name.trim_matches([' ', '\t']), name.as_str());
        }
    }

    #[test]
    fn identity_headers_never_panic(
        headers in proptest::collection::vec((any::<Vec<u8>>(), any::<Vec<u8>>()), 0..6),
        name in "[A-Za-z_-]{0,16}",
    ) {
        let _ = read_identity(&name, headers.iter().map(|(n, v)| (&n[..], &v[..])));
        let _ = read_identity(DEFAULT_USER_HEADER, headers.iter().map(|(n, v)| (&n[..], &v[..])));
    }

    #[test]
    fn ipv4_matching_agrees_with_the_model(net in any::<u32>(), prefix in 0u8..=32, ip in any::<u32>()) {
        let entry = TrustedSource::network(IpAddr::V4(Ipv4Addr::from(net)), prefix).unwrap();
        let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - prefix) };
        let expected = net & mask == ip & mask;
        let plain = Peer::Ip(IpAddr::V4(Ipv4Addr::from(ip)));
        let mapped = Peer::Ip(IpAddr::V6(Ipv4Addr::from(ip).to_ipv6_mapped()));
        prop_assert_eq!(entry.contains(&plain), expected);
        prop_assert_eq!(entry.contains(&mapped), expected);
        prop_assert!(!entry.contains(&Peer::Unix));
    }

    #[test]
    fn ipv6_matching_agrees_with_the_model(net in any::<u128>(), prefix in 0u8..=128, ip in any::<u128>()) {
        let entry = TrustedSource::network(IpAddr::V6(Ipv6Addr::from(net)), prefix).unwrap();
        let mask = if prefix == 0 { 0 } else { u128::MAX << (128 - prefix) };
        let peer_ip = Ipv6Addr::from(ip);
        let peer = Peer::Ip(IpAddr::V6(peer_ip));
        // A v4-mapped peer is IPv4 and never matches an IPv6 entry (unless the entry itself was
        // a mapped network, which is stored as IPv4).
        let entry_is_v4 = matches!(entry.cidr(), Some((IpAddr::V4(_), _)));
        let expected = if peer_ip.to_ipv4_mapped().is_some() {
            entry_is_v4 && net & mask == ip & mask
        } else {
            !entry_is_v4 && net & mask == ip & mask
        };
        prop_assert_eq!(entry.contains(&peer), expected);
        prop_assert!(!entry.contains(&Peer::Unix));
    }

    #[test]
    fn families_never_cross(v4 in any::<u32>(), v6 in any::<u128>(), p4 in 0u8..=32, p6 in 0u8..=128) {
        let v6_addr = Ipv6Addr::from(v6);
        prop_assume!(v6_addr.to_ipv4_mapped().is_none());
        let v4_entry = TrustedSource::network(IpAddr::V4(Ipv4Addr::from(v4)), p4).unwrap();
        let v6_entry = TrustedSource::network(IpAddr::V6(v6_addr), p6).unwrap();
        prop_assume!(matches!(v6_entry.cidr(), Some((IpAddr::V6(_), _))));
        prop_assert!(!v4_entry.contains(&Peer::Ip(IpAddr::V6(v6_addr))));
        prop_assert!(!v6_entry.contains(&Peer::Ip(IpAddr::V4(Ipv4Addr::from(v4)))));
        prop_assert!(!v6_entry.contains(&Peer::Ip(IpAddr::V6(Ipv4Addr::from(v4).to_ipv6_mapped()))));
    }
}

proptest! {
    // Each case replays hundreds of operations: fewer cases, same coverage of table states.
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn a_full_throttle_never_refuses_a_fresh_network_and_user(
        ops in proptest::collection::vec((any::<u16>(), 0u8..32, 0u64..5, any::<bool>()), 0..400),
        policy in (0u32..20, 0u64..100, 0u32..20, 0u64..1000),
        fresh_v6 in any::<u64>(),
    ) {
        let policy = ThrottlePolicy {
            network_burst: policy.0,
            network_interval: policy.1,
            user_burst: policy.2,
            user_interval: policy.3,
        };
        let mut throttle = Throttle::<16>::new(policy);
        let mut now = 1_000u64;
        for (host, user, step, success) in ops {
            now += step;
            // Others: 10.0.0.0/16, fc00::/64 and the UNIX peer; names user0..user31.
            let peer = match host % 3 {
                0 => Peer::Ip(IpAddr::V4(Ipv4Addr::new(10, 0, (host >> 8) as u8, host as u8))),
                1 => Peer::Ip(IpAddr::V6(Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, host))),
                _ => Peer::Unix,
            };
            let name = format!("user{user}");
            if success {
                throttle.record_success(&peer, &name, now);
            } else {
                let _ = throttle.check(&peer, &name, now);
                throttle.record_failure(&peer, &name, now);
            }
        }
        let fresh4 = Peer::Ip(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)));
        let fresh6 = Peer::Ip(IpAddr::V6(Ipv6Addr::from((0x2001_0db8u128 << 96) | u128::from(fresh_v6))));
        prop_assert_eq!(throttle.check(&fresh4, "stranger", now), Verdict::Allowed);
        prop_assert_eq!(throttle.check(&fresh6, "Stranger", now), Verdict::Allowed);
        // A fresh network is not refused even for a name others have hammered.
        prop_assert_eq!(throttle.check(&fresh4, "user0", now), Verdict::Allowed);
    }

    #[test]
    fn throttle_never_panics(
        ops in proptest::collection::vec((any::<u128>(), any::<Vec<u8>>(), any::<u64>(), 0u8..3), 0..64),
        policy in (any::<u32>(), any::<u64>(), any::<u32>(), any::<u64>()),
    ) {
        let mut throttle = Throttle::<4>::new(ThrottlePolicy {
            network_burst: policy.0,
            network_interval: policy.1,
            user_burst: policy.2,
            user_interval: policy.3,
        });
        for (ip, user, now, op) in ops {
            let peer = Peer::Ip(IpAddr::V6(Ipv6Addr::from(ip)));
            match op {
                0 => throttle.record_failure(&peer, &user, now),
                1 => throttle.record_success(&peer, &user, now),
                _ => {
                    if let Verdict::RetryAfter { seconds, .. } = throttle.check(&peer, &user, now) {
                        prop_assert!(seconds >= 1);
                    }
                }
            }
        }
    }

    #[test]
    fn credential_cache_answers_only_what_was_inserted(
        key in any::<[u8; KEY_LEN]>(),
        entries in proptest::collection::vec((any::<Vec<u8>>(), any::<Vec<u8>>(), 0u32..3), 0..12),
        probe in (any::<Vec<u8>>(), any::<Vec<u8>>(), 0u32..3),
        ttl in 0u64..50,
        later in 0u64..60,
    ) {
        let mut cache = CredentialCache::<4>::new(&key, ttl);
        for (i, (user, password, generation)) in entries.iter().enumerate() {
            cache.insert(user, password, b"verifier", *generation, i as u64);
        }
        let now = entries.len() as u64 + later;
        let (user, password, generation) = probe;
        let verdict = cache.lookup(&user, &password, b"verifier", generation, now);
        if verdict == Lookup::Hit {
            // A hit is only ever a credential inserted for this generation, still in time.
            let inserted = entries.iter().enumerate().rev().find(|(_, (u, p, _))| *u == user && *p == password);
            let (at, (_, _, g)) = inserted.expect("a hit for a credential never inserted");
            prop_assert_eq!(*g, generation);
            prop_assert!(now < at as u64 + ttl);
        }
        prop_assert!(cache.len() <= 4);
    }
}
