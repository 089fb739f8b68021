//! One build, phase by phase: check → resolve → %pre → install → configure → %post → image →
//! extras → %pack → checksums. Work happens in a temporary folder; only a finished
//! build's files move into `--outdir`, so a failed one leaves nothing half-written.

use crate::attachments::{self, Attached};
use crate::cmd::Cmd;
use crate::error::{CreateError, Result};
use crate::fsio;
use crate::layout::{self, Volume};
use crate::outputs::{self, BuildResult, Phase};
use crate::plan::Plan;
use crate::scripts::{self, ScriptEnv};
use crate::warnings::Warnings;
use crate::workdir::{check_cancelled, TempDir};
use crate::{boot, disk, install, live, tools};
use img_core::diag::Diagnostic;
use img_core::job::{Arch, ImageType};
use img_core::kickstart::model::ScriptKind;
use img_core::kickstart::{Kickstart, TokenMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Debug, Clone)]
pub struct Request {
    pub kickstart: Kickstart,
    /// Base name of the outputs (mic: the kickstart's file name without `.ks`).
    pub name: String,
    pub image_type: ImageType,
    pub arch: Arch,
    /// `--release`: dnf's `$releasever` and mic's release files (`release::finish`); `name`
    /// and `outdir` are already the release's.
    pub release: Option<String>,
    pub tokens: TokenMap,
    pub outdir: PathBuf,
    pub cachedir: Option<PathBuf>,
    /// Where the work folder goes; default: inside `outdir`, so results move by rename.
    pub tmpdir: Option<PathBuf>,
    pub pack_to: Option<String>,
    pub copy_kernel: bool,
    /// `--record-pkgs`: the records beyond the package list.
    pub record: crate::record::Kinds,
    pub compress_gz: bool,
    /// mic2's `--genchecksum`: SHA-256 of every output, in `SHA256SUMS` and `result.json`.
    pub checksums: bool,
    /// Proxy for the remote repositories that name none (`--proxy`).
    pub proxy: Option<String>,
    /// Found before the build (reading the command line): warned as the build starts.
    pub early_warnings: Vec<String>,
}

/// Builds the image; `result.json` is written to `outdir` whether it succeeds or not.
pub fn create(req: &Request) -> Result<BuildResult> {
    // dnf and scripts run in other folders: every path is made absolute first.
    let abs = |p: &Path| std::path::absolute(p).map_err(CreateError::io("cannot resolve", p));
    let req = &Request {
        outdir: abs(&req.outdir)?,
        cachedir: req.cachedir.as_deref().map(abs).transpose()?,
        tmpdir: req.tmpdir.as_deref().map(abs).transpose()?,
        ..req.clone()
    };
    let mut result = BuildResult {
        status: "done",
        name: req.name.clone(),
        image_type: req.image_type.to_string(),
        arch: req.arch.to_string(),
        error: None,
        files: Vec::new(),
        phases: Vec::new(),
        packages: 0,
        attachments: Vec::new(),
        warnings: Vec::new(),
    };
    fsio::create_dir_all(&req.outdir)?;
    let warnings = Warnings::default();
    for w in &req.early_warnings {
        warnings.warn(w.clone());
    }
    let outcome = build(req, &mut result, &warnings);
    result.warnings = warnings.take();
    if let Err(e) = &outcome {
        result.status = "failed";
        result.error = Some(e.to_string());
        result.files.clear();
        result.attachments.clear();
    }
    outputs::write_result(&req.outdir, &result)?;
    outcome.map(|()| result)
}

struct Phases<'a> {
    list: &'a mut Vec<Phase>,
}

impl Phases<'_> {
    fn run<T>(&mut self, name: &'static str, f: impl FnOnce() -> Result<T>) -> Result<T> {
        check_cancelled()?;
        tracing::info!("phase: {name}");
        let started = Instant::now();
        let r = f();
        let seconds = (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0;
        self.list.push(Phase { name, seconds });
        r
    }
}

fn build(req: &Request, result: &mut BuildResult, warn: &Warnings) -> Result<()> {
    refuse_unbuildable(req, warn)?;
    let plan = Plan::of(&req.kickstart);
    tools::check(req.image_type, req.arch, &plan)?;
    let volumes = volumes_for(req.image_type, &plan)?;
    let work = TempDir::new_in(req.tmpdir.as_deref().unwrap_or(&req.outdir), ".img-creator-")?;
    let root = work.path().join("root");
    let out = work.path().join("out");
    for d in [&root, &out] {
        fsio::create_dir_all(d)?;
    }
    let env = ScriptEnv { root: &root, name: &req.name, out_dir: &out, tokens: &req.tokens, warn, arch: req.arch };
    let mut phases = Phases { list: &mut result.phases };

    let releasever = req.release.clone().unwrap_or_else(|| install::DEFAULT_RELEASEVER.to_owned());
    let install = install::Install {
        root: &root,
        plan: &plan,
        arch: req.arch.as_str(),
        releasever: &releasever,
        cachedir: req.cachedir.as_deref(),
        work: work.path(),
        proxy: req.proxy.as_deref(),
        record_urls: req.record.url,
    };
    // In a root of its own: the image's root stays empty for %pre.
    let resolve_root = work.path().join("resolve-root");
    phases.run("resolve", || crate::resolve::check(&install::Install { root: &resolve_root, ..install }, warn))?;
    phases.run("pre-scripts", || run_scripts(&plan, ScriptKind::Pre, &env))?;
    let urls = phases.run("install", || install.run())?;
    phases.run("configure", || crate::configure::apply(&root, &plan, &volumes, req.arch, warn))?;
    phases.run("post-scripts", || run_scripts(&plan, ScriptKind::Post, &env))?;
    let packages = phases.run("manifest", || crate::record::write(&root, &out, &req.name, req.record, &urls, warn))?;
    result.packages = packages;
    // Kept aside until the image's extras are done: gz and --pack-to act on the images only.
    let attached = work.path().join("attachments");
    fsio::create_dir_all(&attached)?;
    result.attachments =
        phases.run("attachments", || copy_attachments(req, &plan, &volumes, &root, &attached, warn))?;
    // The records stay beside the image as well.
    let companions = file_names(&out)?;
    let boot = phases.run("image", || make_image(req, &plan, &volumes, &root, work.path(), &out, warn))?;
    phases.run("extras", || extras(req, boot.as_ref(), &out, &companions))?;
    attachments::move_into(&attached, &result.attachments, &out)?;
    phases.run("pack-scripts", || run_scripts(&plan, ScriptKind::Pack, &env))?;
    if let Some(r) = &req.release {
        phases.run("release", || crate::release::finish(&out, &req.name, &req.kickstart.to_text(), r))?;
    }
    phases.run("checksums", || {
        result.files = outputs::describe_files(&out, req.checksums)?;
        if req.image_type == ImageType::Raw {
            describe_raw(req, &volumes, &out, &mut result.files)?;
        }
        if req.checksums {
            outputs::write_checksums(&out, &result.files)?;
        }
        Ok(())
    })?;
    publish(&out, &req.outdir)
}

/// The one check ([`crate::check`]), before anything runs: its errors stop the build, its
/// warnings are kept with the result.
fn refuse_unbuildable(req: &Request, warn: &Warnings) -> Result<()> {
    if let Some(why) = crate::check::target(req.image_type, req.arch) {
        return Err(CreateError::Unsupported(why));
    }
    let (errors, warnings): (Vec<Diagnostic>, Vec<Diagnostic>) =
        crate::check::check(&req.kickstart, req.image_type).into_iter().partition(Diagnostic::is_error);
    for w in warnings {
        warn.warn(w.to_string());
    }
    for e in &errors {
        tracing::error!("{e}");
    }
    match errors.first() {
        Some(d) => {
            let first = format!("{}:{}:{}: {}", d.file, d.line, d.column, d.message);
            Err(CreateError::Refused { first, more: errors.len() - 1 })
        }
        None => Ok(()),
    }
}

/// The volumes of a checked kickstart; for `fs`, only those its fstab can name (the check
/// warned about the rest).
fn volumes_for(t: ImageType, plan: &Plan) -> Result<Vec<Volume>> {
    let mut seeds = vec![[0u8; 16]; plan.partitions.len()];
    for seed in &mut seeds {
        fsio::random(seed)?;
    }
    if t == ImageType::Fs {
        let mut volumes: Vec<Volume> = Vec::new();
        for (p, seed) in plan.partitions.iter().zip(seeds) {
            match layout::volume(p, seed) {
                Ok(v) if layout::clash(&volumes, &v).is_none() => volumes.push(v),
                _ => {}
            }
        }
        return Ok(volumes);
    }
    let mut seeds = seeds.into_iter();
    let mut volumes =
        crate::layout::volumes(&plan.partitions, || seeds.next().unwrap_or_default()).map_err(CreateError::Image)?;
    crate::layout::attach_btrfs(&mut volumes, &plan.btrfs).map_err(|e| CreateError::Image(e.to_string()))?;
    if matches!(t, ImageType::Loop | ImageType::Raw) || t.is_converted_disk() {
        disk::subvolumes_allowed(&volumes)?;
    }
    Ok(volumes)
}

/// mic runs chroot and `--nochroot` scripts of one kind in document order.
fn run_scripts(plan: &Plan, kind: ScriptKind, env: &ScriptEnv) -> Result<()> {
    for s in plan.scripts.iter().filter(|s| s.kind == kind) {
        check_cancelled()?;
        // %pre and %pack run before there is a root to chroot into, or after it is packed.
        let s = if kind == ScriptKind::Post { s.clone() } else { crate::plan::Script { nochroot: true, ..s.clone() } };
        scripts::run(&s, env)?;
    }
    Ok(())
}

/// `%attachment`: never under a name one of the build's own outputs takes (all start with
/// the image's name, or are a loop image's volume file, or are written by `outputs`).
fn copy_attachments(
    req: &Request,
    plan: &Plan,
    volumes: &[Volume],
    root: &Path,
    out: &Path,
    warn: &Warnings,
) -> Result<Vec<Attached>> {
    let name = req.name.as_str();
    let reserved = |n: &str| {
        n == name
            || n.strip_prefix(name).is_some_and(|rest| rest.starts_with(['.', '-']))
            || [outputs::RESULT_FILE, outputs::CHECKSUM_FILE].contains(&n)
            || (req.image_type == ImageType::Loop && volumes.iter().any(|v| v.loop_name() == n))
    };
    let max_files = attachments::MAX_FILES;
    let req = attachments::Request {
        entries: &plan.attachments,
        root,
        out,
        reserved: &reserved,
        max_files,
        max_bytes: attachments::MAX_TOTAL_BYTES,
    };
    attachments::copy(&req, warn)
}

/// Builds the image files in `out`; returns the boot files for `--copy-kernel`.
fn make_image(
    req: &Request,
    plan: &Plan,
    volumes: &[Volume],
    root: &Path,
    work: &Path,
    out: &Path,
    warn: &Warnings,
) -> Result<Option<boot::BootFiles>> {
    let name = &req.name;
    match req.image_type {
        ImageType::Fs => {
            let boot = kernel_files(root)?;
            let dst = out.join(name);
            std::fs::rename(root, &dst).map_err(CreateError::io("cannot move the tree to", &dst))?;
            Ok(boot.map(|b| relocate(b, root, &dst)))
        }
        ImageType::Loop => {
            disk::build_loop(root, volumes, work, out)?;
            kernel_files(root)
        }
        ImageType::Livecd | ImageType::Liveusb => {
            let (files, init) = boot::live_boot_files(root, &work.join("initrd.img"), warn)?;
            let stick = req.image_type == ImageType::Liveusb && init == boot::LiveInit::Dracut;
            if let Some(w) = stick.then(|| boot::dracut::unreadable_stick(root, &files.kver)).flatten() {
                warn.warn(w);
            }
            let label = live::volume_label(name);
            let append = plan.bootloader.append.clone().unwrap_or_default();
            let timeout = plan.bootloader.timeout.unwrap_or(1).clamp(0, 600) as u32;
            let medium = live::stage_medium(root, &files, init, &label, &append, timeout, work)?;
            if req.image_type == ImageType::Livecd {
                live::build_iso(&medium, &out.join(format!("{name}.iso")))?;
            } else {
                disk::build_liveusb(&medium.dir, &label, work, &out.join(format!("{name}.usbimg")))?;
            }
            Ok(Some(files))
        }
        t => {
            let entry = disk_boot_entry(plan, root)?;
            let dir = if t == ImageType::Raw { out } else { work };
            let disks: Vec<(layout::Disk, disk::RawDisk)> = layout::disks(volumes)
                .into_iter()
                .map(|d| {
                    let path = dir.join(layout::disk_file(name, volumes, &d, "raw"));
                    let raw = disk::RawDisk { volumes: d.volumes.clone(), path };
                    (d, raw)
                })
                .collect();
            let raws: Vec<disk::RawDisk> = disks.iter().map(|(_, r)| r.clone()).collect();
            disk::build_raw_disks(
                req.arch,
                root,
                volumes,
                &plan.bootloader,
                entry.as_ref().map(|e| &e.0),
                work,
                &raws,
            )?;
            if t != ImageType::Raw {
                for (d, raw) in &disks {
                    disk::convert(&raw.path, t.as_str(), &out.join(layout::disk_file(name, volumes, d, t.as_str())))?;
                    let _ = std::fs::remove_file(&raw.path);
                }
            }
            Ok(entry.map(|e| e.1))
        }
    }
}

/// mic's `NAME.xml` for a raw image, naming each disk file as it is now (gzipped with
/// --compress-image) with the checksums just made; added to the outputs.
fn describe_raw(req: &Request, volumes: &[Volume], out: &Path, files: &mut Vec<outputs::OutputFile>) -> Result<()> {
    let disks: Vec<String> = layout::disks(volumes)
        .iter()
        .map(|d| layout::disk_file(&req.name, volumes, d, "raw"))
        .map(|f| if !out.join(&f).exists() && out.join(format!("{f}.gz")).exists() { format!("{f}.gz") } else { f })
        .collect();
    let mut items = Vec::new();
    img_core::kickstart::model::walk(&req.kickstart.items, &mut items);
    let networks =
        items.iter().filter(|i| matches!(i, img_core::kickstart::Item::Command(c) if c.name == "network")).count();
    let arch = req.arch.to_string();
    let xml = disk::Description { name: &req.name, arch: &arch, disks: &disks, networks, files }.xml();
    let file = format!("{}.xml", req.name);
    fsio::write(&out.join(&file), &xml)?;
    let sha256 = req.checksums.then(|| outputs::sha256_file(&out.join(&file))).transpose()?;
    files.push(outputs::OutputFile { name: file, size: xml.len() as u64, sha256 });
    files.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(())
}

/// The kernel the disk boots and its initramfs (the image's own, else one IMG makes).
fn disk_boot_entry(plan: &Plan, root: &Path) -> Result<Option<(disk::BootEntry, boot::BootFiles)>> {
    if plan.bootloader.disabled {
        return Ok(None);
    }
    let files = boot::disk_boot_files(root)?;
    let in_image = |p: &Path| format!("/{}", p.strip_prefix(root).unwrap_or(p).display());
    let entry =
        disk::BootEntry { kernel: in_image(&files.kernel), initrd: in_image(&files.initrd), label: "linux".into() };
    Ok(Some((entry, files)))
}

/// The image's kernel and initramfs if it has them (for `--copy-kernel` on fs/loop).
fn kernel_files(root: &Path) -> Result<Option<boot::BootFiles>> {
    let Ok((kver, kernel)) = boot::find_kernel(root) else { return Ok(None) };
    let initrd = boot::existing_initramfs(root, &kver).unwrap_or_default();
    Ok(Some(boot::BootFiles { kernel, initrd, kver }))
}

fn extras(req: &Request, boot: Option<&boot::BootFiles>, out: &Path, companions: &[String]) -> Result<()> {
    // Compression and packing act on the images, not on the kernel copies: mic kept those
    // beside the archive.
    let mut images: Vec<PathBuf> =
        file_names(out)?.into_iter().filter(|n| !companions.contains(n)).map(|n| out.join(n)).collect();
    if req.copy_kernel {
        copy_kernel(req, boot, out)?;
    }
    if req.compress_gz {
        for f in &mut images {
            crate::cmd::Cmd::new("gzip")
                .args(["-n", "-f"])
                .arg(&*f)
                .run()
                .map_err(CreateError::in_phase("compressing"))?;
            let gz = format!("{}.gz", f.file_name().unwrap_or_default().to_string_lossy());
            f.set_file_name(gz);
        }
    }
    if let Some(pack) = &req.pack_to {
        pack_to(req, pack, out, &images)?;
    }
    Ok(())
}

/// The regular files directly in `dir`.
fn file_names(dir: &Path) -> Result<Vec<String>> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir).map_err(CreateError::io("cannot list", dir))?.flatten() {
        if e.file_type().is_ok_and(|t| t.is_file()) {
            v.push(e.file_name().to_string_lossy().into_owned());
        }
    }
    Ok(v)
}

fn copy_kernel(req: &Request, boot: Option<&boot::BootFiles>, out: &Path) -> Result<()> {
    let Some(b) = boot else {
        return Err(CreateError::Image("--copy-kernel: the image has no kernel in /boot".into()));
    };
    let dst = out.join(format!("{}-vmlinuz-{}", req.name, b.kver));
    std::fs::copy(&b.kernel, &dst).map_err(CreateError::io("cannot copy the kernel to", &dst))?;
    if b.initrd.is_file() {
        let dst = out.join(format!("{}-initrd-{}.img", req.name, b.kver));
        std::fs::copy(&b.initrd, &dst).map_err(CreateError::io("cannot copy the initramfs to", &dst))?;
    }
    Ok(())
}

/// `--pack-to`: the images (for `fs`, the tree's contents) in one archive, replacing them;
/// `pack` is already a plain file name (`pack::file_name`).
fn pack_to(req: &Request, pack: &str, out: &Path, images: &[PathBuf]) -> Result<()> {
    let (tree, members) = if req.image_type == ImageType::Fs {
        (Some(req.name.as_str()), vec![req.name.clone()])
    } else {
        (None, images.iter().filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned())).collect())
    };
    crate::pack::archive(out, pack, tree, &members)?;
    for m in members {
        let p = out.join(m);
        let _ = if p.is_dir() { std::fs::remove_dir_all(&p) } else { std::fs::remove_file(&p) };
    }
    Ok(())
}

/// Moves the finished outputs into place, replacing files of an earlier build.
fn publish(out: &Path, outdir: &Path) -> Result<()> {
    for e in std::fs::read_dir(out).map_err(CreateError::io("cannot list", out))?.flatten() {
        let dst = outdir.join(e.file_name());
        if dst.is_dir() {
            let _ = std::fs::remove_dir_all(&dst);
        }
        match std::fs::rename(e.path(), &dst) {
            Err(err) if err.raw_os_error() == Some(libc::EXDEV) => copy_across(&e.path(), &dst)?,
            r => r.map_err(CreateError::io("cannot move the result to", &dst))?,
        }
    }
    Ok(())
}

/// `--tmpdir` on another filesystem than `--outdir` (in the build VM, the VM's disk and a
/// shared folder): a sparse-preserving copy under a temporary name, then a rename, so the
/// output folder never holds a half-copied image.
fn copy_across(src: &Path, dst: &Path) -> Result<()> {
    let name = dst.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let partial = dst.with_file_name(format!(".{name}.partial"));
    Cmd::new("cp")
        .args(["-a", "--sparse=always", "--"])
        .arg(src)
        .arg(&partial)
        .run()
        .map_err(CreateError::in_phase("publishing"))?;
    std::fs::rename(&partial, dst).map_err(CreateError::io("cannot move the result to", dst))?;
    let _ = if src.is_dir() { std::fs::remove_dir_all(src) } else { std::fs::remove_file(src) };
    Ok(())
}

fn relocate(b: boot::BootFiles, from: &Path, to: &Path) -> boot::BootFiles {
    let moved = |p: PathBuf| p.strip_prefix(from).map(|rel| to.join(rel)).unwrap_or(p);
    boot::BootFiles { kernel: moved(b.kernel), initrd: moved(b.initrd), kver: b.kver }
}
