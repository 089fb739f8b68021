//! Builds in the throwaway VM (real qemu, TCG here): a fixture `loop` image, and the ways a
//! build ends badly — a failing `%post --erroronfail`, a missing package, the wall-clock limit, a stalled build,
//! a cancel. After each: the job ends as it should, no qemu of ours runs, no overlay is left.

use img_worker::build::{BuildError, LOG_FILE, OUT_DIR};
mod common;

use common::{no_cancel, Case, LOOP_KS};
use std::time::Duration;
use tokio::sync::watch;

#[test]
fn a_loop_image_is_built_inside_the_vm() {
    let c = Case::new("loop", Duration::from_secs(300), Duration::from_secs(120));
    // An attachment and a missing one: the host's result.json carries both facts out.
    let ks = format!("{LOOP_KS}%attachment\n/etc/os-release\n/nothing-here*\n%end\n");
    let files = c.build(ks, no_cancel()).unwrap_or_else(|e| {
        panic!("{e}\n{}", std::fs::read_to_string(c.dir.join("job").join(LOG_FILE)).unwrap_or_default())
    });
    let img = files.iter().find(|f| f.name.ends_with(".img")).expect("an image listed");
    assert_eq!(img.size, 128 << 20);
    assert_eq!(img.sha256.len(), 64, "hashed on the host");
    let out = c.dir.join("job").join(OUT_DIR);
    let sums = std::process::Command::new("sha256sum")
        .arg("-c")
        .arg("SHA256SUMS")
        .current_dir(&out)
        .output()
        .expect("sha256sum");
    assert!(sums.status.success(), "{}", String::from_utf8_lossy(&sums.stdout));
    let result: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("result.json")).expect("result.json")).unwrap();
    let size = std::fs::metadata(out.join("os-release")).expect("attachment published").len();
    assert_eq!(
        result["attachments"],
        serde_json::json!([{"name": "os-release", "from": "/etc/os-release", "size": size}])
    );
    let warnings = result["warnings"].as_array().expect("warnings");
    assert!(warnings.iter().any(|w| w == "%attachment /nothing-here*: no file in the image matches"), "{result}");
    // A real ext4 with the fixture's busybox in it, made inside the guest.
    let ls = std::process::Command::new("debugfs")
        .args(["-R", "ls -l /bin"])
        .arg(out.join(&img.name))
        .output()
        .expect("debugfs");
    assert!(String::from_utf8_lossy(&ls.stdout).contains("busybox"), "{}", String::from_utf8_lossy(&ls.stdout));
    // The guest's console (img-creator's detailed log) reached the job log.
    let log = std::fs::read_to_string(c.dir.join("job").join(LOG_FILE)).expect("log");
    assert!(log.contains("IMG-GUEST-READY") && log.contains("$ dnf "), "{log}");
    c.assert_gone();
}

#[test]
fn a_failing_post_script_fails_the_job() {
    let c = Case::new("post", Duration::from_secs(300), Duration::from_secs(120));
    let ks = format!("{LOOP_KS}%post --erroronfail\necho about to fail\nexit 3\n%end\n");
    match c.build(ks, no_cancel()) {
        Err(BuildError::Failed(why)) => assert!(why.contains("%post"), "{why}"),
        other => panic!("expected a failure, got {other:?}"),
    }
    c.assert_gone();
}

/// The resolve phase in the VM: a missing package ends the job before %pre or the install,
/// named with its kickstart line; the phases the guest logged stop at `resolve`.
#[test]
fn a_missing_package_ends_the_job_in_its_resolve_phase() {
    let c = Case::new("missing", Duration::from_secs(300), Duration::from_secs(120));
    // Line 6 of the kickstart; a %pre that would show if it ran.
    let ks = format!("{}%pre\necho pre-ran\n%end\n", LOOP_KS.replace("-bloat", "-bloat\nno-such-package"));
    match c.build(ks, no_cancel()) {
        Err(BuildError::Failed(why)) => {
            assert!(why.contains("package `no-such-package` (fixture.ks:6)"), "{why}");
            assert!(why.contains("not in any of the repositories (fixture: file://"), "{why}");
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    let log = std::fs::read_to_string(c.dir.join("job").join(LOG_FILE)).expect("log");
    let phases: Vec<&str> = log.lines().filter_map(|l| l.split_once("phase: ").map(|(_, p)| p.trim())).collect();
    assert_eq!(phases, ["resolve"], "{log}");
    assert!(!log.contains("pre-ran"), "%pre did not run");
    c.assert_gone();
}

#[test]
fn limits_and_cancel_stop_the_vm() {
    // Wall clock: a %pre that sleeps far past a 15 s limit.
    let sleepy = format!("{LOOP_KS}%pre\nsleep 600\n%end\n");
    let c = Case::new("timeout", Duration::from_secs(15), Duration::from_secs(120));
    assert!(matches!(c.build(sleepy.clone(), no_cancel()), Err(BuildError::TimedOut(15))));
    c.assert_gone();

    // Watchdog: no output and no writes for 8 s.
    let c = Case::new("stall", Duration::from_secs(300), Duration::from_secs(8));
    match c.build(sleepy.clone(), no_cancel()) {
        Err(BuildError::Vm(e)) => assert!(e.to_string().contains("no progress for 8 s"), "{e}"),
        other => panic!("expected a stall, got {other:?}"),
    }
    c.assert_gone();

    // Cancel after 6 s: the VM is gone at once.
    let c = Case::new("cancel", Duration::from_secs(300), Duration::from_secs(120));
    let (tx, rx) = watch::channel(false);
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(6));
        let _ = tx.send(true);
    });
    let started = std::time::Instant::now();
    assert!(matches!(c.build(sleepy, rx), Err(BuildError::Cancelled)));
    assert!(started.elapsed() < Duration::from_secs(15), "cancel took {:?}", started.elapsed());
    let _ = t.join();
    c.assert_gone();
}

/// The default configuration's folders are relative (`img-data/…`): the VM must start from
/// them too (qemu-img resolves a relative backing file from the overlay's folder).
#[test]
fn relative_folders_work() {
    // cargo runs integration tests in the package's folder: the workspace is `..`.
    let dir = std::path::PathBuf::from(format!("../.build/test-vm/relative-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let job = dir.join("job");
    std::fs::create_dir_all(&job).expect("scratch");
    std::fs::write(job.join(img_worker::vm::RUN), "#!/bin/sh\necho relative-ok\n").expect("run");
    std::process::Command::new("chmod").arg("+x").arg(job.join(img_worker::vm::RUN)).status().expect("chmod");
    let image = img_worker::vm::VmImage { dir: "../.build/vm".into() };
    let limits = common::test_limits(Duration::from_secs(60), Duration::from_secs(30));
    let (log, scratch, out) = (dir.join("console.log"), dir.join("vm-run"), dir.join("out"));
    let run = img_worker::vm::VmRun { input: &job, log: &log, shares: &[], scratch: &scratch, out: &out, proxy: None };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
    let outcome = rt.block_on(img_worker::vm::run_vm(&image, &limits, run, no_cancel())).expect("the VM runs");
    assert_eq!(outcome.code, 0);
    assert!(std::fs::read_to_string(&log).unwrap_or_default().contains("relative-ok"));
    let _ = std::fs::remove_dir_all(&dir);
}
