//! gatehouse firmware on Linux: the same board-independent gateway as on a microcontroller, with
//! embassy's std executor and a TAP device as its Ethernet port.
//!
//! Board bring-up only: open the TAP device, read the configuration region from a file (what a
//! board's flash partition holds), open the write-back store (a file with flash rules), start
//! the network stack, hand it to `gatehouse-firmware`. The TAP device (and the network
//! namespace around it) is made by whoever runs this (see `e2e.sh`).
//!
//! ```text
//! gatehouse-host-tap --tap tap0 --config region.bin --state store.bin [--address A.B.C.D/LEN]
//!                    [--no-rtc]
//! ```
//!
//! The host's clock serves as the board's real-time clock, unless `--no-rtc`: then it behaves
//! like a board without one, and the time comes from the configuration's `ntp_server` only.

mod file_flash;

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use embassy_executor::{Executor, Spawner};
use embassy_net::{Ipv4Cidr, StackResources, StaticConfigV4};
use embassy_net_tuntap::TunTapDevice;
use file_flash::FileFlash;
use gatehouse_firmware::config::{self, Provisioned};
use gatehouse_firmware::store::{STORE_BUFFER_LEN, Store};
use gatehouse_firmware::{Engine, SOCKETS_NEEDED};
use static_cell::StaticCell;

struct Args {
    tap: String,
    config: PathBuf,
    state: PathBuf,
    address: Option<Ipv4Cidr>,
    no_rtc: bool,
}

const USAGE: &str = "usage: gatehouse-host-tap --tap NAME --config REGION_FILE --state STORE_FILE [--address A.B.C.D/LEN] [--no-rtc]";

fn parse_args() -> Result<Args, String> {
    let mut tap = None;
    let mut config = None;
    let mut state = None;
    let mut address = None;
    let mut no_rtc = false;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--tap" => tap = Some(value()?),
            "--config" => config = Some(PathBuf::from(value()?)),
            "--state" => state = Some(PathBuf::from(value()?)),
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
            "--no-rtc" => no_rtc = true,
            "--help" | "-h" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    Ok(Args {
        tap: tap.ok_or_else(|| format!("--tap is required\n{USAGE}"))?,
        config: config.ok_or_else(|| format!("--config is required\n{USAGE}"))?,
        state: state.ok_or_else(|| format!("--state is required\n{USAGE}"))?,
        address,
        no_rtc,
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
    match prepare(&args) {
        Ok(ready) => {
            static EXECUTOR: StaticCell<Executor> = StaticCell::new();
            EXECUTOR
                .init(Executor::new())
                .run(move |spawner| start(&spawner, ready))
        }
        Err(message) => {
            log::error!("{message}; not serving");
            ExitCode::from(1)
        }
    }
}

struct Ready {
    device: TunTapDevice,
    provisioned: &'static Provisioned<'static>,
    engine: &'static Engine,
    store: Store<FileFlash>,
    address: Ipv4Cidr,
    seed: [u8; 32],
}

fn prepare(args: &Args) -> Result<Ready, String> {
    static PROVISIONED: StaticCell<Provisioned<'static>> = StaticCell::new();
    static STORE_BUFFER: StaticCell<[u8; STORE_BUFFER_LEN]> = StaticCell::new();

    let region = std::fs::read(&args.config)
        .map_err(|e| format!("configuration region {}: {e}", args.config.display()))?;
    let region: &'static [u8] = Box::leak(region.into_boxed_slice());
    let provisioned = config::parse_region(region)
        .map_err(|e| format!("configuration region {}: {e:?}", args.config.display()))?;
    let provisioned = PROVISIONED.init(provisioned);

    let flash = FileFlash::open(&args.state)
        .map_err(|e| format!("write-back store {}: {e}", args.state.display()))?;
    let mut store = Store::new(
        flash,
        0..file_flash::LEN as u32,
        STORE_BUFFER.init([0; STORE_BUFFER_LEN]),
        provisioned.region_crc,
    )
    .ok_or("write-back store layout")?;

    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| format!("no randomness from the OS: {e}"))?;
    // The host's clock is this board's real-time clock, unless it is to behave as a board
    // without one.
    let rtc = if args.no_rtc {
        None
    } else {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|e| format!("system clock: {e}"))?;
        Some(now.as_secs())
    };
    let engine = embassy_futures::block_on(gatehouse_firmware::boot::make_engine(
        provisioned,
        &mut store,
        seed,
        rtc,
    ))
    .map_err(|e| format!("cannot start the gateway: {e:?}"))?;

    let device = TunTapDevice::new(&args.tap)
        .map_err(|e| format!("cannot open TAP device {}: {e}", args.tap))?;
    let address = args
        .address
        .or(provisioned.settings.address)
        .ok_or("no address: give --address or \"address\" in the configuration")?;
    Ok(Ready {
        device,
        provisioned,
        engine,
        store,
        address,
        seed,
    })
}

fn start(spawner: &Spawner, ready: Ready) {
    static RESOURCES: StaticCell<StackResources<{ SOCKETS_NEEDED }>> = StaticCell::new();
    let config = embassy_net::Config::ipv4_static(StaticConfigV4 {
        address: ready.address,
        gateway: ready.provisioned.settings.gateway,
        dns_servers: heapless::Vec::new(),
    });
    let mut net_seed = [0u8; 8];
    net_seed.copy_from_slice(&ready.seed[24..]);
    let (stack, runner) = embassy_net::new(
        ready.device,
        config,
        RESOURCES.init(StackResources::new()),
        u64::from_le_bytes(net_seed),
    );
    spawner.spawn(or_exit(net_task(runner)));
    spawner.spawn(or_exit(store_task(ready.store, ready.engine)));
    if let Err(e) = gatehouse_firmware::spawn(spawner, stack, ready.engine) {
        log::error!("connection tasks could not be spawned: {e:?}");
        std::process::exit(1);
    }
    log::info!(
        "serving on {}:{}, app at {}",
        ready.address.address(),
        ready.engine.listen_port,
        ready.engine.upstream
    );
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
async fn store_task(store: Store<FileFlash>, engine: &'static Engine) -> ! {
    store.run(engine).await
}
