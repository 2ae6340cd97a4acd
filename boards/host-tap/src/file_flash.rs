//! The write-back store of the host board: a file with NOR-flash rules (erase to `0xFF`,
//! writes only clear bits), synced after every write, so that what the gateway writes back
//! survives a restart just as it would in a board's flash.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use embedded_storage_async::nor_flash::{
    ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};

pub const PAGE: usize = 8192;
pub const PAGES: usize = 4;
pub const LEN: usize = PAGE * PAGES;

pub struct FileFlash {
    file: File,
}

#[derive(Debug)]
pub struct FileFlashError(NorFlashErrorKind);

impl NorFlashError for FileFlashError {
    fn kind(&self) -> NorFlashErrorKind {
        self.0
    }
}

impl FileFlash {
    /// Opens the store file, creating it erased when it does not exist.
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let len = file.metadata()?.len();
        if len == 0 {
            file.write_all_at(&[0xff; LEN], 0)?;
            file.sync_all()?;
        } else if len != LEN as u64 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{}: {len} bytes, but a store file is {LEN} bytes",
                    path.display()
                ),
            ));
        }
        Ok(Self { file })
    }

    fn check(&self, offset: u32, len: usize, align: usize) -> Result<u64, FileFlashError> {
        let start = offset as usize;
        if start.checked_add(len).is_none_or(|end| end > LEN) {
            return Err(FileFlashError(NorFlashErrorKind::OutOfBounds));
        }
        if !start.is_multiple_of(align) || !len.is_multiple_of(align) {
            return Err(FileFlashError(NorFlashErrorKind::NotAligned));
        }
        Ok(start as u64)
    }
}

fn io_error(_: io::Error) -> FileFlashError {
    FileFlashError(NorFlashErrorKind::Other)
}

impl ErrorType for FileFlash {
    type Error = FileFlashError;
}

impl ReadNorFlash for FileFlash {
    const READ_SIZE: usize = 1;

    async fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        let at = self.check(offset, bytes.len(), 1)?;
        self.file.read_exact_at(bytes, at).map_err(io_error)
    }

    fn capacity(&self) -> usize {
        LEN
    }
}

impl NorFlash for FileFlash {
    const WRITE_SIZE: usize = 4;
    const ERASE_SIZE: usize = PAGE;

    async fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        let len = to
            .checked_sub(from)
            .ok_or(FileFlashError(NorFlashErrorKind::OutOfBounds))? as usize;
        let at = self.check(from, len, PAGE)?;
        self.file
            .write_all_at(&vec![0xff; len], at)
            .and_then(|()| self.file.sync_data())
            .map_err(io_error)
    }

    async fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        let at = self.check(offset, bytes.len(), 4)?;
        let mut cells = vec![0u8; bytes.len()];
        self.file.read_exact_at(&mut cells, at).map_err(io_error)?;
        for (cell, b) in cells.iter_mut().zip(bytes) {
            *cell &= b;
        }
        self.file
            .write_all_at(&cells, at)
            .and_then(|()| self.file.sync_data())
            .map_err(io_error)
    }
}
