//! gatehouse on QEMU's `mps2-an386` machine: a Cortex-M4F with a LAN9118 Ethernet controller.
//!
//! Board bring-up only: the SysTick time driver, the LAN9118 driver, the network stack, a WFI
//! executor, defmt over semihosting, and a panic that makes QEMU exit with status 1. The gateway
//! itself is `gatehouse-firmware`.
//!
//! This machine has no random number generator. The seed used here is derived from a free-running
//! counter and is predictable: this image is for testing only, never for guarding anything real.
#![no_std]
#![no_main]

mod executor;
mod lan9118;
mod time_driver;

use defmt_semihosting as _;
use embassy_executor::Spawner;
use embassy_net::{Ipv4Address, Ipv4Cidr, Stack, StackResources, StaticConfigV4};
use gatehouse_firmware::{Gateway, SOCKETS_NEEDED, Settings, Timeouts};
use static_cell::StaticCell;

/// Where the AN386 image maps the LAN9118.
const LAN9118_BASE: usize = 0x4020_0000;
/// Its interrupt line.
const LAN9118_IRQ: u16 = 13;

/// The guest's address on QEMU's user-mode network (see `run-qemu.sh`).
const ADDRESS: Ipv4Address = Ipv4Address::new(192, 0, 2, 15);
const PREFIX_LEN: u8 = 24;
const GATEWAY: Ipv4Address = Ipv4Address::new(192, 0, 2, 2);
const LISTEN_PORT: u16 = 80;

defmt::timestamp!("{=u64:ms}", embassy_time::Instant::now().as_millis());

#[derive(Clone, Copy)]
struct Irq(u16);

// SAFETY: `Irq` only ever holds the number of an external interrupt line of this machine.
unsafe impl cortex_m::interrupt::InterruptNumber for Irq {
    fn number(self) -> u16 {
        self.0
    }
}

#[cortex_m_rt::entry]
fn main() -> ! {
    static EXECUTOR: StaticCell<executor::Executor> = StaticCell::new();
    let Some(core) = cortex_m::Peripherals::take() else {
        fail("core peripherals already taken");
    };
    time_driver::init(core.SYST);
    EXECUTOR
        .init(executor::Executor::new())
        .run(|spawner| boot(&spawner));
}

fn boot(spawner: &Spawner) {
    static RESOURCES: StaticCell<StackResources<{ SOCKETS_NEEDED }>> = StaticCell::new();
    static GATEWAY_STATE: StaticCell<Gateway> = StaticCell::new();

    defmt::info!("gatehouse on qemu mps2-an386 (Cortex-M4F, LAN9118)");
    defmt::warn!(
        "this board has no hardware RNG: its random seed is predictable, for testing only"
    );

    let device = match lan9118::Lan9118::new(LAN9118_BASE) {
        Ok(device) => device,
        Err(e) => {
            defmt::error!("LAN9118 bring-up failed: {}", e);
            fail("no network device");
        }
    };
    let mac = device.mac_address();
    defmt::info!("LAN9118 up, MAC {=[u8]:02x}", mac);
    // SAFETY: the LAN9118 was configured with its interrupt output active-high before this
    // unmask (see lan9118::IRQ_CFG_ENABLE_HIGH_PUSH_PULL); its handler is `DefaultHandler`.
    unsafe { cortex_m::peripheral::NVIC::unmask(Irq(LAN9118_IRQ)) };

    let config = embassy_net::Config::ipv4_static(StaticConfigV4 {
        address: Ipv4Cidr::new(ADDRESS, PREFIX_LEN),
        gateway: Some(GATEWAY),
        dns_servers: heapless::Vec::new(),
    });
    let (stack, runner) = embassy_net::new(
        device,
        config,
        RESOURCES.init(StackResources::new()),
        test_only_seed(),
    );
    spawner.spawn(unwrap_spawn(net_task(runner)));

    let gateway = GATEWAY_STATE.init(Gateway::new(Settings {
        listen_port: LISTEN_PORT,
        timeouts: Timeouts::default(),
    }));
    if gatehouse_firmware::spawn(spawner, stack, gateway).is_err() {
        fail("connection tasks could not be spawned");
    }
    spawner.spawn(unwrap_spawn(report_ready(stack)));
}

fn unwrap_spawn<T>(token: Result<T, embassy_executor::SpawnError>) -> T {
    match token {
        Ok(token) => token,
        Err(_) => fail("task spawn failed"),
    }
}

#[embassy_executor::task]
async fn net_task(mut runner: embassy_net::Runner<'static, lan9118::Lan9118>) -> ! {
    runner.run().await
}

#[embassy_executor::task]
async fn report_ready(stack: Stack<'static>) {
    stack.wait_config_up().await;
    defmt::info!("listening on {}:{}", ADDRESS, LISTEN_PORT);
}

/// A seed mixed from the LAN9118's free-running counter (25 MHz since QEMU started). Predictable
/// by design of this machine, which has no entropy source: for tests only.
fn test_only_seed() -> u64 {
    const FREE_RUN: usize = LAN9118_BASE + 0x9c;
    // SAFETY: FREE_RUN is a read-only counter register of the LAN9118 brought up above.
    let counter = unsafe { core::ptr::read_volatile(FREE_RUN as *const u32) };
    splitmix64(0x6761_7465_686f_7573 ^ u64::from(counter))
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cortex_m_rt::exception]
unsafe fn DefaultHandler(irqn: i16) {
    if irqn == LAN9118_IRQ as i16 {
        lan9118::on_interrupt();
    } else {
        defmt::error!("unexpected interrupt {}", irqn);
        exit_failure();
    }
}

#[cortex_m_rt::exception]
unsafe fn HardFault(frame: &cortex_m_rt::ExceptionFrame) -> ! {
    defmt::error!("hard fault at pc={=u32:#010x}", frame.pc());
    exit_failure()
}

fn fail(why: &'static str) -> ! {
    defmt::error!("{=str}", why);
    exit_failure()
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    defmt::error!("panic: {}", defmt::Display2Format(info));
    exit_failure()
}

/// Ends the QEMU run with exit status 1 (semihosting `SYS_EXIT` with a failure reason).
fn exit_failure() -> ! {
    loop {
        cortex_m_semihosting::debug::exit(cortex_m_semihosting::debug::EXIT_FAILURE);
    }
}
