//! Package installation into an empty root with dnf (`--installroot`), rpm underneath.
//! Hermetic: our own dnf.conf (no host repos), rpm's database inside the root, and the
//! package cache outside the root so builds share it.

use crate::cmd::{Cmd, CmdError};
use crate::error::{CreateError, Result};
use crate::fsio;
use crate::plan::Plan;
use img_core::kickstart::commands::Repo;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Where rpm keeps its database inside the image (Debian's rpm defaults to ~/.rpmdb).
pub const RPM_DBPATH: &str = "/var/lib/rpm";
/// dnf's `$releasever` when the build names no `--release`.
pub const DEFAULT_RELEASEVER: &str = "1";
/// dnf's cache as seen inside the root (its default); a link to the shared cache while dnf runs.
const ROOT_CACHE: &str = "var/cache/dnf";

#[derive(Clone, Copy)]
pub struct Install<'a> {
    pub root: &'a Path,
    pub plan: &'a Plan,
    /// rpm's arch name (x86_64, i686, …) for `--forcearch`.
    pub arch: &'a str,
    pub releasever: &'a str,
    /// Shared package cache; `None` keeps it in `work` (thrown away).
    pub cachedir: Option<&'a Path>,
    pub work: &'a Path,
    /// Proxy for the remote repos that name none (`--proxy`); only dnf sees it, not the
    /// image (`repo --save`).
    pub proxy: Option<&'a str>,
    /// `--record-pkgs url`: ask dnf where each package came from while its metadata is here.
    pub record_urls: bool,
}

/// dnf's setup in one root: our dnf.conf, rpm's home, the shared cache linked in (until dropped).
pub(crate) struct DnfSetup {
    conf: PathBuf,
    home: PathBuf,
    _link: CacheLink,
}

impl Install<'_> {
    /// Installs; returns each package's URL (mic's name → URL) when `record_urls`.
    pub fn run(&self) -> Result<BTreeMap<String, String>> {
        let specs = self.specs()?;
        let dnf = self.setup()?;
        if !self.plan.prepackages.is_empty() {
            tracing::info!("installing {} prepackage(s)", self.plan.prepackages.len());
            self.dnf(&dnf, &self.plan.prepackages, &[])?;
        }
        tracing::info!(
            "installing {} package(s) and {} group(s) from {} repo(s)",
            self.plan.packages.len(),
            self.plan.groups.len(),
            self.plan.repos.iter().filter(|r| !r.disable).count()
        );
        self.dnf(&dnf, &specs, &self.plan.excludes)?;
        let urls = if self.record_urls { self.package_urls(&dnf)? } else { BTreeMap::new() };
        drop(dnf);
        clean_root(self.root)?;
        run_depmod(self.root)?;
        Ok(urls)
    }

    /// What `dnf install` is given: the packages and `@groups`.
    pub(crate) fn specs(&self) -> Result<Vec<String>> {
        let mut specs: Vec<String> = self.plan.packages.clone();
        specs.extend(self.plan.groups.iter().map(|g| format!("@{g}")));
        if specs.is_empty() {
            return Err(CreateError::Packages("the kickstart's %packages section names no packages".into()));
        }
        Ok(specs)
    }

    pub(crate) fn setup(&self) -> Result<DnfSetup> {
        let conf = self.work.join("dnf.conf");
        fsio::write(&conf, dnf_conf(self.plan, self.cachedir.is_some(), self.proxy))?;
        let home = self.work.join("rpm-home");
        fsio::create_dir_all(&home)?;
        // rpm reads ~/.rpmmacros: this is how the database lands in the root without touching the host.
        fsio::write(&home.join(".rpmmacros"), rpm_macros(self.plan))?;
        let cache = self.cachedir.map(Path::to_owned).unwrap_or_else(|| self.work.join("dnf-cache"));
        let _link = CacheLink::new(self.root, &cache)?;
        Ok(DnfSetup { conf, home, _link })
    }

    fn dnf(&self, dnf: &DnfSetup, specs: &[String], excludes: &[String]) -> Result<()> {
        self.dnf_cmd(dnf).args(exclude_args(excludes)).arg("install").args(specs).run().map_err(dnf_error)?;
        Ok(())
    }

    /// Two queries of the metadata dnf just used: which repo each installed package came
    /// from, and where each repo keeps its packages.
    fn package_urls(&self, dnf: &DnfSetup) -> Result<BTreeMap<String, String>> {
        const NEVRA: &str = "%{name}\t%{arch}\t%{epoch}\t%{version}\t%{release}";
        let query = |extra: &[&str], qf: String| {
            self.dnf_cmd(dnf)
                .args(["-q", "repoquery"])
                .args(extra)
                .args(["--qf", &qf])
                .timeout(std::time::Duration::from_secs(600))
                .capture()
                .map_err(CreateError::in_phase("asking dnf where the packages came from"))
        };
        let installed = query(&["--installed"], format!("{NEVRA}\t%{{from_repo}}"))?;
        let available = query(&[], format!("{NEVRA}\t%{{repoid}}\t%{{location}}"))?;
        let basearch = self.arch.parse::<img_core::job::Arch>().map(|a| a.basearch()).unwrap_or(self.arch);
        let baseurl = |id: &str| {
            let repo = self.plan.repos.iter().find(|r| !r.disable && repo_id(&r.name) == id)?;
            let url = repo.baseurl.as_deref()?;
            Some(url.replace("$basearch", basearch).replace("$releasever", self.releasever))
        };
        Ok(crate::record::urls_from(&installed, &available, baseurl))
    }

    pub(crate) fn dnf_cmd(&self, dnf: &DnfSetup) -> Cmd {
        // dnf refuses `install` to non-root users, even with --assumeno (`ks check --resolve`
        // on a user's machine): a user namespace makes the user root for dnf alone.
        // SAFETY: geteuid has no preconditions.
        let dnf_as_root = if unsafe { libc::geteuid() } == 0 {
            Cmd::new("dnf")
        } else {
            Cmd::new("unshare").args(["--map-root-user", "dnf"])
        };
        // rpm's scriptlets run under the target's personality (i686 on x86_64: `uname -m`).
        let dnf_as_root = match self.arch.parse::<img_core::job::Arch>() {
            Ok(arch) => dnf_as_root.for_target(arch),
            Err(_) => dnf_as_root,
        };
        dnf_as_root
            .env("HOME", &dnf.home)
            .env("LC_ALL", "C.UTF-8")
            .arg("-c")
            .arg(&dnf.conf)
            .arg("--installroot")
            .arg(self.root)
            .args(["--releasever", self.releasever, "--forcearch", self.arch, "-y", "--noplugins"])
    }
}

pub(crate) fn exclude_args(excludes: &[String]) -> impl Iterator<Item = String> + '_ {
    excludes.iter().map(|x| format!("--exclude={x}"))
}

/// dnf's own message is in the log; the error names the cause in one line.
pub(crate) fn dnf_error(e: CmdError) -> CreateError {
    let tail = e.tail().to_vec();
    let find = |needle: &str| tail.iter().find(|l| l.contains(needle)).map(|l| l.trim().to_owned());
    if let Some(l) = find("Unable to find a match:").or_else(|| find("No match for argument:")) {
        let what = l.rsplit(':').next().unwrap_or("").trim().replace(' ', "`, `");
        return CreateError::Packages(format!("package `{what}` is not in any enabled repo (dnf: {l})"));
    }
    if let Some(l) = find("Failed to download metadata for repo") {
        let repo = l.split('\'').nth(1).unwrap_or("?");
        let why = l.split_once("': ").map_or("", |(_, why)| why);
        return CreateError::Packages(format!("repo `{repo}` is unreachable: {why}"));
    }
    if let Some(l) = find("Problem:").or_else(|| find("nothing provides")) {
        return CreateError::Packages(format!("packages cannot be installed together: {l}"));
    }
    if let Some(l) = find("Error: Transaction test error").or_else(|| find("needs")).filter(|l| l.contains("disk")) {
        return CreateError::NoSpace(format!("not enough disk space to install: {l}"));
    }
    CreateError::in_phase("installing packages")(e)
}

/// dnf's configuration: only the kickstart's repos, nothing from the host; `proxy` for the
/// remote ones without their own.
pub fn dnf_conf(plan: &Plan, keepcache: bool, proxy: Option<&str>) -> String {
    let o = &plan.packages_options;
    let mut s = String::from("[main]\nreposdir=/dev/null\nplugins=0\ninstallonly_limit=0\nskip_if_unavailable=False\n");
    let _ = writeln!(s, "keepcache={}", u8::from(keepcache));
    if o.excludedocs {
        // dnf has no --excludedocs; this is rpm's own flag for it.
        s.push_str("tsflags=nodocs\n");
    }
    if o.ignoremissing {
        s.push_str("strict=False\n");
    }
    let _ = writeln!(s, "install_weak_deps={}", if o.exclude_weakdeps { "False" } else { "True" });
    for r in plan.repos.iter().filter(|r| !r.disable) {
        s.push('\n');
        match proxy.filter(|_| r.proxy.is_none() && is_remote(r)) {
            Some(p) => s.push_str(&repo_section(&Repo { proxy: Some(p.to_owned()), ..r.clone() })),
            None => s.push_str(&repo_section(r)),
        }
    }
    s
}

/// The macros rpm sees while dnf installs: the database's place and, as mic, the locales
/// `%packages --instLangs` keeps (rpm skips other `%lang` files).
pub fn rpm_macros(plan: &Plan) -> String {
    let mut s = format!("%_dbpath {RPM_DBPATH}\n");
    if let Some(langs) = plan.packages_options.inst_langs.as_deref().filter(|l| !l.is_empty()) {
        let _ = writeln!(s, "%_install_langs {langs}");
    }
    s
}

/// Reached over the network (http, https, ftp), so through a proxy if there is one.
fn is_remote(r: &Repo) -> bool {
    [&r.baseurl, &r.mirrorlist]
        .into_iter()
        .flatten()
        .any(|u| ["http://", "https://", "ftp://"].iter().any(|s| u.starts_with(s)))
}

/// One repo as dnf reads it; `$basearch` and `$releasever` are left for dnf to expand.
pub fn repo_section(r: &Repo) -> String {
    let mut s = format!("[{}]\nname={}\n", repo_id(&r.name), r.name);
    let mut kv = |k: &str, v: &str| {
        let _ = writeln!(s, "{k}={v}");
    };
    if let Some(u) = &r.baseurl {
        kv("baseurl", u);
    }
    if let Some(u) = &r.mirrorlist {
        kv("mirrorlist", u);
    }
    match &r.gpgkey {
        Some(k) => {
            kv("gpgcheck", "1");
            kv("gpgkey", k);
        }
        None => kv("gpgcheck", "0"),
    }
    if let Some(v) = &r.ssl_verify {
        kv("sslverify", if v == "no" || v == "0" || v == "false" { "0" } else { "1" });
    }
    if r.disable {
        // Only a saved repo can be disabled here: dnf.conf leaves those out.
        kv("enabled", "0");
    }
    if let Some(p) = r.priority {
        kv("priority", &p.to_string());
    }
    if let Some(c) = r.cost {
        kv("cost", &c.to_string());
    }
    if !r.includepkgs.is_empty() {
        kv("includepkgs", &r.includepkgs.join(","));
    }
    if !r.excludepkgs.is_empty() {
        kv("excludepkgs", &r.excludepkgs.join(","));
    }
    if let Some(p) = &r.proxy {
        kv("proxy", p);
    }
    if let Some(u) = &r.proxyuser {
        kv("proxy_username", u);
    }
    if let Some(p) = &r.proxypasswd {
        kv("proxy_password", p);
    }
    if let Some(u) = &r.user {
        kv("username", u);
    }
    if let Some(p) = &r.passwd {
        kv("password", p);
    }
    s
}

/// dnf repo ids allow letters, digits and `-_.:`.
fn repo_id(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.:".contains(c) { c } else { '_' }).collect()
}

/// `ROOT/var/cache/dnf` → the shared cache while dnf runs; removed afterwards so the
/// image carries neither the link nor the packages.
struct CacheLink {
    link: PathBuf,
}

impl CacheLink {
    fn new(root: &Path, cache: &Path) -> Result<CacheLink> {
        std::fs::create_dir_all(cache).map_err(CreateError::io("cannot create the package cache", cache))?;
        let cache = std::fs::canonicalize(cache).map_err(CreateError::io("cannot open the package cache", cache))?;
        let link = root.join(ROOT_CACHE);
        if let Some(parent) = link.parent() {
            fsio::create_dir_all(parent)?;
        }
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&cache, &link)
            .map_err(CreateError::io("cannot link the package cache at", &link))?;
        Ok(CacheLink { link })
    }
}

impl Drop for CacheLink {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.link);
    }
}

/// What dnf leaves in the root that does not belong in an image.
fn clean_root(root: &Path) -> Result<()> {
    for rel in
        ["var/cache/dnf", "var/log/hawkey.log", "var/log/dnf.log", "var/log/dnf.librepo.log", "var/log/dnf.rpm.log"]
    {
        let p = root.join(rel);
        let _ = if p.is_dir() { std::fs::remove_dir_all(&p) } else { std::fs::remove_file(&p) };
    }
    Ok(())
}

/// busybox's depmod writes only text indexes; the host's writes what kmod needs.
fn run_depmod(root: &Path) -> Result<()> {
    let Ok(dir) = std::fs::read_dir(root.join("lib/modules")) else { return Ok(()) };
    for entry in dir.flatten() {
        let kver = entry.file_name().to_string_lossy().into_owned();
        crate::tools::require("depmod", "kmod", "kernel module indexes")?;
        Cmd::new("depmod").arg("-b").arg(root).arg(&kver).run().map_err(CreateError::in_phase("depmod"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use img_core::kickstart::{parse, ParseOptions, TokenMap};
    use img_core::source::NoFiles;

    #[test]
    fn conf_carries_repo_options_and_package_options() {
        let ks =
            "repo --name=\"os main\" --baseurl=http://h/$basearch/ --includepkgs=a,b --excludepkgs=c --priority=5 \
                  --cost=100 --ssl_verify=no --proxy=http://p:3128 --gpgkey=file:///k\n\
                  repo --name=off --baseurl=file:///x --disable\n%packages --excludedocs --ignoremissing\na\n%end\n";
        let parsed =
            parse(ks, &ParseOptions { file: "t.ks", tokens: &TokenMap::new(), literal_tokens: false }, &NoFiles);
        let conf = dnf_conf(&Plan::of(&parsed.kickstart), true, None);
        for line in [
            "reposdir=/dev/null",
            "keepcache=1",
            "tsflags=nodocs",
            "strict=False",
            "[os_main]",
            "baseurl=http://h/$basearch/",
            "includepkgs=a,b",
            "excludepkgs=c",
            "priority=5",
            "cost=100",
            "sslverify=0",
            "proxy=http://p:3128",
            "gpgcheck=1",
            "gpgkey=file:///k",
        ] {
            assert!(conf.lines().any(|l| l == line), "missing {line:?} in\n{conf}");
        }
        assert!(!conf.contains("[off]"), "disabled repos are left out");
    }

    #[test]
    fn default_proxy_goes_to_remote_repos_without_one() {
        let ks = "repo --name=web --baseurl=http://h/os/\nrepo --name=tls --mirrorlist=https://m/list\n\
                  repo --name=own --baseurl=http://h/x/ --proxy=http://corp:8080\n\
                  repo --name=local --baseurl=file:///srv/r\n";
        let parsed =
            parse(ks, &ParseOptions { file: "t.ks", tokens: &TokenMap::new(), literal_tokens: false }, &NoFiles);
        let conf = dnf_conf(&Plan::of(&parsed.kickstart), true, Some("http://10.0.2.100:3128"));
        let proxy_of = |repo: &str| {
            let section = conf.split("\n\n").find(|s| s.starts_with(&format!("[{repo}]"))).expect(repo);
            section.lines().find_map(|l| l.strip_prefix("proxy=")).map(str::to_owned)
        };
        assert_eq!(proxy_of("web").as_deref(), Some("http://10.0.2.100:3128"));
        assert_eq!(proxy_of("tls").as_deref(), Some("http://10.0.2.100:3128"));
        assert_eq!(proxy_of("own").as_deref(), Some("http://corp:8080"), "a repo's own proxy is kept");
        assert_eq!(proxy_of("local"), None, "local repos need none");
    }

    #[test]
    fn missing_package_is_named() {
        let e = dnf_error(CmdError::Failed {
            program: "dnf".into(),
            status: "exited with status 1".into(),
            tail: vec!["Error: Unable to find a match: nosuchpkg".into()],
        });
        assert!(e.to_string().starts_with("package `nosuchpkg` is not in any enabled repo"), "{e}");
        let e = dnf_error(CmdError::Failed {
            program: "dnf".into(),
            status: "exited with status 1".into(),
            tail: vec!["Error: Failed to download metadata for repo 'gone': Cannot download repomd.xml: x".into()],
        });
        assert_eq!(e.to_string(), "repo `gone` is unreachable: Cannot download repomd.xml: x");
    }
}
