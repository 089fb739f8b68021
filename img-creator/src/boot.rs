//! Kernel and initramfs for bootable images (helper C fills this).

use std::path::PathBuf;

/// The kernel and initramfs a bootloader loads, as host paths, and the kernel version.
#[derive(Debug, Clone)]
pub struct BootFiles {
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub kver: String,
}
