//! gatehouse on the ST Nucleo-H743ZI: STM32H743 at 400 MHz, on-chip Ethernet MAC with the
//! board's LAN8742A PHY over RMII, hardware RNG, internal flash.
//!
//! Board bring-up only: clocks, the RNG seed, the configuration region and the write-back
//! store in the internal flash's second bank, the Ethernet driver, the network stack; the
//! gateway itself is `gatehouse-firmware`. Logs go out over RTT (defmt); `cargo run --release`
//! flashes and runs through a debug probe with probe-rs.
//!
//! Flash layout (bank 2, 128 KiB sectors; the image lives in bank 1):
//! - `0x0810_0000` sector 8: the configuration region, written at provisioning
//!   (`probe-rs download --binary-format bin --base-address 0x08100000 region.bin`);
//! - `0x0812_0000`..`0x0816_0000` sectors 9-10: the write-back store.
#![no_std]
#![no_main]

use defmt::{error, info};
use defmt_rtt as _;
use embassy_embedded_hal::adapter::BlockingAsync;
use embassy_executor::Spawner;
use embassy_net::{Ipv4Address, Ipv4Cidr, StackResources, StaticConfigV4};
use embassy_stm32::bind_interrupts;
use embassy_stm32::eth::{self, Ethernet, GenericPhy, PacketQueue, Sma};
use embassy_stm32::flash::{Blocking, FLASH_BASE, Flash};
use embassy_stm32::peripherals::{ETH, ETH_SMA, RNG};
use embassy_stm32::rng::{self, Rng};
use gatehouse_firmware::config::{self, MAX_REGION_LEN, Provisioned};
use gatehouse_firmware::store::{STORE_BUFFER_LEN, Store};
use gatehouse_firmware::{Engine, SOCKETS_NEEDED};
use static_cell::StaticCell;

bind_interrupts!(struct Irqs {
    ETH => eth::InterruptHandler;
    RNG => rng::InterruptHandler<RNG>;
});

type Device = Ethernet<'static, ETH, GenericPhy<Sma<'static, ETH_SMA>>>;
type StoreFlash = BlockingAsync<Flash<'static, Blocking>>;

const CONFIG_REGION: usize = 0x0810_0000;
const STORE_START: u32 = 0x0812_0000;
const STORE_END: u32 = 0x0816_0000;

/// Used when the configuration names no address.
const DEFAULT_ADDRESS: Ipv4Cidr = Ipv4Cidr::new(Ipv4Address::new(192, 168, 1, 80), 24);

#[embassy_executor::main]
async fn main(spawner: Spawner) {
    static PACKETS: StaticCell<PacketQueue<2, 4>> = StaticCell::new();
    static RESOURCES: StaticCell<StackResources<{ SOCKETS_NEEDED }>> = StaticCell::new();
    static PROVISIONED: StaticCell<Provisioned<'static>> = StaticCell::new();
    static STORE_BUFFER: StaticCell<[u8; STORE_BUFFER_LEN]> = StaticCell::new();

    let p = embassy_stm32::init(clocks());
    info!("gatehouse on Nucleo-H743ZI");

    let mut rng = Rng::new(p.RNG, Irqs);
    let mut seed = [0u8; 32];
    if let Err(e) = rng.async_fill_bytes(&mut seed).await {
        error!("hardware RNG failed: {}; not serving", e);
        return;
    }

    // SAFETY: the region is internal flash, memory-mapped and read-only here (the write-back
    // store uses other sectors); nothing else holds a reference to it.
    let region: &'static [u8] =
        unsafe { core::slice::from_raw_parts(CONFIG_REGION as *const u8, MAX_REGION_LEN) };
    let provisioned = match config::parse_region(region) {
        Ok(provisioned) => PROVISIONED.init(provisioned),
        Err(e) => {
            error!(
                "configuration region at {=usize:#x}: {}; not serving",
                CONFIG_REGION, e
            );
            return;
        }
    };

    let flash = BlockingAsync::new(Flash::new_blocking(p.FLASH));
    let base = FLASH_BASE as u32;
    let Some(mut store) = Store::new(
        flash,
        STORE_START - base..STORE_END - base,
        STORE_BUFFER.init([0; STORE_BUFFER_LEN]),
        provisioned.region_crc,
    ) else {
        error!("write-back store layout; not serving");
        return;
    };
    // Blocking flash: the boot future completes without waiting, and its state stays on this
    // stack instead of in the main task forever.
    let engine = match embassy_futures::block_on(gatehouse_firmware::boot::make_engine(
        provisioned,
        &mut store,
        seed,
        None,
    )) {
        Ok(engine) => engine,
        Err(e) => {
            error!("cannot start the gateway: {}; not serving", e);
            return;
        }
    };

    // A locally administered unicast MAC derived from the chip's unique ID.
    let uid = embassy_stm32::uid::uid();
    let mac = [0x02, uid[0], uid[1], uid[2], uid[3], uid[4]];
    let device: Device = Ethernet::new(
        PACKETS.init(PacketQueue::new()),
        p.ETH,
        Irqs,
        p.PA1,  // REF_CLK
        p.PA7,  // CRS_DV
        p.PC4,  // RXD0
        p.PC5,  // RXD1
        p.PG13, // TXD0
        p.PB13, // TXD1
        p.PG11, // TX_EN
        mac,
        p.ETH_SMA,
        p.PA2, // MDIO
        p.PC1, // MDC
    );

    let settings = &provisioned.settings;
    let address = settings.address.unwrap_or(DEFAULT_ADDRESS);
    let config = embassy_net::Config::ipv4_static(StaticConfigV4 {
        address,
        gateway: settings.gateway,
        dns_servers: heapless::Vec::new(),
    });
    let mut net_seed = [0u8; 8];
    net_seed.copy_from_slice(&seed[24..]);
    let (stack, runner) = embassy_net::new(
        device,
        config,
        RESOURCES.init(StackResources::new()),
        u64::from_le_bytes(net_seed),
    );
    let spawned = net_task(runner)
        .map(|token| spawner.spawn(token))
        .and_then(|()| store_task(store, engine).map(|token| spawner.spawn(token)))
        .and_then(|()| gatehouse_firmware::spawn(&spawner, stack, engine));
    if spawned.is_err() {
        error!("tasks could not be spawned; not serving");
        return;
    }
    info!(
        "serving on {}:{}, app at {}",
        address.address(),
        engine.listen_port,
        engine.upstream
    );
}

/// Logs the panic and traps: probe-rs (or a debugger) shows the backtrace. The handler does not
/// look at the panic's message or location on purpose: reading them keeps every panic site's
/// formatting code in the image (about 25 KiB of flash here).
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    error!("panic");
    cortex_m::asm::udf()
}

#[embassy_executor::task]
async fn net_task(mut runner: embassy_net::Runner<'static, Device>) -> ! {
    runner.run().await
}

#[embassy_executor::task]
async fn store_task(store: Store<StoreFlash>, engine: &'static Engine) -> ! {
    store.run(engine).await
}

/// 400 MHz from the internal oscillator through PLL1; HSI48 for the RNG.
fn clocks() -> embassy_stm32::Config {
    use embassy_stm32::rcc::*;
    let mut config = embassy_stm32::Config::default();
    config.rcc.hsi = Some(HSIPrescaler::DIV1);
    config.rcc.csi = true;
    config.rcc.hsi48 = Some(Default::default());
    config.rcc.pll1 = Some(Pll {
        source: PllSource::HSI,
        prediv: PllPreDiv::DIV4,
        mul: PllMul::MUL50,
        fracn: None,
        divp: Some(PllDiv::DIV2),
        divq: None,
        divr: None,
    });
    config.rcc.sys = Sysclk::PLL1_P;
    config.rcc.ahb_pre = AHBPrescaler::DIV2;
    config.rcc.apb1_pre = APBPrescaler::DIV2;
    config.rcc.apb2_pre = APBPrescaler::DIV2;
    config.rcc.apb3_pre = APBPrescaler::DIV2;
    config.rcc.apb4_pre = APBPrescaler::DIV2;
    config.rcc.voltage_scale = VoltageScale::Scale1;
    config
}
