//! gatehouse on the ST Nucleo-H743ZI: STM32H743 at 400 MHz, on-chip Ethernet MAC with the
//! board's LAN8742A PHY over RMII, hardware RNG, internal flash.
//!
//! Board bring-up only: clocks, the Ethernet driver, the RNG seed, the network stack; the gateway
//! itself is `gatehouse-firmware`. Logs go out over RTT (defmt); `cargo run --release` flashes
//! and runs through a debug probe with probe-rs.
#![no_std]
#![no_main]

use defmt::{error, info};
use defmt_rtt as _;
use embassy_executor::Spawner;
use embassy_net::{Ipv4Address, Ipv4Cidr, Stack, StackResources, StaticConfigV4};
use embassy_stm32::bind_interrupts;
use embassy_stm32::eth::{self, Ethernet, GenericPhy, PacketQueue, Sma};
use embassy_stm32::peripherals::{ETH, ETH_SMA, RNG};
use embassy_stm32::rng::{self, Rng};
use gatehouse_firmware::{Gateway, SOCKETS_NEEDED, Settings, Timeouts};
use panic_probe as _;
use static_cell::StaticCell;

bind_interrupts!(struct Irqs {
    ETH => eth::InterruptHandler;
    RNG => rng::InterruptHandler<RNG>;
});

type Device = Ethernet<'static, ETH, GenericPhy<Sma<'static, ETH_SMA>>>;

/// Static address until the configuration region names one.
const ADDRESS: Ipv4Address = Ipv4Address::new(192, 168, 1, 80);
const PREFIX_LEN: u8 = 24;
const GATEWAY: Ipv4Address = Ipv4Address::new(192, 168, 1, 1);
const LISTEN_PORT: u16 = 80;

#[embassy_executor::main]
async fn main(spawner: Spawner) {
    static PACKETS: StaticCell<PacketQueue<4, 4>> = StaticCell::new();
    static RESOURCES: StaticCell<StackResources<{ SOCKETS_NEEDED }>> = StaticCell::new();
    static GATEWAY_STATE: StaticCell<Gateway> = StaticCell::new();

    let p = embassy_stm32::init(clocks());
    info!("gatehouse on Nucleo-H743ZI");

    let mut rng = Rng::new(p.RNG, Irqs);
    let mut seed = [0u8; 8];
    if let Err(e) = rng.async_fill_bytes(&mut seed).await {
        error!("hardware RNG failed: {}", e);
        return;
    }

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

    let config = embassy_net::Config::ipv4_static(StaticConfigV4 {
        address: Ipv4Cidr::new(ADDRESS, PREFIX_LEN),
        gateway: Some(GATEWAY),
        dns_servers: heapless::Vec::new(),
    });
    let (stack, runner) = embassy_net::new(
        device,
        config,
        RESOURCES.init(StackResources::new()),
        u64::from_le_bytes(seed),
    );
    match net_task(runner) {
        Ok(token) => spawner.spawn(token),
        Err(_) => {
            error!("network task could not be spawned");
            return;
        }
    }

    let gateway = GATEWAY_STATE.init(Gateway::new(Settings {
        listen_port: LISTEN_PORT,
        timeouts: Timeouts::default(),
    }));
    if gatehouse_firmware::spawn(&spawner, stack, gateway).is_err() {
        error!("connection tasks could not be spawned");
        return;
    }
    report_ready(stack).await;
}

async fn report_ready(stack: Stack<'static>) {
    stack.wait_config_up().await;
    info!("listening on {}:{}", ADDRESS, LISTEN_PORT);
}

#[embassy_executor::task]
async fn net_task(mut runner: embassy_net::Runner<'static, Device>) -> ! {
    runner.run().await
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
