//! UNIX seconds as calendar text, without a clock, a time zone database or an allocator.
//!
//! core never asks the time: the shells pass "now" in. What core shows people (when an app
//! password was made, when it was last used) is written here, in UTC, the same in every shell.

use core::fmt::Write;

/// Longest text [`utc_text`] writes (a year of up to 12 digits and the rest).
pub const UTC_TEXT_LEN: usize = 32;

/// A time as text.
pub type UtcText = heapless::String<UTC_TEXT_LEN>;

/// `secs` (UNIX seconds) as `YYYY-MM-DD HH:MM UTC`, the proleptic Gregorian calendar (days to
/// a civil date: Howard Hinnant's `civil_from_days`).
pub fn utc_text(secs: u64) -> UtcText {
    let days = (secs / 86_400) as i64;
    let (hour, minute) = ((secs % 86_400) / 3600, (secs % 3600) / 60);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let mut text = UtcText::new();
    // Fits: at most 12 digits of year (u64 seconds / 86 400 / 365) and 16 more bytes.
    let _ = write!(
        text,
        "{year:04}-{month:02}-{day:02} {hour:02}:{minute:02} UTC"
    );
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants() {
        assert_eq!(utc_text(0).as_str(), "1970-01-01 00:00 UTC");
        assert_eq!(utc_text(951_782_400).as_str(), "2000-02-29 00:00 UTC");
        assert_eq!(utc_text(1_800_000_000).as_str(), "2027-01-15 08:00 UTC");
        assert_eq!(utc_text(4_107_542_399).as_str(), "2100-02-28 23:59 UTC");
        assert_eq!(utc_text(4_107_542_400).as_str(), "2100-03-01 00:00 UTC");
    }

    #[test]
    fn the_largest_time_still_fits() {
        let text = utc_text(u64::MAX);
        assert!(text.ends_with(" UTC"), "{text}");
        assert!(text.len() > 20, "{text}");
    }
}
