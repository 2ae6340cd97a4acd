//! The real time from an SNTP server (SNTPv4, RFC 4330, client mode), over UDP through the
//! board's network stack: one 48-byte request, one 48-byte answer.
//!
//! A request carries 8 random bytes as its transmit timestamp; an answer is believed only if it
//! echoes them as its originate timestamp, comes from the configured server and port, is a
//! server answer (mode 4) from a synchronised server (leap indicator not 3, stratum 1..=15).
//! That keeps an attacker who does not see the request from setting the board's time; one who
//! does (on the path, or the server itself) can, as with any unauthenticated NTP. The clock
//! never goes backwards (see [`crate::clock`]), so the worst such an attacker does is end
//! sessions early or make new ones outlive their lifetime.
//!
//! Whole seconds are enough (session lifetimes are counted in seconds), so the fraction and the
//! round trip are ignored: no floating point.

use core::net::SocketAddrV4;

use embassy_net::udp::{PacketMetadata, UdpSocket};
use embassy_net::{IpEndpoint, Stack};
use embassy_time::{Duration, Timer, with_timeout};

use crate::state::Engine;

/// The length of an SNTP packet without extensions.
pub const PACKET_LEN: usize = 48;
/// The NTP port.
pub const NTP_PORT: u16 = 123;
/// Seconds from the NTP epoch (1900) to the UNIX epoch (1970).
const NTP_TO_UNIX: u64 = 2_208_988_800;
/// How long to wait for one answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(3);
/// Between tries while the time is unknown (a lost packet, a server still starting).
const RETRY_UNKNOWN: Duration = Duration::from_secs(5);
/// Between tries once the time is known: corrects the board oscillator's drift.
const RESYNC: Duration = Duration::from_secs(3600);

/// Why an answer was not believed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum AnswerError {
    /// Shorter than [`PACKET_LEN`].
    TooShort,
    /// Not a server answer (mode 4) of version 3 or 4.
    NotAServerAnswer,
    /// The server says it is not synchronised (leap indicator 3, stratum 0 or 16 and up: a
    /// kiss-of-death or an unsynchronised server).
    Unsynchronised,
    /// The originate timestamp is not the one this request carried.
    NotOurRequest,
    /// A transmit timestamp of 0.
    NoTime,
}

/// Writes a client request carrying `nonce` as its transmit timestamp.
pub fn request(nonce: [u8; 8]) -> [u8; PACKET_LEN] {
    let mut packet = [0u8; PACKET_LEN];
    // Leap indicator 0, version 4, mode 3 (client).
    packet[0] = (4 << 3) | 3;
    packet[40..48].copy_from_slice(&nonce);
    packet
}

/// Reads a server's answer to the request that carried `nonce`: UNIX seconds.
pub fn read_answer(answer: &[u8], nonce: [u8; 8]) -> Result<u64, AnswerError> {
    let packet: &[u8; PACKET_LEN] = answer
        .get(..PACKET_LEN)
        .and_then(|p| p.try_into().ok())
        .ok_or(AnswerError::TooShort)?;
    let leap = packet[0] >> 6;
    let version = (packet[0] >> 3) & 7;
    let mode = packet[0] & 7;
    if mode != 4 || !(3..=4).contains(&version) {
        return Err(AnswerError::NotAServerAnswer);
    }
    let stratum = packet[1];
    if leap == 3 || !(1..=15).contains(&stratum) {
        return Err(AnswerError::Unsynchronised);
    }
    if packet[24..32] != nonce {
        return Err(AnswerError::NotOurRequest);
    }
    let seconds = u32::from_be_bytes([packet[40], packet[41], packet[42], packet[43]]);
    if seconds == 0 {
        return Err(AnswerError::NoTime);
    }
    Ok(ntp_seconds_to_unix(seconds))
}

/// NTP seconds are 32 bits and wrap in 2036 (era 1). Times in the first half of the 32-bit range
/// are read as era 1 (2036 to 2104), the rest as era 0 (1968 to 2036), as RFC 4330 suggests.
fn ntp_seconds_to_unix(seconds: u32) -> u64 {
    let seconds = u64::from(seconds);
    let era_seconds = if seconds < 0x8000_0000 {
        seconds + (1 << 32)
    } else {
        seconds
    };
    era_seconds - NTP_TO_UNIX
}

/// Asks `server` for the time, forever: every few seconds until an answer sets the engine's
/// clock, then every hour. Runs as a task of its own.
pub async fn run(stack: Stack<'static>, engine: &'static Engine, server: SocketAddrV4) -> ! {
    let mut rx_meta = [PacketMetadata::EMPTY; 1];
    let mut tx_meta = [PacketMetadata::EMPTY; 1];
    let mut rx = [0u8; PACKET_LEN];
    let mut tx = [0u8; PACKET_LEN];
    let mut socket = UdpSocket::new(stack, &mut rx_meta, &mut rx, &mut tx_meta, &mut tx);
    let endpoint = IpEndpoint::new((*server.ip()).into(), server.port());
    stack.wait_config_up().await;
    if socket.bind(0).is_err() {
        error!("SNTP: no UDP port; the time stays unknown");
    }
    loop {
        let set = ask(&socket, endpoint, engine).await;
        Timer::after(if set { RESYNC } else { RETRY_UNKNOWN }).await;
    }
}

/// One request and its answer; whether the clock was set.
async fn ask(socket: &UdpSocket<'_>, server: IpEndpoint, engine: &Engine) -> bool {
    let mut nonce = [0u8; 8];
    nonce.copy_from_slice(&engine.random()[..8]);
    if socket.send_to(&request(nonce), server).await.is_err() {
        warn!("SNTP: could not send to {}", server);
        return false;
    }
    let mut answer = [0u8; PACKET_LEN];
    let waited = with_timeout(ANSWER_TIMEOUT, async {
        loop {
            // Anything else (another sender, a stale answer) is dropped and the wait goes on.
            if let Ok((len, meta)) = socket.recv_from(&mut answer).await
                && meta.endpoint == server
            {
                return read_answer(&answer[..len], nonce);
            }
        }
    })
    .await;
    match waited {
        Err(_) => {
            warn!("SNTP: no answer from {}", server);
            false
        }
        Ok(Err(e)) => {
            warn!("SNTP: answer from {} not believed: {:?}", server, e);
            false
        }
        Ok(Ok(unix)) => {
            let was_known = engine.now().known;
            match engine.set_time(unix) {
                Ok(()) => {
                    if !was_known {
                        info!("SNTP: the time is {} (UNIX), from {}", unix, server);
                    }
                    true
                }
                Err(e) => {
                    error!(
                        "SNTP: {} says {} (UNIX), earlier than the {} this board already counts \
                         (the floor kept in flash): not believed",
                        server, e.offered, e.counted
                    );
                    false
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONCE: [u8; 8] = [1, 2, 3, 4, 5, 6, 7, 8];

    /// A server's answer to a request carrying NONCE, as `ntpd` writes it: 2026-01-01 00:00:00
    /// UTC (NTP seconds 0xed00_3780) in the transmit timestamp, stratum 2.
    fn answer() -> [u8; PACKET_LEN] {
        let mut a = [0u8; PACKET_LEN];
        a[0] = 0x24; // leap 0, version 4, mode 4
        a[1] = 2;
        a[24..32].copy_from_slice(&NONCE);
        a[32..36].copy_from_slice(&0xed00_377fu32.to_be_bytes());
        a[40..44].copy_from_slice(&0xed00_3780u32.to_be_bytes());
        a[44..48].copy_from_slice(&[0x80, 0, 0, 0]);
        a
    }

    #[test]
    fn a_request_is_a_version_4_client_packet_carrying_the_nonce() {
        let r = request(NONCE);
        assert_eq!(r[0], 0x23);
        assert_eq!(&r[40..48], &NONCE);
        assert!(r[1..40].iter().all(|&b| b == 0));
    }

    #[test]
    fn an_answer_gives_unix_seconds() {
        assert_eq!(read_answer(&answer(), NONCE), Ok(1_767_225_600));
    }

    #[test]
    fn answers_after_2036_are_in_the_next_era() {
        let mut a = answer();
        a[40..44].copy_from_slice(&0x0000_0010u32.to_be_bytes());
        assert_eq!(read_answer(&a, NONCE), Ok((1u64 << 32) + 16 - NTP_TO_UNIX));
    }

    #[test]
    fn answers_that_are_not_believed_say_why() {
        let mut cases: Vec<([u8; PACKET_LEN], AnswerError)> = Vec::new();
        let mut client_mode = answer();
        client_mode[0] = 0x23;
        cases.push((client_mode, AnswerError::NotAServerAnswer));
        let mut v2 = answer();
        v2[0] = 0x14;
        cases.push((v2, AnswerError::NotAServerAnswer));
        let mut alarm = answer();
        alarm[0] = 0xe4;
        cases.push((alarm, AnswerError::Unsynchronised));
        let mut kiss = answer();
        kiss[1] = 0;
        cases.push((kiss, AnswerError::Unsynchronised));
        let mut forged = answer();
        forged[24] ^= 1;
        cases.push((forged, AnswerError::NotOurRequest));
        let mut zero = answer();
        zero[40..44].copy_from_slice(&[0; 4]);
        cases.push((zero, AnswerError::NoTime));
        for (packet, expected) in cases {
            assert_eq!(read_answer(&packet, NONCE), Err(expected));
        }
        assert_eq!(
            read_answer(&answer()[..47], NONCE),
            Err(AnswerError::TooShort)
        );
    }
}
