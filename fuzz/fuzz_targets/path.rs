//! Path canonicalisation and classification.
//!
//! Input: a request target as text (`/path?query`).
//!
//! Asserts:
//! - the answer is the one of a plain reference model written from the rules in
//!   `core/src/http/path.rs` (decode unreserved escapes, upper-case the others, encode raw
//!   non-ASCII, resolve `.`/`..`, collapse `//`, refuse what is ambiguous, including an
//!   escaped `%` that a second decoding would turn into another character, a dot segment with
//!   parameters after `;` or `%3B`, and one with trailing dots or spaces);
//! - a canonical target is a fixed point (canonicalising it again changes nothing), its path
//!   has no `//`, no `.` or `..` segment, no `\`, no control byte, no escape of a character
//!   that should have been decoded, and the query is kept byte for byte;
//! - a canonical target that does not fit the output buffer is `TooLong`, never cut short;
//! - classification is on whole segments (the reserved prefix in any case), and `/share/..`
//!   never escapes into public.
#![no_main]

use gatehouse_core::http::path::has_prefix;
use gatehouse_core::http::{PathClass, PathError, PathRules, canonicalize};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(input) = core::str::from_utf8(data) else {
        return;
    };
    let mut buf = vec![0u8; 3 * input.len() + 2];
    let result = canonicalize(input, &mut buf);
    let expected = reference(input);
    match (&result, &expected) {
        (Ok(t), Ok(e)) => assert_eq!(t.as_str(), e, "{input:?}"),
        (Err(a), Err(b)) => assert_eq!(a, b, "{input:?}"),
        _ => panic!("{input:?}: {result:?}, reference {expected:?}"),
    }
    let Ok(target) = result else {
        return;
    };
    let canonical = target.as_str();
    let path = target.path();
    assert!(canonical.starts_with('/'));
    assert!(canonical.starts_with(path));
    assert_eq!(target.query(), input.split_once('?').map(|(_, q)| q));
    assert!(!path.contains("//"), "{path:?}");
    assert!(!path.contains('\\'));
    assert!(path.bytes().all(|b| b.is_ascii_graphic()), "{path:?}");
    for segment in path.split('/') {
        assert!(segment != "." && segment != "..", "{path:?}");
        let trimmed = segment.replace("%20", " ");
        let trimmed = trimmed.trim_end_matches(['.', ' ']);
        assert!(
            !(segment.starts_with('.') && trimmed.is_empty()),
            "a dot segment in disguise: {path:?}"
        );
    }
    let bytes = path.as_bytes();
    for (i, _) in path.match_indices('%') {
        let hex = &bytes[i + 1..i + 3];
        assert!(
            hex.iter()
                .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase()),
            "{path:?}"
        );
        let value = u8::from_str_radix(core::str::from_utf8(hex).unwrap(), 16).unwrap();
        assert!(
            !is_unreserved(value) && value > 0x1f && value != 0x7f,
            "{path:?}"
        );
        assert!(value != b'/' && value != b'\\', "{path:?}");
        if value == b'%' {
            let next = &bytes[i + 3..(i + 5).min(bytes.len())];
            assert!(
                !(next.len() == 2 && next.iter().all(u8::is_ascii_hexdigit)),
                "decoded twice, {path:?} is another path"
            );
        }
    }

    // A fixed point. (The canonicaliser writes the `/` after a name before it knows whether
    // the name is the last one, so it needs one byte more than the result.)
    let mut again = vec![0u8; canonical.len() + 1];
    let twice = canonicalize(canonical, &mut again).expect("canonical input is accepted");
    assert_eq!(twice.as_str(), canonical);
    assert_eq!(twice.path(), path);
    // What does not fit is refused, never cut.
    let mut short = vec![0u8; canonical.len() - 1];
    assert_eq!(
        canonicalize(input, &mut short),
        Err(PathError::TooLong),
        "{input:?}"
    );

    // Classification.
    let rules = PathRules::default();
    let class = rules.classify(path);
    // The reserved prefix matches in any case (the proxies in front route it that way).
    let lower = path.to_ascii_lowercase();
    assert_eq!(
        class == PathClass::Reserved,
        lower == "/_gatehouse" || lower.starts_with("/_gatehouse/")
    );
    if class == PathClass::Public {
        assert!(path == "/share" || path.starts_with("/share/"), "{path:?}");
    }
    if class == PathClass::Subsonic {
        assert!(path == "/rest" || path.starts_with("/rest/"), "{path:?}");
    }
    assert_eq!(
        has_prefix(path, "/share/"),
        path.split('/').nth(1) == Some("share")
    );
    if let Some(endpoint) = rules.reserved_endpoint(path) {
        assert_eq!(class, PathClass::Reserved);
        assert!(!endpoint.starts_with('/'));
    }
});

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// The canonical target, by the rules, with no care for buffers.
fn reference(input: &str) -> Result<String, PathError> {
    let (path, query) = match input.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (input, None),
    };
    let rest = match path.strip_prefix('/') {
        Some(rest) => rest,
        None if path.is_empty() => "",
        None => return Err(PathError::NotAbsolute),
    };
    let mut segments: Vec<String> = Vec::new();
    let mut trailing_slash = false;
    let raw_segments: Vec<&str> = if path.is_empty() {
        vec![""]
    } else {
        rest.split('/').collect()
    };
    for raw in raw_segments {
        let segment = decode(raw.as_bytes())?;
        let name = segment.split(';').next().unwrap_or("");
        let name = name.split("%3B").next().unwrap_or("");
        if (name == "." || name == "..") && name.len() != segment.len() {
            return Err(PathError::DotSegmentWithParams);
        }
        // `.` or `..` with trailing dots and spaces (`%20`): a name here, not to Windows.
        let spaced = name.replace("%20", " ");
        if name.starts_with('.')
            && name != "."
            && name != ".."
            && spaced.chars().all(|c| c == '.' || c == ' ')
        {
            return Err(PathError::DotSegmentLookalike);
        }
        match segment.as_str() {
            "" | "." => trailing_slash = true,
            ".." => {
                if segments.pop().is_none() {
                    return Err(PathError::ClimbsAboveRoot);
                }
                trailing_slash = true;
            }
            _ => {
                segments.push(segment);
                trailing_slash = false;
            }
        }
    }
    let mut out = String::from("/");
    out.push_str(&segments.join("/"));
    if trailing_slash && !segments.is_empty() {
        out.push('/');
    }
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    Ok(out)
}

fn decode(raw: &[u8]) -> Result<String, PathError> {
    let mut out = String::new();
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        match b {
            b'%' => {
                let hex = raw.get(i + 1..i + 3).ok_or(PathError::InvalidEscape)?;
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return Err(PathError::InvalidEscape);
                }
                let v = u8::from_str_radix(core::str::from_utf8(hex).unwrap(), 16).unwrap();
                match v {
                    b'/' => return Err(PathError::EncodedSlash),
                    b'\\' => return Err(PathError::EncodedBackslash),
                    0..=0x1f | 0x7f => return Err(PathError::ControlByte),
                    b'%' if raw
                        .get(i + 3..i + 5)
                        .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) =>
                    {
                        return Err(PathError::DoubleEncoded);
                    }
                    _ if is_unreserved(v) => out.push(char::from(v)),
                    _ => out.push_str(&format!("%{v:02X}")),
                }
                i += 3;
            }
            b'\\' => return Err(PathError::Backslash),
            0..=0x20 | 0x7f => return Err(PathError::ControlByte),
            0x80..=0xff => {
                out.push_str(&format!("%{b:02X}"));
                i += 1;
            }
            _ => {
                out.push(char::from(b));
                i += 1;
            }
        }
    }
    // An escaped `%` followed by two hex digits in what the app receives: decoded twice, it
    // would be another path.
    let bytes = out.as_bytes();
    if (0..bytes.len()).any(|j| {
        bytes[j..].starts_with(b"%25")
            && bytes
                .get(j + 3..j + 5)
                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
    }) {
        return Err(PathError::DoubleEncoded);
    }
    Ok(out)
}
