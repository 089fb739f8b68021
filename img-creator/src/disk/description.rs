//! `NAME.xml` beside a raw image: mic's description of the appliance (virt-image's
//! format): its disks as drives `hda`, `hdb`, … in `--ondisk` order, the machine mic
//! assumed (1 vCPU, 512 MiB, one interface per `network` line) and each disk file with
//! its sha256 when the build hashed its outputs. Pure.

use crate::outputs::OutputFile;

pub struct Description<'a> {
    pub name: &'a str,
    /// The target arch as kickstart users give it (x86_64, armv7hl, …).
    pub arch: &'a str,
    /// The disks' file names, as they are in the output folder.
    pub disks: &'a [String],
    pub networks: usize,
    /// The described outputs (for checksums).
    pub files: &'a [OutputFile],
}

/// mic's default machine.
const VCPUS: u32 = 1;
const MEMORY_KIB: u64 = 512 * 1024;

impl Description<'_> {
    pub fn xml(&self) -> String {
        let mut x = String::from("<image>\n");
        x.push_str(&format!("  <name>{}</name>\n", escape(self.name)));
        x.push_str("  <domain>\n    <boot type='hvm'>\n      <guest>\n");
        x.push_str(&format!("        <arch>{}</arch>\n", guest_arch(self.arch)));
        x.push_str("      </guest>\n      <os>\n        <loader dev='hd'/>\n      </os>\n");
        for (i, d) in self.disks.iter().enumerate() {
            x.push_str(&format!("      <drive disk='{}' target='hd{}'/>\n", escape(d), drive_letters(i)));
        }
        x.push_str("    </boot>\n    <devices>\n");
        x.push_str(&format!("      <vcpu>{VCPUS}</vcpu>\n      <memory>{MEMORY_KIB}</memory>\n"));
        x.push_str(&"      <interface/>\n".repeat(self.networks));
        x.push_str("      <graphics/>\n    </devices>\n  </domain>\n  <storage>\n");
        for d in self.disks {
            let head = format!("    <disk file='{}' use='system' format='raw'", escape(d));
            match self.files.iter().find(|f| &f.name == d).and_then(|f| f.sha256.as_deref()) {
                Some(sum) => {
                    x.push_str(&format!("{head}>\n      <checksum type='sha256'>{sum}</checksum>\n    </disk>\n"))
                }
                None => x.push_str(&format!("{head}/>\n")),
            }
        }
        x.push_str("  </storage>\n</image>\n");
        x
    }
}

/// mic wrote `arm` for ARM targets and `i686` for everything else; an x86_64 or aarch64
/// image is described as what it is.
fn guest_arch(arch: &str) -> &str {
    match arch {
        a if a.starts_with("arm") => "arm",
        "i386" | "i486" | "i586" | "i686" => "i686",
        a => a,
    }
}

/// hda … hdz, hdaa …: as disks are named past 26.
fn drive_letters(mut i: usize) -> String {
    let mut s = Vec::new();
    loop {
        s.push(b'a' + (i % 26) as u8);
        if i < 26 {
            break;
        }
        i = i / 26 - 1;
    }
    s.reverse();
    String::from_utf8(s).unwrap_or_default()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('\'', "&apos;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_disks_in_order_with_checksums() {
        let disks = ["dev-sda.raw".to_owned(), "dev-sdb.raw".to_owned()];
        let files = [OutputFile { name: "dev-sdb.raw".into(), size: 1, sha256: Some("ab".repeat(32)) }];
        let d = Description { name: "dev<1>", arch: "armv7hl", disks: &disks, networks: 2, files: &files };
        let want = format!(
            "<image>\n  <name>dev&lt;1&gt;</name>\n  <domain>\n    <boot type='hvm'>\n      <guest>\n\
             \x20       <arch>arm</arch>\n      </guest>\n      <os>\n        <loader dev='hd'/>\n      </os>\n\
             \x20     <drive disk='dev-sda.raw' target='hda'/>\n      <drive disk='dev-sdb.raw' target='hdb'/>\n\
             \x20   </boot>\n    <devices>\n      <vcpu>1</vcpu>\n      <memory>524288</memory>\n\
             \x20     <interface/>\n      <interface/>\n      <graphics/>\n    </devices>\n  </domain>\n\
             \x20 <storage>\n    <disk file='dev-sda.raw' use='system' format='raw'/>\n\
             \x20   <disk file='dev-sdb.raw' use='system' format='raw'>\n      <checksum type='sha256'>{}</checksum>\n\
             \x20   </disk>\n  </storage>\n</image>\n",
            "ab".repeat(32)
        );
        assert_eq!(d.xml(), want);
        assert_eq!((drive_letters(25), drive_letters(26), drive_letters(27)), ("z".into(), "aa".into(), "ab".into()));
        assert_eq!((guest_arch("x86_64"), guest_arch("i586")), ("x86_64", "i686"));
    }
}
