//! A Sailfish-like btrfs disk built in the throwaway VM (the one place img-creator mounts):
//! `/` is subvolume `@` (the default) of a btrfs partition, `/home` is `@home`, `factory-@`
//! a snapshot of `@`, `/boot` its own ext4. The host reads the partition with btrfs-progs
//! (no mount), then boots the disk under qemu to the image's marker.

mod common;

use common::{no_cancel, Case};
use img_creator::qemu::{boot_until, Attach, BootSpec, Drive};
use img_worker::build::{Executor, LOG_FILE, OUT_DIR};
use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const KS: &str = r#"part /boot --size=48 --fstype=ext4 --label=boot --active
part / --size=256 --fstype=btrfs --label=sailfish
btrfs / --label=root --subvol --name=@ --parent=sailfish --quota /
btrfs /home --label=/home --subvol --name=@home --parent=sailfish /
btrfs --parent=sailfish --snapshot --name=factory-@ --base=@
bootloader --timeout=0 --append="console=ttyS0 panic=-1"
repo --name=fixture --baseurl=file://@FIXTURE_REPO@
%packages
@core
kernel
-bloat
%end
%post
mkdir -p /etc/init.d
cat > /etc/init.d/rcS <<'RCS'
#!/bin/sh
mount -t proc proc /proc
mount -a 2>/dev/null
root=$(grep ' / btrfs ' /proc/mounts | cut -d' ' -f4 | tr ',' '\n' | grep '^subvol=')
home=$(cat /home/marker 2>/dev/null || echo none)
echo "IMG-BTRFS-BOOTED root:$root home:$home"
poweroff -f
RCS
chmod 755 /etc/init.d/rcS
echo in-home-subvolume > /home/marker
echo sailfish-like > /etc/img-btrfs-marker
echo linked > /etc/img-hard-a
ln /etc/img-hard-a /etc/img-hard-b
echo owned > /etc/img-owned
chown 1234:5678 /etc/img-owned
chmod 4751 /etc/img-owned
ln -s /etc/shadow-of-the-host /etc/img-abs-link
%end
%pack
# Inside the VM, after the image: no loop device or mount of the build is left.
losetup -a > "$IMG_OUT_DIR/loops.txt"
grep /var/tmp/img-creator /proc/self/mountinfo > "$IMG_OUT_DIR/mounts.txt" || :
%end
"#;

const MARKER: &str = "IMG-BTRFS-BOOTED root:subvol=/@ home:in-home-subvolume";

fn run(program: &str, args: &[&str]) -> String {
    let o = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(o.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Partition `n` (1-based) of `disk` copied into `dst`, read from the table by sfdisk.
fn extract_partition(disk: &Path, n: usize, dst: &Path) {
    let json: serde_json::Value = serde_json::from_str(&run("sfdisk", &["--json", &disk.to_string_lossy()])).unwrap();
    let p = &json["partitiontable"]["partitions"][n - 1];
    let (start, size) = (p["start"].as_u64().unwrap() * 512, p["size"].as_u64().unwrap() * 512);
    let mut src = std::fs::File::open(disk).unwrap();
    src.seek(SeekFrom::Start(start)).unwrap();
    let mut out = std::fs::File::create(dst).unwrap();
    std::io::copy(&mut src.take(size), &mut out).unwrap();
    out.flush().unwrap();
}

/// Subvolume id → name, from the root tree's ROOT_REF items, and the default subvolume's id.
fn subvolumes(root_tree: &str) -> (BTreeMap<u64, String>, Option<u64>) {
    let mut names = BTreeMap::new();
    let mut default = None;
    let mut current: Option<(&str, u64)> = None;
    for line in root_tree.lines() {
        let l = line.trim();
        if let Some(rest) = l.strip_prefix("item ") {
            let key = rest.split_once("key (").and_then(|(_, k)| k.split_once(')')).map(|(k, _)| k);
            let f: Vec<&str> = key.unwrap_or_default().split_whitespace().collect();
            current = match f.as_slice() {
                ["FS_TREE" | "5", "ROOT_REF", id] => id.parse().ok().map(|id| ("ref", id)),
                ["ROOT_TREE_DIR" | "6", "DIR_ITEM", _] => Some(("dir", 0)),
                _ => None,
            };
            continue;
        }
        match current {
            Some(("ref", id)) if l.contains(" name ") => {
                names.insert(id, l.rsplit(" name ").next().unwrap_or_default().to_owned());
            }
            Some(("dir", _)) if l.starts_with("location key (") => {
                default = l["location key (".len()..].split_whitespace().next().and_then(|id| id.parse().ok());
            }
            _ => {}
        }
    }
    (names, default)
}

fn dump(part: &str, tree: &str) -> String {
    run("btrfs", &["inspect-internal", "dump-tree", "-t", tree, part])
}

/// The names in one subvolume's tree dump (its INODE_REF and DIR_ITEM names).
fn names(dump: &str) -> Vec<String> {
    dump.lines().filter_map(|l| l.trim().split_once("name: ").map(|(_, n)| n.to_owned())).collect()
}

/// The inode a directory entry `name` points at, from the DIR_ITEMs of a tree dump.
fn inode_of(dump: &str, name: &str) -> Option<u64> {
    let mut location = None;
    for l in dump.lines().map(str::trim) {
        if l.starts_with("item ") {
            location = None;
        } else if let Some(rest) = l.strip_prefix("location key (") {
            location = rest.split_whitespace().next().and_then(|n| n.parse().ok());
        } else if l.ends_with(&format!("name: {name}")) && location.is_some() {
            return location;
        }
    }
    None
}

#[test]
fn a_sailfish_like_btrfs_disk_with_subvolumes_is_built_in_the_vm_and_boots() {
    let started = Instant::now();
    let mut c = Case::new("btrfs", Duration::from_secs(300), Duration::from_secs(120));
    // Half the usual promise of disk: this build needs little, and the machine is shared.
    if let Executor::Vm { limits, .. } = &mut c.builder.executor {
        limits.disk_mb = 2560;
        limits.output_mb = 512;
    }
    let mut spec = c.spec(KS.into());
    spec.imagetype = "raw".into();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
    let log = || std::fs::read_to_string(c.dir.join("job").join(LOG_FILE)).unwrap_or_default();
    let files =
        rt.block_on(c.builder.run(&spec, &c.dir.join("job"), no_cancel())).unwrap_or_else(|e| panic!("{e}\n{}", log()));
    eprintln!("built in the VM in {:.1} s", started.elapsed().as_secs_f64());
    assert!(files.iter().any(|f| f.name == "fixture.raw"), "{files:?}");
    c.assert_gone();
    let out = c.dir.join("job").join(OUT_DIR);
    for leftovers in ["loops.txt", "mounts.txt"] {
        let text = std::fs::read_to_string(out.join(leftovers)).unwrap_or_else(|e| panic!("{leftovers}: {e}"));
        assert_eq!(text, "", "{leftovers} in the VM after the build");
    }
    let disk = out.join("fixture.raw");

    let part = c.dir.join("p2.img");
    extract_partition(&disk, 2, &part);
    let p = part.to_string_lossy().into_owned();
    run("btrfs", &["check", "--readonly", &p]);
    let (subs, default) = subvolumes(&run("btrfs", &["inspect-internal", "dump-tree", "-t", "root", &p]));
    let id = |name: &str| {
        *subs.iter().find(|(_, n)| *n == name).unwrap_or_else(|| panic!("no subvolume {name} in {subs:?}")).0
    };
    assert_eq!(subs.len(), 3, "@, @home and factory-@: {subs:?}");
    assert_eq!(default, Some(id("@")), "the subvolume at / is the default, as mic sets it: {subs:?}");
    let at_dump = dump(&p, &id("@").to_string());
    let (at, home, factory) =
        (names(&at_dump), names(&dump(&p, &id("@home").to_string())), names(&dump(&p, &id("factory-@").to_string())));
    for (tree, what) in [(&at, "@"), (&factory, "factory-@")] {
        assert!(tree.iter().any(|n| n == "img-btrfs-marker"), "{what} has the image's /etc file");
        assert!(tree.iter().any(|n| n == "busybox"), "{what} has the installed packages");
        assert!(!tree.iter().any(|n| n == "marker"), "/home's files are in @home, not in {what}");
    }
    assert!(home.iter().any(|n| n == "marker"), "{home:?}");
    assert!(!home.iter().any(|n| n == "busybox"), "{home:?}");
    let (a, b) = (inode_of(&at_dump, "img-hard-a"), inode_of(&at_dump, "img-hard-b"));
    assert!(a.is_some() && a == b, "a hard link stays one inode: {a:?} {b:?}");
    assert!(dump(&p, "quota").contains("QGROUP_STATUS"), "--quota enables quota");

    // fstab, read out of @ with btrfs restore (no mount).
    let restored = c.dir.join("restored");
    std::fs::create_dir_all(&restored).unwrap();
    run("btrfs", &["restore", "-m", "-S", "-r", &id("@").to_string(), &p, &restored.to_string_lossy()]);
    use std::os::unix::fs::MetadataExt;
    let owned = std::fs::symlink_metadata(restored.join("etc/img-owned")).expect("img-owned");
    assert_eq!((owned.uid(), owned.gid(), owned.mode() & 0o7777), (1234, 5678, 0o4751), "owner and mode kept");
    let link = std::fs::read_link(restored.join("etc/img-abs-link")).expect("a symlink, not followed");
    assert_eq!(link, Path::new("/etc/shadow-of-the-host"));
    let fstab = std::fs::read_to_string(restored.join("etc/fstab")).expect("fstab in @");
    let uuid = run("blkid", &["-o", "value", "-s", "UUID", &p]);
    let uuid = uuid.trim();
    let lines: Vec<&str> = fstab.lines().collect();
    assert!(lines.contains(&format!("UUID={uuid} / btrfs defaults 0 0").as_str()), "{fstab}");
    assert!(lines.contains(&format!("UUID={uuid} /home btrfs defaults,subvol=@home 0 0").as_str()), "{fstab}");
    assert!(!fstab.contains("factory-@"), "{fstab}");

    let booting = Instant::now();
    let mut boot = BootSpec::new(MARKER, Duration::from_secs(120));
    let drive = Drive::snapshot(&disk, Attach::Disk);
    boot.drives.push(drive);
    let outcome = boot_until(&boot).unwrap_or_else(|e| panic!("the btrfs disk did not boot: {e}"));
    eprintln!("booted in {:.1} s ({:.1} s in all)", booting.elapsed().as_secs_f64(), started.elapsed().as_secs_f64());
    assert!(outcome.seconds < 120.0);
    let _ = std::fs::remove_dir_all(&c.dir);
}
