//! gatehouse firmware on Linux: the same board-independent gateway as on a microcontroller, with
//! embassy's std executor and a TAP device as its Ethernet port.
//!
//! Board bring-up only: open the TAP device, start the network stack, hand it to
//! `gatehouse-firmware`. The TAP device (and the network namespace around it) is made by whoever
//! runs this (see `e2e.sh`); this program needs no privilege beyond opening it.
//!
//! ```text
//! gatehouse-host-tap --tap tap0 --address 192.0.2.15/24 [--gateway 192.0.2.1] [--port 80]
//! ```

use std::net::Ipv4Addr;
use std::process::ExitCode;

use embassy_executor::{Executor, Spawner};
use embassy_net::{Ipv4Address, Ipv4Cidr, Stack, StackResources, StaticConfigV4};
use embassy_net_tuntap::TunTapDevice;
use gatehouse_firmware::{Gateway, SOCKETS_NEEDED, Settings, Timeouts};
use static_cell::StaticCell;

struct Args {
    tap: String,
    address: Ipv4Cidr,
    gateway: Option<Ipv4Address>,
    port: u16,
}

const USAGE: &str =
    "usage: gatehouse-host-tap --tap NAME --address A.B.C.D/LEN [--gateway A.B.C.D] [--port N]";

fn parse_args() -> Result<Args, String> {
    let mut tap = None;
    let mut address = None;
    let mut gateway = None;
    let mut port = 80;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--tap" => tap = Some(value()?),
            "--address" => {
                let text = value()?;
                let (ip, len) = text
                    .split_once('/')
                    .ok_or_else(|| format!("--address {text}: expected A.B.C.D/LEN"))?;
                let ip: Ipv4Addr = ip.parse().map_err(|e| format!("--address {text}: {e}"))?;
                let len: u8 = len
                    .parse()
                    .ok()
                    .filter(|len| *len <= 32)
                    .ok_or_else(|| format!("--address {text}: prefix length must be 0..=32"))?;
                address = Some(Ipv4Cidr::new(ip, len));
            }
            "--gateway" => {
                let text = value()?;
                gateway = Some(
                    text.parse::<Ipv4Addr>()
                        .map_err(|e| format!("--gateway {text}: {e}"))?,
                );
            }
            "--port" => {
                let text = value()?;
                port = text.parse().map_err(|e| format!("--port {text}: {e}"))?;
            }
            "--help" | "-h" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    Ok(Args {
        tap: tap.ok_or_else(|| format!("--tap is required\n{USAGE}"))?,
        address: address.ok_or_else(|| format!("--address is required\n{USAGE}"))?,
        gateway,
        port,
    })
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let device = match TunTapDevice::new(&args.tap) {
        Ok(device) => device,
        Err(e) => {
            eprintln!("cannot open TAP device {}: {e}", args.tap);
            return ExitCode::from(1);
        }
    };

    static EXECUTOR: StaticCell<Executor> = StaticCell::new();
    EXECUTOR
        .init(Executor::new())
        .run(move |spawner| boot(&spawner, device, args));
}

fn boot(spawner: &Spawner, device: TunTapDevice, args: Args) {
    static RESOURCES: StaticCell<StackResources<{ SOCKETS_NEEDED }>> = StaticCell::new();
    static GATEWAY_STATE: StaticCell<Gateway> = StaticCell::new();

    let mut seed = [0u8; 8];
    if let Err(e) = getrandom::fill(&mut seed) {
        log::error!("no randomness from the OS: {e}");
        std::process::exit(1);
    }
    let config = embassy_net::Config::ipv4_static(StaticConfigV4 {
        address: args.address,
        gateway: args.gateway,
        dns_servers: heapless::Vec::new(),
    });
    let (stack, runner) = embassy_net::new(
        device,
        config,
        RESOURCES.init(StackResources::new()),
        u64::from_le_bytes(seed),
    );
    spawner.spawn(or_exit(net_task(runner)));

    let gateway = GATEWAY_STATE.init(Gateway::new(Settings {
        listen_port: args.port,
        timeouts: Timeouts::default(),
    }));
    if let Err(e) = gatehouse_firmware::spawn(spawner, stack, gateway) {
        log::error!("connection tasks could not be spawned: {e:?}");
        std::process::exit(1);
    }
    spawner.spawn(or_exit(report_ready(stack, args.address, args.port)));
}

fn or_exit<T>(token: Result<T, embassy_executor::SpawnError>) -> T {
    token.unwrap_or_else(|e| {
        log::error!("task spawn failed: {e:?}");
        std::process::exit(1)
    })
}

#[embassy_executor::task]
async fn net_task(mut runner: embassy_net::Runner<'static, TunTapDevice>) -> ! {
    runner.run().await
}

#[embassy_executor::task]
async fn report_ready(stack: Stack<'static>, address: Ipv4Cidr, port: u16) {
    stack.wait_config_up().await;
    log::info!("listening on {}:{}", address.address(), port);
}
