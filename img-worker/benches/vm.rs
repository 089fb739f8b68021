//! The build VM's costs, printed side by side in one run:
//! `cargo bench -p img-worker --bench vm [-- ROUNDS] [resolve|arch]` (`resolve`: only the
//! missing-package measures; `arch`: only the foreign-arch one).
//!
//! - fixed overhead: overlay created → guest agent ready → an empty job done → VM gone;
//! - the fixture `loop` build in the VM against the same build on the host;
//! - a job with a missing package through the VM, from the worker taking it to its failure in
//!   the resolve phase (the queue wait before is not in it);
//! - `img-client ks check --resolve` of that kickstart on this machine, first run (empty dnf
//!   cache) and again (cached metadata);
//!
//! - the same fixture package set as a `loop` image for x86_64 and for aarch64 (its scriptlets
//!   and %post through qemu-user), in the VM and on the host, with the aarch64/x86_64 ratios;
//!
//! with the accelerator used. Targets (issue 7): overhead ≤ 1.5 s with KVM, ≤ 2.5 s under TCG;
//! the in-VM build ≤ 12 s under TCG, ≤ 1.3× the host build with KVM. Issue 17: the missing
//! package's failure < 10 s, `ks check --resolve` < 2 s. Issue 18: an emulated arch's build
//! well under the 8–10× published for whole builds under qemu-user: ≤ 2× the x86_64 build, as
//! only scriptlets and %post are emulated. Exits non-zero on a miss.

use img_worker::build::{BuildError, BuildSpec, Builder, Executor, LOG_FILE};
use img_worker::vm::{self, VmImage, VmLimits, VmRun};
#[path = "../tests/common/mod.rs"]
mod common;

use common::{arm_fixture_repo, fixture_policy, fixture_repo, test_limits, workspace, LOOP_KS};
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::sync::watch;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let rounds: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(5);
    let only = std::env::args().skip(1).find(|a| a == "resolve" || a == "arch");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let scratch = workspace().join(".build/bench-vm");
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(scratch.join("job")).expect("scratch");
    let image = VmImage { dir: workspace().join(".build/vm") };
    rt.block_on(vm::ensure_image(&image)).expect("base VM (vm/build)");
    let kvm = vm::use_kvm("auto");
    let accel = if kvm { "KVM" } else { "TCG" };
    let limits: VmLimits = test_limits(Duration::from_secs(300), Duration::from_secs(120));
    let (_keep, cancel) = watch::channel(false);

    let job = scratch.join("job");
    let repo = fixture_repo();
    let release = workspace().join("target/release/img-creator");
    let creator = if release.is_file() { release } else { workspace().join("target/debug/img-creator") };
    println!(
        "\nbuild VM benchmark ({accel}; {} with {}):\n",
        creator.display(),
        if kvm { "-cpu host" } else { "-cpu qemu64,+rdrand" }
    );
    println!("| measure | median | target |");
    println!("|---|---|---|");
    let bench = Bench {
        rt: &rt,
        image: &image,
        limits: &limits,
        cancel: &cancel,
        scratch: &scratch,
        job: &job,
        repo: &repo,
        creator: &creator,
    };
    let mut ok = true;
    if only.is_none() {
        ok &= build_figures(&bench, rounds, kvm);
    }
    if only.is_none() || only.as_deref() == Some("resolve") {
        ok &= resolve_figures(&bench, rounds.clamp(1, 3));
    }
    if only.is_none() || only.as_deref() == Some("arch") {
        ok &= arch_figures(&bench, rounds.clamp(1, 3));
    }
    let left = std::fs::read_dir(scratch.join("vm-run")).map(|d| d.count()).unwrap_or(0);
    println!("\noverlays left behind: {left}");
    let _ = std::fs::remove_dir_all(&scratch);
    if !(ok && left == 0) {
        std::process::exit(1);
    }
}

/// What every measure runs with.
struct Bench<'a> {
    rt: &'a tokio::runtime::Runtime,
    image: &'a VmImage,
    limits: &'a VmLimits,
    cancel: &'a watch::Receiver<bool>,
    scratch: &'a Path,
    job: &'a Path,
    repo: &'a Path,
    creator: &'a Path,
}

/// The fixed overhead and the fixture build, in the VM and on the host; whether both met their targets.
fn build_figures(b: &Bench, rounds: usize, kvm: bool) -> bool {
    let Bench { rt, image, limits, cancel, scratch, job, repo, creator } = *b;
    // Fixed overhead: an empty job.
    std::fs::write(job.join(vm::RUN), "#!/bin/sh\nexit 0\n").expect("run script");
    std::process::Command::new("chmod").arg("+x").arg(job.join(vm::RUN)).status().expect("chmod");
    let overhead: Vec<f64> = (0..rounds)
        .map(|_| {
            let out = scratch.join("empty-out");
            let _ = std::fs::remove_dir_all(&out);
            let run = VmRun {
                input: job,
                log: &scratch.join("empty.log"),
                shares: &[],
                scratch: &scratch.join("vm-run"),
                out: &out,
                proxy: None,
            };
            let t = Instant::now();
            let o = rt.block_on(vm::run_vm(image, limits, run, cancel.clone())).expect("empty job");
            assert_eq!(o.code, 0);
            t.elapsed().as_secs_f64()
        })
        .collect();

    // The fixture loop build, in the VM and on the host, alternating.
    let spec = fixture_spec(LOOP_KS.into(), repo);
    let in_vm = vm_builder(image, limits, scratch, creator);
    let on_host = Builder { executor: Executor::Host, ..vm_builder(image, limits, scratch, creator) };
    let build_rounds = rounds.clamp(1, 3);
    let (mut vm_times, mut host_times) = (Vec::new(), Vec::new());
    for _ in 0..build_rounds {
        for (b, times) in [(&in_vm, &mut vm_times), (&on_host, &mut host_times)] {
            let t = Instant::now();
            rt.block_on(b.run(&spec, job, cancel.clone())).expect("fixture build");
            times.push(t.elapsed().as_secs_f64());
        }
    }

    let (ovh, vm_s, host_s) = (median(overhead), median(vm_times), median(host_times));
    let ovh_target = if kvm { 1.5 } else { 2.5 };
    let ok_ovh = ovh <= ovh_target;
    let ok_build = if kvm { vm_s <= 1.3 * host_s } else { vm_s <= 12.0 };
    let verdict = |ok: bool| if ok { "PASS" } else { "FAIL" };
    println!("| fixed overhead: overlay → agent ready → empty job → VM gone ({rounds} runs) | {ovh:.2} s | ≤ {ovh_target} s: {} |", verdict(ok_ovh));
    let target = if kvm {
        format!("≤ 1.3× host ({:.2} s): {}", 1.3 * host_s, verdict(ok_build))
    } else {
        format!("≤ 12 s: {}", verdict(ok_build))
    };
    println!("| fixture loop build in the VM ({build_rounds} runs) | {vm_s:.2} s | {target} |");
    println!("| the same build on the host | {host_s:.2} s | ratio {:.1}× |", vm_s / host_s);
    ok_ovh && ok_build
}

/// A missing package through the VM to its failure, and `ks check --resolve` on the host.
fn resolve_figures(b: &Bench, rounds: usize) -> bool {
    let Bench { rt, image, limits, cancel, scratch, job, repo, creator } = *b;
    let verdict = |ok: bool| if ok { "PASS" } else { "FAIL" };
    let ks = LOOP_KS.replace("-bloat", "-bloat\nno-such-package");
    let spec = fixture_spec(ks.clone(), repo);
    let in_vm = vm_builder(image, limits, scratch, creator);
    let (mut fail_times, mut resolve_phase) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let _ = std::fs::remove_file(job.join(LOG_FILE));
        let t = Instant::now();
        match rt.block_on(in_vm.run(&spec, job, cancel.clone())) {
            Err(BuildError::Failed(why)) => assert!(why.contains("no-such-package"), "{why}"),
            other => panic!("expected the missing package to fail the job: {other:?}"),
        }
        fail_times.push(t.elapsed().as_secs_f64());
        let log = std::fs::read_to_string(job.join(LOG_FILE)).unwrap_or_default();
        resolve_phase.extend(phase_seconds(&log, "resolve"));
    }
    let fail_s = median(fail_times);
    let ok_fail = fail_s < 10.0;
    println!("| missing package through the VM: job taken → failed in resolve ({rounds} runs) | {fail_s:.2} s | < 10 s: {} |", verdict(ok_fail));
    if !resolve_phase.is_empty() {
        println!("| of which the resolve phase in the guest (dnf --assumeno) | {:.2} s | |", median(resolve_phase));
    }

    let client = ["release", "debug"]
        .map(|p| workspace().join("target").join(p).join("img-client"))
        .into_iter()
        .find(|p| p.is_file())
        .expect("build img-client first (cargo build -p img-client)");
    let ks_file = scratch.join("missing.ks");
    std::fs::write(&ks_file, &ks).expect("kickstart");
    let cache = scratch.join("client-cache");
    let check = || {
        let t = Instant::now();
        let o = std::process::Command::new(&client)
            .args(["ks", "check", "--resolve", "--tokenmap"])
            .arg(format!("FIXTURE_REPO:{}", repo.display()))
            .arg(&ks_file)
            .env("XDG_CACHE_HOME", &cache)
            .output()
            .expect("img-client");
        assert_eq!(o.status.code(), Some(1), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(String::from_utf8_lossy(&o.stderr).contains(":6:1: error: package `no-such-package`"));
        t.elapsed().as_secs_f64()
    };
    let mut cold = Vec::new();
    for _ in 0..rounds {
        let _ = std::fs::remove_dir_all(&cache);
        cold.push(check());
    }
    let warm: Vec<f64> = (0..rounds).map(|_| check()).collect();
    let (cold_s, warm_s) = (median(cold), median(warm));
    let ok_check = cold_s < 2.0 && warm_s < 2.0;
    println!(
        "| `ks check --resolve`, empty dnf cache ({rounds} runs) | {cold_s:.2} s | < 2 s: {} |",
        verdict(cold_s < 2.0)
    );
    println!(
        "| `ks check --resolve`, metadata cached ({rounds} runs) | {warm_s:.2} s | < 2 s: {} |",
        verdict(warm_s < 2.0)
    );
    ok_fail && ok_check
}

/// The fixture loop image for x86_64 and for aarch64, in the VM and on the host (the host's
/// qemu-aarch64, registered by scripts/setup), alternating; whether aarch64 stayed ≤ 2×.
fn arch_figures(b: &Bench, rounds: usize) -> bool {
    let Bench { rt, image, limits, cancel, scratch, job, repo, creator } = *b;
    let ks = format!("{LOOP_KS}%post\nuname -m >/etc/img-arch\n%end\n");
    let arm_repo = arm_fixture_repo("aarch64");
    let specs =
        [fixture_spec(ks.clone(), repo), BuildSpec { arch: "aarch64".into(), ..fixture_spec(ks.clone(), &arm_repo) }];
    let in_vm = vm_builder(image, limits, scratch, creator);
    let on_host = Builder { executor: Executor::Host, ..vm_builder(image, limits, scratch, creator) };
    // [vm x86_64, vm aarch64, host x86_64, host aarch64]
    let mut times: [Vec<f64>; 4] = Default::default();
    for _ in 0..rounds {
        for (i, (builder, spec)) in
            [(&in_vm, &specs[0]), (&in_vm, &specs[1]), (&on_host, &specs[0]), (&on_host, &specs[1])]
                .into_iter()
                .enumerate()
        {
            let t = Instant::now();
            rt.block_on(builder.run(spec, job, cancel.clone())).unwrap_or_else(|e| panic!("{} build: {e}", spec.arch));
            times[i].push(t.elapsed().as_secs_f64());
        }
    }
    let [vm_x86, vm_arm, host_x86, host_arm] = times.map(median);
    let (vm_ratio, host_ratio) = (vm_arm / vm_x86, host_arm / host_x86);
    let ok = vm_ratio <= 2.0 && host_ratio <= 2.0;
    let verdict = |ok: bool| if ok { "PASS" } else { "FAIL" };
    println!("| fixture loop, x86_64, in the VM ({rounds} runs) | {vm_x86:.2} s | |");
    println!(
        "| the same packages for aarch64 in the VM (qemu-user in the guest) | {vm_arm:.2} s | {vm_ratio:.2}× x86_64; ≤ 2× (published qemu-user builds: 8–10×): {} |",
        verdict(vm_ratio <= 2.0)
    );
    println!("| fixture loop, x86_64, on the host | {host_x86:.2} s | |");
    println!(
        "| the same packages for aarch64 on the host (the host's qemu-user) | {host_arm:.2} s | {host_ratio:.2}× x86_64; ≤ 2×: {} |",
        verdict(host_ratio <= 2.0)
    );
    ok
}

/// `phase: NAME` … next line's time − this line's time, from img-creator's log lines.
fn phase_seconds(log: &str, name: &str) -> Option<f64> {
    let stamp = |l: &str| -> Option<f64> {
        let t = l.split_whitespace().next()?.strip_suffix('Z')?;
        let (_, hms) = t.split_once('T')?;
        let mut it = hms.split(':');
        let (h, m, s): (f64, f64, f64) = (it.next()?.parse().ok()?, it.next()?.parse().ok()?, it.next()?.parse().ok()?);
        Some(h * 3600.0 + m * 60.0 + s)
    };
    let lines: Vec<&str> = log.lines().filter(|l| stamp(l).is_some()).collect();
    let i = lines.iter().position(|l| l.ends_with(&format!("phase: {name}")))?;
    Some(stamp(lines.get(i + 1..)?.last()?)? - stamp(lines[i])?)
}

fn fixture_spec(kickstart: String, repo: &Path) -> BuildSpec {
    BuildSpec {
        id: "bench".into(),
        name: "fixture".into(),
        kickstart,
        imagetype: "loop".into(),
        arch: "x86_64".into(),
        tokenmap: [("FIXTURE_REPO".to_owned(), repo.display().to_string())].into(),
    }
}

fn vm_builder(image: &VmImage, limits: &VmLimits, scratch: &Path, creator: &Path) -> Builder {
    Builder {
        creator: creator.to_owned(),
        cache: None,
        timeout: limits.timeout,
        executor: Executor::Vm {
            image: image.clone(),
            limits: limits.clone(),
            scratch: scratch.join("vm-run"),
            ca_certs: img_worker::build::HOST_CA_CERTS.into(),
        },
        policy: fixture_policy(),
    }
}
