//! A programmed-I/O driver for the SMSC LAN9118 Ethernet controller, as QEMU emulates it on the
//! MPS2 boards, implementing [`embassy_net_driver::Driver`].
//!
//! The chip moves frames through FIFOs behind a handful of 32-bit registers: a frame is sent by
//! writing two command words and then its bytes into the TX data FIFO (QEMU sends it when the
//! last word arrives), and a received frame is a status word (its length, FCS included) in the
//! RX status FIFO followed by its bytes in the RX data FIFO. The "RX status FIFO level"
//! interrupt tells that a frame arrived; the interrupt handler masks it and wakes the network
//! stack, which drains the FIFO and re-arms the interrupt once the FIFO is empty.
//!
//! The register accessors are the only `unsafe` here: volatile reads and writes of the memory-
//! mapped registers at the base address the board gives.

use core::sync::atomic::{AtomicU32, Ordering};
use core::task::Context;

use embassy_net_driver::{Capabilities, HardwareAddress, LinkState};
use embassy_sync::waitqueue::AtomicWaker;

// Register offsets (SMSC LAN9118 datasheet, "System Control and Status Registers").
const RX_DATA_FIFO: usize = 0x00;
const TX_DATA_FIFO: usize = 0x20;
const RX_STATUS_FIFO: usize = 0x40;
const ID_REV: usize = 0x50;
const IRQ_CFG: usize = 0x54;
const INT_STS: usize = 0x58;
const INT_EN: usize = 0x5c;
const BYTE_TEST: usize = 0x64;
const FIFO_INT: usize = 0x68;
const RX_CFG: usize = 0x6c;
const TX_CFG: usize = 0x70;
const HW_CFG: usize = 0x74;
const RX_FIFO_INF: usize = 0x7c;
const TX_FIFO_INF: usize = 0x80;
const PMT_CTRL: usize = 0x84;
const MAC_CSR_CMD: usize = 0xa4;
const MAC_CSR_DATA: usize = 0xa8;

const BYTE_TEST_VALUE: u32 = 0x8765_4321;
/// `ID_REV` upper half of a LAN9118.
const CHIP_ID_9118: u32 = 0x0118;

const HW_CFG_SRST: u32 = 1 << 0;
const PMT_CTRL_READY: u32 = 1 << 0;

/// Interrupt output enabled, active-high, push-pull. Until all three are set, QEMU's model
/// drives the line as asserted (active-low), so they must be set before the NVIC line is
/// unmasked.
const IRQ_CFG_ENABLE_HIGH_PUSH_PULL: u32 = (1 << 8) | (1 << 4) | (1 << 0);
/// RX status FIFO level interrupt.
const INT_RSFL: u32 = 1 << 3;

const TX_CFG_TX_ON: u32 = 1 << 1;
/// Let the TX status FIFO overrun instead of stopping the transmitter: nothing reads it.
const TX_CFG_TXSAO: u32 = 1 << 2;

const MAC_CSR_BUSY: u32 = 1 << 31;
const MAC_CSR_READ: u32 = 1 << 30;
const MAC_CR: u32 = 1;
const MAC_ADDRH: u32 = 2;
const MAC_ADDRL: u32 = 3;
const MAC_CR_TXEN: u32 = 1 << 3;
const MAC_CR_RXEN: u32 = 1 << 2;
const MAC_CR_FDPX: u32 = 1 << 20;

/// TX command A: first and last segment (a whole frame in one buffer).
const TX_CMD_A_FIRST_LAST: u32 = (1 << 13) | (1 << 12);
/// RX status: error summary.
const RX_STATUS_ERROR: u32 = 1 << 15;

/// Largest frame the stack hands over, without the FCS.
pub const MTU: usize = 1514;
/// Largest frame the RX path accepts, FCS included (and VLAN tag room).
const MAX_RX_FRAME: usize = 1522;
const FCS_LEN: usize = 4;
/// Bytes of TX data FIFO one frame needs: two command words plus the padded data.
const TX_SPACE_PER_FRAME: u32 = (8 + MTU + 3) as u32;

/// Polling bounds for the reset handshake; QEMU completes both at once.
const RESET_POLLS: u32 = 100_000;

/// Why the controller could not be brought up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, defmt::Format)]
pub enum InitError {
    /// `BYTE_TEST` did not read back the fixed pattern: no LAN9118 at that address, or the bus
    /// is mis-configured.
    NoDevice,
    /// `ID_REV` names another chip.
    UnexpectedChip(u32),
    /// The soft reset or the power-management ready bit did not complete.
    ResetTimeout,
    /// A MAC CSR access stayed busy.
    MacBusy,
}

/// Woken by the interrupt handler when a frame has arrived.
static RX_WAKER: AtomicWaker = AtomicWaker::new();
/// Base address of the controller, for the interrupt handler.
static IRQ_BASE: AtomicU32 = AtomicU32::new(0);

/// The memory-mapped register block.
#[derive(Clone, Copy)]
struct Regs {
    base: usize,
}

impl Regs {
    fn read(self, offset: usize) -> u32 {
        // SAFETY: `base` is the address of the LAN9118 register block (checked at `new` through
        // BYTE_TEST), every offset used is a register of that block and 4-byte aligned, and a
        // volatile 32-bit access is how the chip is meant to be accessed.
        unsafe { core::ptr::read_volatile((self.base + offset) as *const u32) }
    }

    fn write(self, offset: usize, value: u32) {
        // SAFETY: as in `read`.
        unsafe { core::ptr::write_volatile((self.base + offset) as *mut u32, value) }
    }

    fn mac_wait(self) -> Result<(), InitError> {
        for _ in 0..RESET_POLLS {
            if self.read(MAC_CSR_CMD) & MAC_CSR_BUSY == 0 {
                return Ok(());
            }
        }
        Err(InitError::MacBusy)
    }

    fn mac_read(self, reg: u32) -> Result<u32, InitError> {
        self.mac_wait()?;
        self.write(MAC_CSR_CMD, MAC_CSR_BUSY | MAC_CSR_READ | reg);
        self.mac_wait()?;
        Ok(self.read(MAC_CSR_DATA))
    }

    fn mac_write(self, reg: u32, value: u32) -> Result<(), InitError> {
        self.mac_wait()?;
        self.write(MAC_CSR_DATA, value);
        self.write(MAC_CSR_CMD, MAC_CSR_BUSY | reg);
        self.mac_wait()
    }

    /// Frames waiting in the RX status FIFO.
    fn rx_frames_waiting(self) -> u32 {
        (self.read(RX_FIFO_INF) >> 16) & 0xff
    }

    fn tx_space(self) -> u32 {
        self.read(TX_FIFO_INF) & 0xffff
    }
}

/// The LAN9118 as an embassy-net device.
pub struct Lan9118 {
    regs: Regs,
    mac: [u8; 6],
    rx_buf: [u8; MAX_RX_FRAME + 3],
    rx_len: usize,
    /// A frame sits in `rx_buf` that the stack has not taken yet.
    rx_pending: bool,
    tx_buf: [u8; MTU],
}

impl Lan9118 {
    /// Resets and configures the controller at `base`: MAC address kept from its EEPROM (QEMU
    /// sets it from `-nic ...,mac=`), promiscuous mode off, RX and TX on, RX interrupt armed.
    ///
    /// The caller unmasks the NVIC line afterwards and calls [`on_interrupt`] from its handler.
    pub fn new(base: usize) -> Result<Self, InitError> {
        let regs = Regs { base };
        if regs.read(BYTE_TEST) != BYTE_TEST_VALUE {
            return Err(InitError::NoDevice);
        }
        let id = regs.read(ID_REV);
        if id >> 16 != CHIP_ID_9118 {
            return Err(InitError::UnexpectedChip(id));
        }

        regs.write(HW_CFG, HW_CFG_SRST);
        let mut reset_done = false;
        for _ in 0..RESET_POLLS {
            if regs.read(HW_CFG) & HW_CFG_SRST == 0 && regs.read(PMT_CTRL) & PMT_CTRL_READY != 0 {
                reset_done = true;
                break;
            }
        }
        if !reset_done {
            return Err(InitError::ResetTimeout);
        }

        let low = regs.mac_read(MAC_ADDRL)?.to_le_bytes();
        let high = regs.mac_read(MAC_ADDRH)?.to_le_bytes();
        let mac = [low[0], low[1], low[2], low[3], high[0], high[1]];

        // Interrupt line first (see IRQ_CFG_ENABLE_HIGH_PUSH_PULL), then sources.
        regs.write(IRQ_CFG, IRQ_CFG_ENABLE_HIGH_PUSH_PULL);
        regs.write(INT_EN, 0);
        regs.write(INT_STS, u32::MAX);
        // Interrupt as soon as one status word is in the RX status FIFO.
        regs.write(FIFO_INT, 0);
        regs.write(RX_CFG, 0);
        regs.write(TX_CFG, TX_CFG_TX_ON | TX_CFG_TXSAO);
        // Exact MAC filtering (reset leaves the MAC promiscuous), broadcast accepted.
        regs.mac_write(MAC_CR, MAC_CR_TXEN | MAC_CR_RXEN | MAC_CR_FDPX)?;

        IRQ_BASE.store(base as u32, Ordering::Release);
        regs.write(INT_EN, INT_RSFL);

        Ok(Self {
            regs,
            mac,
            rx_buf: [0; MAX_RX_FRAME + 3],
            rx_len: 0,
            rx_pending: false,
            tx_buf: [0; MTU],
        })
    }

    /// The controller's MAC address.
    pub fn mac_address(&self) -> [u8; 6] {
        self.mac
    }

    /// Reads the next good frame from the RX FIFOs into `rx_buf`. Frames with errors or
    /// impossible lengths are read out and dropped.
    fn pop_frame(&mut self) -> bool {
        while self.regs.rx_frames_waiting() > 0 {
            let status = self.regs.read(RX_STATUS_FIFO);
            let len_with_fcs = ((status >> 16) & 0x3fff) as usize;
            let words = len_with_fcs.div_ceil(4);
            let good = status & RX_STATUS_ERROR == 0
                && len_with_fcs > FCS_LEN + 14
                && len_with_fcs <= MAX_RX_FRAME;
            for i in 0..words {
                let word = self.regs.read(RX_DATA_FIFO).to_le_bytes();
                if good {
                    self.rx_buf[i * 4..i * 4 + 4].copy_from_slice(&word);
                }
            }
            if good {
                self.rx_len = len_with_fcs - FCS_LEN;
                return true;
            }
        }
        false
    }

    /// Arms the RX interrupt for the next frame. The status bit is cleared first, then the FIFO
    /// is checked once more: a frame that arrived between the last drain and the re-arm would
    /// otherwise wait for the next one.
    fn arm_rx(&mut self, cx: &mut Context) -> bool {
        RX_WAKER.register(cx.waker());
        self.regs.write(INT_STS, INT_RSFL);
        self.regs.write(INT_EN, INT_RSFL);
        self.regs.rx_frames_waiting() > 0
    }
}

/// Called from the board's handler of the LAN9118 interrupt line: masks the RX interrupt (the
/// model keeps the line asserted until the status is cleared) and wakes the network stack.
pub fn on_interrupt() {
    let base = IRQ_BASE.load(Ordering::Acquire) as usize;
    if base == 0 {
        return;
    }
    let regs = Regs { base };
    regs.write(INT_EN, 0);
    regs.write(INT_STS, INT_RSFL);
    RX_WAKER.wake();
}

impl embassy_net_driver::Driver for Lan9118 {
    type RxToken<'a> = RxToken<'a>;
    type TxToken<'a> = TxToken<'a>;

    fn receive(&mut self, cx: &mut Context) -> Option<(RxToken<'_>, TxToken<'_>)> {
        if !self.rx_pending {
            self.rx_pending = self.pop_frame() || (self.arm_rx(cx) && self.pop_frame());
        }
        if !self.rx_pending {
            return None;
        }
        if self.regs.tx_space() < TX_SPACE_PER_FRAME {
            // QEMU empties the TX FIFO as each frame completes; a real chip would raise TDFA.
            cx.waker().wake_by_ref();
            return None;
        }
        self.rx_pending = false;
        let len = self.rx_len;
        Some((
            RxToken {
                frame: &mut self.rx_buf[..len],
            },
            TxToken {
                regs: self.regs,
                buf: &mut self.tx_buf,
            },
        ))
    }

    fn transmit(&mut self, cx: &mut Context) -> Option<TxToken<'_>> {
        if self.regs.tx_space() < TX_SPACE_PER_FRAME {
            cx.waker().wake_by_ref();
            return None;
        }
        Some(TxToken {
            regs: self.regs,
            buf: &mut self.tx_buf,
        })
    }

    fn link_state(&mut self, _cx: &mut Context) -> LinkState {
        // The emulated PHY reports link up from reset; QEMU has no cable to pull.
        LinkState::Up
    }

    fn capabilities(&self) -> Capabilities {
        let mut caps = Capabilities::default();
        caps.max_transmission_unit = MTU;
        caps.max_burst_size = Some(1);
        caps
    }

    fn hardware_address(&self) -> HardwareAddress {
        HardwareAddress::Ethernet(self.mac)
    }
}

/// A received frame, already copied out of the RX FIFO.
pub struct RxToken<'a> {
    frame: &'a mut [u8],
}

impl embassy_net_driver::RxToken for RxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, f: F) -> R {
        f(self.frame)
    }
}

/// Room for one frame in the TX FIFO.
pub struct TxToken<'a> {
    regs: Regs,
    buf: &'a mut [u8; MTU],
}

impl embassy_net_driver::TxToken for TxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let len = len.min(MTU);
        let frame = &mut self.buf[..len];
        let result = f(frame);
        self.regs
            .write(TX_DATA_FIFO, TX_CMD_A_FIRST_LAST | len as u32);
        self.regs.write(TX_DATA_FIFO, len as u32);
        for chunk in frame.chunks(4) {
            let mut word = [0u8; 4];
            word[..chunk.len()].copy_from_slice(chunk);
            self.regs.write(TX_DATA_FIFO, u32::from_le_bytes(word));
        }
        result
    }
}
