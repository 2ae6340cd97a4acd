//! NOR-flash semantics over a slice of RAM: erase sets bytes to `0xFF`, a write can only clear
//! bits. The QEMU board keeps its write-back store in RAM this way (QEMU has no flash to
//! persist into), and host tests use it to cut writes short.

use embedded_storage_async::nor_flash::{
    ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};

/// Erase page size.
pub const RAM_FLASH_PAGE: usize = 8192;

/// A RAM slice behaving as NOR flash with 8 KiB pages and 4-byte words.
pub struct RamFlash<'a> {
    memory: &'a mut [u8],
    /// For tests: bytes that may still be written before every write fails (a power cut).
    pub writes_left: Option<usize>,
}

impl<'a> RamFlash<'a> {
    pub fn new(memory: &'a mut [u8]) -> Self {
        Self {
            memory,
            writes_left: None,
        }
    }
}

/// A flash access outside the memory, misaligned, or after the simulated power cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RamFlashError(NorFlashErrorKind);

impl NorFlashError for RamFlashError {
    fn kind(&self) -> NorFlashErrorKind {
        self.0
    }
}

impl ErrorType for RamFlash<'_> {
    type Error = RamFlashError;
}

impl RamFlash<'_> {
    fn range(
        &self,
        offset: u32,
        len: usize,
        align: usize,
    ) -> Result<core::ops::Range<usize>, RamFlashError> {
        let start = offset as usize;
        let end = start
            .checked_add(len)
            .filter(|&end| end <= self.memory.len())
            .ok_or(RamFlashError(NorFlashErrorKind::OutOfBounds))?;
        if !start.is_multiple_of(align) || !len.is_multiple_of(align) {
            return Err(RamFlashError(NorFlashErrorKind::NotAligned));
        }
        Ok(start..end)
    }
}

impl ReadNorFlash for RamFlash<'_> {
    const READ_SIZE: usize = 1;

    async fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        let range = self.range(offset, bytes.len(), 1)?;
        bytes.copy_from_slice(&self.memory[range]);
        Ok(())
    }

    fn capacity(&self) -> usize {
        self.memory.len()
    }
}

impl NorFlash for RamFlash<'_> {
    const WRITE_SIZE: usize = 4;
    const ERASE_SIZE: usize = RAM_FLASH_PAGE;

    async fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        let len = (to as usize)
            .checked_sub(from as usize)
            .ok_or(RamFlashError(NorFlashErrorKind::OutOfBounds))?;
        let range = self.range(from, len, RAM_FLASH_PAGE)?;
        self.memory[range].fill(0xff);
        Ok(())
    }

    async fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        let range = self.range(offset, bytes.len(), 4)?;
        for (cell, &b) in self.memory[range].iter_mut().zip(bytes) {
            if let Some(left) = &mut self.writes_left {
                if *left == 0 {
                    return Err(RamFlashError(NorFlashErrorKind::Other));
                }
                *left -= 1;
            }
            *cell &= b;
        }
        Ok(())
    }
}
