//! A newc ("070701") cpio archive, the format the kernel unpacks as an initramfs. Written here
//! rather than by cpio(1) so entries are owned by root with a fixed time (reproducible) and a
//! device node needs no mknod on the host.

use std::io::{self, Write};

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const S_IFCHR: u32 = 0o020000;

pub struct Writer<W: Write> {
    out: W,
    ino: u32,
    written: u64,
}

impl<W: Write> Writer<W> {
    pub fn new(out: W) -> Self {
        Self { out, ino: 0, written: 0 }
    }

    pub fn dir(&mut self, path: &str, mode: u32) -> io::Result<()> {
        self.entry(path, S_IFDIR | mode, 0, b"")
    }

    pub fn file(&mut self, path: &str, mode: u32, data: &[u8]) -> io::Result<()> {
        self.entry(path, S_IFREG | mode, 0, data)
    }

    pub fn symlink(&mut self, path: &str, target: &str) -> io::Result<()> {
        self.entry(path, S_IFLNK | 0o777, 0, target.as_bytes())
    }

    pub fn char_dev(&mut self, path: &str, mode: u32, major: u32, minor: u32) -> io::Result<()> {
        self.entry(path, S_IFCHR | mode, (major << 8) | minor, b"")
    }

    /// Writes the trailer and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.ino = 0;
        self.header("TRAILER!!!", 0, 0, 0)?;
        self.out.flush()?;
        Ok(self.out)
    }

    /// `rdev` packs major and minor as `major << 8 | minor`.
    fn entry(&mut self, path: &str, mode: u32, rdev: u32, data: &[u8]) -> io::Result<()> {
        self.ino += 1;
        let size = u32::try_from(data.len()).map_err(|_| io::Error::other(format!("{path}: too large for cpio")))?;
        self.header(path.trim_start_matches('/'), mode, size, rdev)?;
        self.write_padded(data)
    }

    fn header(&mut self, name: &str, mode: u32, size: u32, rdev: u32) -> io::Result<()> {
        let nlink = if mode & S_IFDIR != 0 { 2 } else { 1 };
        let fields = [self.ino, mode, 0, 0, nlink, 0, size, 0, 0, rdev >> 8, rdev & 0xff, name.len() as u32 + 1, 0];
        let mut head = String::from("070701");
        for f in fields {
            head.push_str(&format!("{f:08X}"));
        }
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(name.as_bytes());
        bytes.push(0);
        self.write_padded(&bytes)
    }

    /// Every header+name and every body is padded to 4 bytes.
    fn write_padded(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.written += bytes.len() as u64;
        let pad = (4 - (self.written % 4) as usize) % 4;
        self.out.write_all(&[0u8; 3][..pad])?;
        self.written += pad as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::Cmd;

    #[test]
    fn cpio_lists_and_extracts_what_was_written() {
        let mut w = Writer::new(Vec::new());
        w.dir("bin", 0o755).unwrap();
        w.file("bin/hello", 0o755, b"#!/bin/sh\necho hi\n").unwrap();
        w.symlink("bin/sh", "hello").unwrap();
        w.char_dev("dev/console", 0o600, 5, 1).unwrap();
        let bytes = w.finish().unwrap();
        assert_eq!(bytes.len() % 4, 0);
        let t = crate::workdir::TempDir::new_in(&std::env::temp_dir(), "img-cpio-").unwrap();
        std::fs::write(t.path().join("a.cpio"), &bytes).unwrap();
        let listing = Cmd::new("cpio").args(["-itv", "-F"]).arg(t.path().join("a.cpio")).capture().unwrap();
        let lines: Vec<&str> = listing.lines().collect();
        assert_eq!(lines.len(), 4, "{listing}");
        assert!(lines[1].starts_with("-rwxr-xr-x") && lines[1].contains(" bin/hello"), "{listing}");
        assert!(lines[2].starts_with("lrwxrwxrwx") && lines[2].ends_with("bin/sh -> hello"), "{listing}");
        assert!(lines[3].starts_with("crw-------") && lines[3].contains("5,"), "{listing}");
    }
}
