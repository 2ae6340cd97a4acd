//! Trusted-sources lists (`ExtAuth.TrustedSources`) and peer addresses.
//!
//! Input: text; its first line is a trusted-sources list, every further line a peer.
//!
//! Asserts:
//! - a list that parses prints (`Display`) in a canonical form that parses back to the same
//!   list, and printing that again gives the same text; each entry alone does the same;
//! - a refusal names an entry that really is in the input (index, span, excerpt agree);
//! - a peer that parses prints as an address that parses back to the same peer;
//! - matching is consistent: `trusts` agrees with `find`, the match found contains the peer,
//!   an IPv4 peer and its IPv4-mapped IPv6 spelling are trusted alike, and `@` trusts exactly
//!   the UNIX-socket peer.
#![no_main]

use core::net::IpAddr;

use gatehouse_core::peer::Peer;
use gatehouse_core::trusted::{ERROR_EXCERPT_LEN, TrustedSource, TrustedSources};
use libfuzzer_sys::fuzz_target;

type List = TrustedSources<8>;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = core::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.split('\n');
    let list_text = lines.next().unwrap_or("");
    let list = check_list(list_text);
    let mut peers: Vec<Peer> = vec![Peer::Unix];
    for line in lines {
        if let Some(peer) = check_peer(line) {
            peers.push(peer);
        }
    }
    // Entries of the list are also interesting peers: their network addresses.
    if let Some(list) = &list {
        peers.extend(
            list.entries()
                .iter()
                .filter_map(|e| e.cidr())
                .map(|(ip, _)| Peer::Ip(ip)),
        );
        for peer in &peers {
            check_match(list, peer);
        }
    }
});

fn check_list(text: &str) -> Option<List> {
    match List::parse(text) {
        Ok(list) => {
            let printed = list.to_string();
            let again = List::parse(&printed)
                .unwrap_or_else(|e| panic!("{text:?} printed as {printed:?}: {e}"));
            assert_eq!(again, list, "{text:?} printed as {printed:?}");
            assert_eq!(again.to_string(), printed);
            assert_eq!(
                list.len(),
                text.split(',')
                    .filter(|e| !e.trim_ascii().is_empty())
                    .count()
            );
            for entry in list.entries() {
                let shown = entry.to_string();
                assert_eq!(TrustedSource::parse(&shown), Ok(*entry), "{shown:?}");
                assert_eq!(entry.is_unix(), entry.cidr().is_none());
                if let Some((ip, prefix)) = entry.cidr() {
                    assert!(prefix <= if ip.is_ipv4() { 32 } else { 128 });
                    assert_eq!(TrustedSource::network(ip, prefix), Ok(*entry));
                }
            }
            assert_eq!(
                list.trusts_everyone(),
                list.entries().iter().any(TrustedSource::is_catch_all)
            );
            Some(list)
        }
        Err(e) => {
            let span = e.span();
            let entry = text.get(span.clone()).expect("the span lies in the input");
            assert!(!entry.is_empty());
            assert_eq!(entry, entry.trim_ascii());
            assert!(!entry.contains(','));
            assert!(entry.starts_with(e.excerpt()));
            assert_eq!(e.excerpt_is_cut(), e.excerpt().len() < entry.len());
            assert!(e.excerpt().len() <= ERROR_EXCERPT_LEN);
            let before = &text[..span.start];
            let index = before
                .split(',')
                .filter(|x| !x.trim_ascii().is_empty())
                .count();
            assert_eq!(e.index(), index, "{text:?}");
            let _ = e.to_string();
            None
        }
    }
}

fn check_peer(text: &str) -> Option<Peer> {
    let peer = Peer::parse(text).ok()?;
    let printed = peer.to_string();
    assert_eq!(
        Peer::parse(&printed),
        Ok(peer),
        "{text:?} printed as {printed:?}"
    );
    assert_eq!(peer.is_ipv4() || peer.is_ipv6(), peer != Peer::Unix);
    assert!(!(peer.is_ipv4() && peer.is_ipv6()));
    Some(peer)
}

fn check_match(list: &List, peer: &Peer) {
    let found = list.find(peer);
    assert_eq!(list.trusts(peer), found.is_some());
    if let Some(m) = found {
        assert!(m.source.contains(peer));
        assert_eq!(list.entries()[m.index], m.source);
        assert!(list.entries()[..m.index].iter().all(|e| !e.contains(peer)));
    }
    // One address, two spellings: the same answer.
    if let Some(IpAddr::V4(v4)) = peer.canonical_ip() {
        let plain = Peer::Ip(IpAddr::V4(v4));
        let mapped = Peer::Ip(IpAddr::V6(v4.to_ipv6_mapped()));
        assert_eq!(list.trusts(&plain), list.trusts(&mapped));
        assert_eq!(list.trusts(&plain), list.trusts(peer));
    }
    if *peer == Peer::Unix {
        assert_eq!(
            list.trusts(peer),
            list.entries().iter().any(TrustedSource::is_unix)
        );
    }
    for entry in list.entries() {
        if let (Some((network, prefix)), Some(ip)) = (entry.cidr(), peer.canonical_ip()) {
            let expected = match (network, ip) {
                (IpAddr::V4(n), IpAddr::V4(a)) => {
                    prefix == 0 || (u32::from(n) ^ u32::from(a)) >> (32 - prefix) == 0
                }
                (IpAddr::V6(n), IpAddr::V6(a)) => {
                    prefix == 0 || (u128::from(n) ^ u128::from(a)) >> (128 - prefix) == 0
                }
                _ => false,
            };
            assert_eq!(entry.contains(peer), expected, "{entry} vs {peer}");
        }
    }
}
