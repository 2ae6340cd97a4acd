//! gatehouse on QEMU's `mps2-an386` machine: a Cortex-M4F with a LAN9118 Ethernet controller.
//!
//! Board bring-up only: the SysTick time driver, the LAN9118 driver, the network stack, a WFI
//! executor, defmt over semihosting, and a panic that makes QEMU exit with status 1. The gateway
//! itself is `gatehouse-firmware`.
//!
//! This machine has no random number generator. The seed used here is derived from a free-running
//! counter and is predictable: this image is for testing only, never for guarding anything real.
//!
//! Its real-time clock is the host's, read through semihosting (`SYS_TIME`) at boot; the
//! write-back store is code RAM, which QEMU keeps across a system reset (not across runs), so a
//! reset is a reboot with the store intact.
#![no_std]
#![no_main]

mod executor;
mod lan9118;
mod time_driver;

use defmt_semihosting as _;
use embassy_executor::Spawner;
use embassy_net::{Ipv4Address, Ipv4Cidr, StackResources, StaticConfigV4};
use gatehouse_firmware::config::{self, MAX_REGION_LEN, Provisioned};
use gatehouse_firmware::ram_flash::RamFlash;
use gatehouse_firmware::store::{STORE_BUFFER_LEN, Store};
use gatehouse_firmware::{Engine, SOCKETS_NEEDED};
use static_cell::StaticCell;

/// Where the AN386 image maps the LAN9118.
const LAN9118_BASE: usize = 0x4020_0000;
/// Its interrupt line.
const LAN9118_IRQ: u16 = 13;

/// The configuration region, loaded by QEMU (`-device loader`) where a real board's flash
/// partition would hold it; `memory.x` keeps the image below it.
const CONFIG_REGION: usize = 0x0038_0000;
/// The write-back store: four 8 KiB "pages" of code RAM with NOR-flash rules. QEMU has no
/// flash that outlives the run, so what is written back lasts until QEMU exits.
const STORE_BASE: usize = 0x0039_0000;
const STORE_LEN: usize = 4 * gatehouse_firmware::ram_flash::RAM_FLASH_PAGE;
/// Just after the store: set once the store was erased in this QEMU run. QEMU starts with code
/// RAM zeroed and keeps it across a reset, so a reset keeps the store as flash would.
const STORE_ERASED_MARK: usize = STORE_BASE + STORE_LEN;
const STORE_ERASED: u32 = u32::from_le_bytes(*b"GHSE");

/// The guest's address on QEMU's user-mode network (see `qemu-args.sh`), unless the
/// configuration names another.
const DEFAULT_ADDRESS: Ipv4Cidr = Ipv4Cidr::new(Ipv4Address::new(192, 0, 2, 15), 24);
const DEFAULT_GATEWAY: Ipv4Address = Ipv4Address::new(192, 0, 2, 2);

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
    EXECUTOR.init(executor::Executor::new()).run(|spawner| {
        // Boot runs to completion before the executor starts: its flash accesses never wait
        // (the store is RAM), and its state then lives on this stack, not in a task forever.
        embassy_futures::block_on(boot(spawner));
    });
}

async fn boot(spawner: Spawner) {
    static RESOURCES: StaticCell<StackResources<{ SOCKETS_NEEDED }>> = StaticCell::new();
    static PROVISIONED: StaticCell<Provisioned<'static>> = StaticCell::new();
    static STORE_BUFFER: StaticCell<[u8; STORE_BUFFER_LEN]> = StaticCell::new();

    defmt::info!("gatehouse on qemu mps2-an386 (Cortex-M4F, LAN9118)");
    defmt::warn!(
        "this board has no hardware RNG: its random seed is predictable, for testing only"
    );

    // SAFETY: CONFIG_REGION..+MAX_REGION_LEN is code RAM that memory.x keeps out of the image
    // and nothing writes to; it is only ever read, through this one shared slice.
    let region: &'static [u8] =
        unsafe { core::slice::from_raw_parts(CONFIG_REGION as *const u8, MAX_REGION_LEN) };
    let provisioned = match config::parse_region(region) {
        Ok(provisioned) => PROVISIONED.init(provisioned),
        Err(e) => {
            defmt::error!(
                "configuration region at {=usize:#x}: {}; not serving",
                CONFIG_REGION,
                e
            );
            return;
        }
    };

    // SAFETY: STORE_BASE..+STORE_LEN is code RAM that memory.x keeps out of the image; this is
    // the only reference to it, handed to the store for the rest of the run.
    let store_memory: &'static mut [u8] =
        unsafe { core::slice::from_raw_parts_mut(STORE_BASE as *mut u8, STORE_LEN) };
    // SAFETY: STORE_ERASED_MARK is code RAM that memory.x keeps out of the image; only this
    // boot code touches it.
    let erased = unsafe { core::ptr::read_volatile(STORE_ERASED_MARK as *const u32) };
    if erased != STORE_ERASED {
        // The first boot of this QEMU run: erased, as a new flash part would be.
        store_memory.fill(0xff);
        // SAFETY: as above.
        unsafe { core::ptr::write_volatile(STORE_ERASED_MARK as *mut u32, STORE_ERASED) };
    } else {
        defmt::info!("reset: the write-back store is kept");
    }
    let Some(mut store) = Store::new(
        RamFlash::new(store_memory),
        0..STORE_LEN as u32,
        STORE_BUFFER.init([0; STORE_BUFFER_LEN]),
        provisioned.region_crc,
    ) else {
        fail("write-back store layout");
    };

    let engine = match gatehouse_firmware::boot::make_engine(
        provisioned,
        &mut store,
        test_only_seed(),
        Some(host_time()),
    )
    .await
    {
        Ok(engine) => engine,
        Err(e) => {
            defmt::error!("cannot start the gateway: {}; not serving", e);
            return;
        }
    };

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

    let settings = &provisioned.settings;
    let address = settings.address.unwrap_or(DEFAULT_ADDRESS);
    let config = embassy_net::Config::ipv4_static(StaticConfigV4 {
        address,
        gateway: Some(settings.gateway.unwrap_or(DEFAULT_GATEWAY)),
        dns_servers: heapless::Vec::new(),
    });
    let mut net_seed = [0u8; 8];
    net_seed.copy_from_slice(&test_only_seed()[..8]);
    let (stack, runner) = embassy_net::new(
        device,
        config,
        RESOURCES.init(StackResources::new()),
        u64::from_le_bytes(net_seed),
    );
    spawner.spawn(unwrap_spawn(net_task(runner)));
    spawner.spawn(unwrap_spawn(store_task(store, engine)));
    if gatehouse_firmware::spawn(&spawner, stack, engine).is_err() {
        fail("connection tasks could not be spawned");
    }
    defmt::info!(
        "serving on {}:{}, app at {}",
        address.address(),
        engine.listen_port,
        engine.upstream
    );
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
async fn store_task(store: Store<RamFlash<'static>>, engine: &'static Engine) -> ! {
    store.run(engine).await
}

/// The host's time (UNIX seconds), through semihosting: this machine's real-time clock.
fn host_time() -> u64 {
    // SAFETY: SYS_TIME takes no argument and only returns a value; QEMU runs with semihosting
    // enabled (qemu-args.sh).
    let seconds = unsafe { cortex_m_semihosting::syscall!(TIME) };
    seconds as u64
}

/// 32 bytes mixed from the LAN9118's free-running counter (25 MHz since QEMU started).
/// Predictable by design of this machine, which has no entropy source: for tests only.
fn test_only_seed() -> [u8; 32] {
    const FREE_RUN: usize = LAN9118_BASE + 0x9c;
    // SAFETY: FREE_RUN is a read-only counter register of the LAN9118.
    let counter = unsafe { core::ptr::read_volatile(FREE_RUN as *const u32) };
    let mut state = 0x6761_7465_686f_7573 ^ u64::from(counter);
    let mut seed = [0u8; 32];
    for chunk in seed.chunks_mut(8) {
        state = splitmix64(state);
        chunk.copy_from_slice(&state.to_le_bytes());
    }
    seed
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

/// Logs the panic and exits QEMU with status 1. The handler does not look at the panic's
/// message or location on purpose: reading them keeps every panic site's formatting code in the
/// image (about 20 KiB of flash); run the image under `qemu-system-arm -s -S` and gdb for a
/// backtrace.
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    defmt::error!("panic");
    exit_failure()
}

/// Ends the QEMU run with exit status 1 (semihosting `SYS_EXIT` with a failure reason).
fn exit_failure() -> ! {
    loop {
        cortex_m_semihosting::debug::exit(cortex_m_semihosting::debug::EXIT_FAILURE);
    }
}
