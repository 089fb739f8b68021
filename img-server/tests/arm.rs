//! ARM images end to end, on both backends: jobs submitted over the API are built in the
//! throwaway VM from the ARM fixture repositories (Debian's arm64/armhf binaries), their
//! `%post` ran as the target (qemu-user in the guest), and what the server hands out boots:
//! the aarch64 disk under `qemu-system-aarch64 -M virt` from its own kernel and through
//! U-Boot reading its extlinux.conf, the armv7hl disk under `qemu-system-arm -M virt`.

mod support;

use img_core::job::Arch;
use img_creator::qemu::{boot_until, Attach, BootSpec, Drive};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use support::{arm_fixture_repo, Backend, Server, Store};

const BUILD_TIMEOUT: Duration = Duration::from_secs(300);
const BOOT_TIMEOUT: Duration = Duration::from_secs(180);

/// The fixture kickstart (img-creator's own ARM test image): its `%post` writes `uname -m` to
/// /etc/img-arch and an init that prints `IMG-ARM-BOOTED $(uname -m)` and powers off.
fn kickstart() -> String {
    std::fs::read_to_string(support::workspace().join("img-creator/tests/fixtures/arm.ks")).expect("arm.ks")
}

fn submit(s: &Server, arch: &str, imagetype: &str) -> String {
    let repo = arm_fixture_repo(arch);
    let r = s.submit_json(json!({"kickstart": kickstart(), "imagetype": imagetype, "arch": arch, "name": "arm",
        "tokenmap": {"FIXTURE_REPO": repo.display().to_string()}}));
    assert_eq!(r.status(), 201);
    r.json::<Value>().expect("json")["id"].as_str().expect("id").to_owned()
}

/// The job's artifacts downloaded into `dir`, by name.
fn download(s: &Server, job: &Value, dir: &Path) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).expect("download folder");
    let arts = job["artifacts"].as_array().expect("artifacts");
    arts.iter()
        .map(|a| {
            let name = a["name"].as_str().expect("name");
            let bytes = s.http.get(a["url"].as_str().expect("url")).send().expect("GET").bytes().expect("body");
            assert_eq!(support::sha256_hex(&bytes), a["sha256"].as_str().expect("sha256"), "{name}");
            let path = dir.join(name);
            std::fs::write(&path, &bytes).expect("artifact");
            path
        })
        .collect()
}

fn one(files: &[PathBuf], what: &str, pick: impl Fn(&str) -> bool) -> PathBuf {
    let found: Vec<&PathBuf> =
        files.iter().filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(&pick)).collect();
    assert_eq!(found.len(), 1, "one {what} among {files:?}");
    found[0].clone()
}

/// `debugfs -R REQUEST` on the ext4 at byte `offset` of `image`: its stdout.
fn debugfs(image: &Path, offset: u64, request: &str) -> String {
    let o = Command::new("debugfs")
        .args(["-R", request])
        .arg(format!("{}?offset={offset}", image.display()))
        .output()
        .expect("debugfs");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn cat_in(image: &Path, offset: u64, path: &str) -> String {
    debugfs(image, offset, &format!("cat {path}"))
}

/// Byte offset of the disk's first partition (sfdisk's JSON).
fn first_partition(disk: &Path) -> u64 {
    let o = Command::new("sfdisk").arg("-J").arg(disk).output().expect("sfdisk");
    let table: Value = serde_json::from_slice(&o.stdout).expect("sfdisk -J");
    let start = table["partitiontable"]["partitions"][0]["start"].as_u64().expect("a first partition");
    start * 512
}

fn boot(spec: &BootSpec, what: &str) {
    let o = boot_until(spec).unwrap_or_else(|e| panic!("{what} did not boot: {e}"));
    eprintln!("{what}: marker after {:.1} s ({})", o.seconds, o.accel);
}

/// The disk booted directly with what its extlinux.conf names (kernel, initramfs, command
/// line), taken out of its first partition.
fn direct(arch: Arch, disk: &Path, offset: u64, dir: &Path, marker: &str) -> BootSpec {
    let conf = cat_in(disk, offset, "/boot/extlinux/extlinux.conf");
    let entry = |key: &str| {
        conf.lines().find_map(|l| l.trim().strip_prefix(key)).map(str::trim).unwrap_or_else(|| panic!("{key}: {conf}"))
    };
    let (kernel, initrd) = (dir.join("vmlinuz"), dir.join("initramfs.img"));
    for (from, to) in [(entry("LINUX "), &kernel), (entry("INITRD "), &initrd)] {
        debugfs(disk, offset, &format!("dump {from} {}", to.display()));
        assert!(to.is_file(), "{from} is not in the image:\n{conf}");
    }
    let mut spec = BootSpec::new(marker, BOOT_TIMEOUT);
    spec.arch = arch;
    spec.drives.push(Drive::snapshot(disk, Attach::Disk));
    spec.kernel = Some(kernel);
    spec.initrd = Some(initrd);
    spec.append = Some(entry("APPEND ").to_owned());
    spec
}

fn arm_images_build_in_the_vm_and_boot(backend: Backend) {
    let store = Store::new(backend);
    let s = Server::start(store.config());
    let jobs = [("aarch64", "raw"), ("armv7hl", "loop"), ("armv7hl", "raw")].map(|(a, t)| (a, t, submit(&s, a, t)));
    for (arch, imagetype, id) in &jobs {
        let job = s.wait_final(id, BUILD_TIMEOUT);
        assert_eq!(job["status"], "done", "{arch} {imagetype}: {job}{}", s.worker_logs());
        assert_eq!(job["arch"], *arch);
        let dir = store.dir.join(format!("{arch}-{imagetype}"));
        let files = download(&s, &job, &dir);
        let (image, offset) = match *imagetype {
            "raw" => {
                let disk = one(&files, "disk", |n| n.ends_with(".raw"));
                let offset = first_partition(&disk);
                (disk, offset)
            }
            _ => (one(&files, "filesystem image", |n| n.ends_with(".img") && !n.contains("initrd")), 0),
        };
        let machine = if *arch == "aarch64" { "aarch64" } else { "armv7l" };
        assert_eq!(cat_in(&image, offset, "/etc/img-arch"), format!("{machine}\n"), "{arch} {imagetype}: %post");
        assert_eq!(cat_in(&image, offset, "/var/lib/hello-post/installed"), "hello-post scriptlet ran\n");
        if *imagetype != "raw" {
            continue;
        }
        let arch: Arch = arch.parse().expect("arch");
        let marker = format!("IMG-ARM-BOOTED {machine}");
        boot(&direct(arch, &image, offset, &dir, &marker), &format!("{arch} disk, direct kernel boot"));
        if arch == Arch::Aarch64 {
            let u_boot = BootSpec::u_boot_disk(arch, &image, &marker, BOOT_TIMEOUT).expect("U-Boot (u-boot-qemu)");
            boot(&u_boot, "aarch64 disk, U-Boot reading its extlinux.conf");
        }
    }
}

both_backends!(arm_images_build_in_the_vm_and_boot);
