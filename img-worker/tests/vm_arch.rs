//! Foreign-arch builds in the throwaway VM (x86_64 guest, TCG here): the guest registers the
//! job's qemu-user handler with its own binfmt_misc (`vm/img-binfmt`, flags F and P) before
//! img-creator runs, so the image's scriptlets and %post run as the target. An aarch64 `raw`
//! disk and an armv7hl `loop` image from the ARM fixture repositories; each image is read
//! with debugfs on the host.

use img_worker::build::{BuildSpec, LOG_FILE, OUT_DIR};
mod common;

use common::{arm_fixture_repo, no_cancel, Case};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// %post records the machine it ran on, and calls busybox applets through their links (the
/// interpreter /bin/sh is one too): with a handler lacking binfmt's P flag they run as the
/// wrong applet.
const POST: &str = "%post --erroronfail
uname -m > /etc/img-arch
echo applet-ok | tr a-z A-Z > /etc/img-applet
%end
";

fn kickstart(part: &str, bootloader: &str, groups: &str) -> String {
    format!(
        "{part}\n{bootloader}repo --name=fixture --baseurl=file://@FIXTURE_REPO@\n%packages\n{groups}-bloat\n%end\n{POST}"
    )
}

fn spec(c: &Case, arch: &str, imagetype: &str, kickstart: String) -> BuildSpec {
    let repo = arm_fixture_repo(arch);
    BuildSpec {
        arch: arch.into(),
        imagetype: imagetype.into(),
        tokenmap: [("FIXTURE_REPO".to_owned(), repo.display().to_string())].into(),
        ..c.spec(kickstart)
    }
}

/// `debugfs -R REQUEST SPEC` (SPEC may be `FILE?offset=N`), which must succeed.
fn debugfs(spec: &str, request: &str) -> String {
    let o = Command::new("debugfs").args(["-R", request, spec]).output().expect("debugfs");
    assert!(o.status.success(), "debugfs {request} {spec}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The build, timed; panics with the job log on failure.
fn build(c: &Case, spec: &BuildSpec) -> (Vec<img_worker::build::Artifact>, String, f64) {
    let started = Instant::now();
    let files = c.build_spec(spec, no_cancel()).unwrap_or_else(|e| {
        panic!("{e}\n{}", std::fs::read_to_string(c.dir.join("job").join(LOG_FILE)).unwrap_or_default())
    });
    let secs = started.elapsed().as_secs_f64();
    eprintln!("{} {} build in the VM: {secs:.1} s", spec.arch, spec.imagetype);
    (files, std::fs::read_to_string(c.dir.join("job").join(LOG_FILE)).expect("log"), secs)
}

/// What every foreign-arch image shows: %post ran as `machine`, applets through their links
/// worked, the fixture's scriptlet ran, and the guest registered the handler with F and P.
fn assert_ran_as(fs: &str, machine: &str, log: &str, qemu: &str) {
    assert_eq!(debugfs(fs, "cat /etc/img-arch"), format!("{machine}\n"));
    assert_eq!(debugfs(fs, "cat /etc/img-applet"), "APPLET-OK\n");
    assert_eq!(debugfs(fs, "cat /var/lib/hello-post/installed"), "hello-post scriptlet ran\n");
    let line =
        log.lines().find(|l| l.contains(&format!("img-binfmt: {qemu} registered"))).unwrap_or_else(|| panic!("{log}"));
    let flags = line.rsplit("flags ").next().unwrap_or_default();
    assert!(flags.contains('F') && flags.contains('P'), "{line}");
}

#[test]
fn an_aarch64_raw_disk_is_built_in_the_vm() {
    let c = Case::new("aarch64-raw", Duration::from_secs(300), Duration::from_secs(120));
    let ks = kickstart(
        "part / --size=160 --fstype=ext4 --label=root",
        "bootloader --timeout=1 --append=\"console=ttyAMA0\"\n",
        "@core\n@boot\n",
    );
    let s = spec(&c, "aarch64", "raw", ks);
    let (files, log, _) = build(&c, &s);
    let raw = files.iter().find(|f| f.name.ends_with(".raw")).expect("a disk listed");
    let disk = c.dir.join("job").join(OUT_DIR).join(&raw.name);
    let head = std::fs::read(&disk).expect("disk");
    assert!(head[..440].iter().all(|&b| b == 0), "x86 boot code on an aarch64 disk");
    drop(head);
    let fs = format!("{}?offset={}", disk.display(), 2048 * 512);
    let dir = debugfs(&fs, "ls -l /boot/extlinux");
    assert!(dir.contains("extlinux.conf") && !dir.contains("ldlinux") && !dir.contains(".c32"), "{dir}");
    let conf = debugfs(&fs, "cat /boot/extlinux/extlinux.conf");
    assert!(conf.contains("  LINUX /boot/vmlinuz-") && conf.contains(" console=ttyAMA0\n"), "{conf}");
    assert_ran_as(&fs, "aarch64", &log, "qemu-aarch64");
    c.assert_gone();
}

#[test]
fn an_armv7hl_loop_image_is_built_in_the_vm() {
    let c = Case::new("armv7hl-loop", Duration::from_secs(300), Duration::from_secs(120));
    let ks = kickstart("part / --size=128 --fstype=ext4 --label=root", "", "@core\n");
    let s = spec(&c, "armv7hl", "loop", ks);
    let (files, log, _) = build(&c, &s);
    let img = files.iter().find(|f| f.name == "root.img").expect("root.img listed");
    let fs = c.dir.join("job").join(OUT_DIR).join(&img.name);
    assert_ran_as(&fs.to_string_lossy(), "armv7l", &log, "qemu-arm");
    assert!(Path::new(&fs).is_file());
    c.assert_gone();
}

/// The recipe for native aarch64 workers: `vm/build --arch aarch64` makes an arm64 base VM
/// (bootstrapped here through qemu-user) that the runner boots with qemu-system-aarch64
/// (TCG on this x86_64 host, KVM on an aarch64 one). Its tools run natively, and it emulates
/// x86_64 itself through its own qemu-user.
#[test]
fn an_aarch64_base_vm_boots_and_runs_its_job() {
    let dir = common::workspace().join(".build/vm-aarch64");
    let recipe = Command::new(common::workspace().join("vm/build"))
        .args(["--arch", "aarch64"])
        .arg(&dir)
        .output()
        .expect("vm/build runs");
    assert!(recipe.status.success(), "vm/build --arch aarch64: {}", String::from_utf8_lossy(&recipe.stderr));
    let scratch = common::workspace().join(format!(".build/test-vm/aarch64-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    let job = scratch.join("job");
    std::fs::create_dir_all(&job).expect("scratch");
    let run = job.join(img_worker::vm::RUN);
    std::fs::write(
        &run,
        "#!/bin/sh\nset -e\nout=/var/tmp/img-result/out\nuname -m >$out/machine\n\
         for t in dnf rpm mkfs.ext4 mksquashfs qemu-x86_64-static; do command -v $t; done >$out/tools\n\
         /usr/local/sbin/img-binfmt qemu-x86_64\ngrep -h flags /proc/sys/fs/binfmt_misc/qemu-x86_64 >$out/binfmt\n",
    )
    .expect("run");
    Command::new("chmod").arg("+x").arg(&run).status().expect("chmod");
    let image = img_worker::vm::VmImage { dir };
    assert_eq!(image.machine().expect("arch").qemu, "qemu-system-aarch64");
    let limits = common::test_limits(Duration::from_secs(240), Duration::from_secs(120));
    let (log, vm_run, out) = (scratch.join("console.log"), scratch.join("vm-run"), scratch.join("out"));
    let vm = img_worker::vm::VmRun { input: &job, log: &log, shares: &[], scratch: &vm_run, out: &out, proxy: None };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
    let t0 = Instant::now();
    let outcome = rt.block_on(img_worker::vm::run_vm(&image, &limits, vm, no_cancel())).expect("the VM runs");
    let console = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(outcome.code, 0, "{console}");
    eprintln!("aarch64 base VM: job done in {:.1} s", t0.elapsed().as_secs_f64());
    let read =
        |name: &str| std::fs::read_to_string(out.join(name)).unwrap_or_else(|e| panic!("{name}: {e}\n{console}"));
    assert_eq!(read("machine"), "aarch64\n");
    assert_eq!(read("tools").lines().count(), 5, "{}", read("tools"));
    let flags = read("binfmt");
    assert!(flags.contains('F') && flags.contains('P'), "{flags}");
    let _ = std::fs::remove_dir_all(&scratch);
}
