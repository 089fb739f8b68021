//! A synthetic installed root from the host's busybox-static, kernel and a module subset, for
//! tests of the boot pieces that should not wait for dnf.

use img_creator::boot::{self, modules::ModuleDb};
use img_creator::cmd::Cmd;
use std::path::Path;

pub const MARKER: &str = "IMG-TEST-BOOTED";

/// An installed root as dnf leaves it: static busybox with a few applet links, /sbin/init (a
/// script printing the marker), the host's kernel and the modules both initramfs kinds use.
pub fn synthetic_root(root: &Path) -> String {
    let (kver, vmlinuz) = boot::find_kernel(Path::new("/")).expect("host kernel (linux-image-amd64)");
    for d in ["bin", "sbin", "boot", "dev", "proc", "sys", "etc", "tmp"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).expect("busybox-static");
    for applet in ["sh", "echo", "poweroff"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    let init = format!("#!/bin/sh\necho {MARKER}\npoweroff -f\n");
    std::fs::write(root.join("sbin/init"), init).unwrap();
    Cmd::new("chmod").args(["755"]).arg(root.join("sbin/init")).run().unwrap();
    std::fs::copy(&vmlinuz, root.join(format!("boot/vmlinuz-{kver}"))).unwrap();
    // The kernel config tells the initramfs builder zstd is understood.
    std::fs::copy(format!("/boot/config-{kver}"), root.join(format!("boot/config-{kver}"))).unwrap();
    copy_modules(root, &kver);
    kver
}

fn copy_modules(root: &Path, kver: &str) {
    let host = ModuleDb::load(Path::new("/"), kver).unwrap().expect("host modules");
    let mut names: Vec<&str> = boot::modules::DISK_DRIVERS.to_vec();
    names.extend(boot::modules::DISK_FILESYSTEMS);
    names.extend(boot::modules::LIVE_MODULES);
    let dest = root.join("lib/modules").join(kver);
    for rel in host.resolve(&names) {
        let to = dest.join(&rel);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(host.dir.join(&rel), to).unwrap();
    }
    std::fs::copy(host.dir.join("modules.builtin"), dest.join("modules.builtin")).unwrap();
    Cmd::new("depmod").args(["-b"]).arg(root).arg(kver).run().expect("depmod (kmod)");
}
