//! The build's first phase: dnf resolves the package set against the kickstart's repos
//! (metadata only, nothing downloaded or installed) so a missing package or group stops
//! the build at once, each named with its kickstart line and the repos searched.
//! The same code serves `img-client ks check --resolve` on the user's machine.

use crate::cmd::Finished;
use crate::error::{CreateError, Result};
use crate::install::{dnf_error, exclude_args, Install};
use crate::warnings::Warnings;
use img_core::kickstart::{PackageEntry, PackageKind};
use std::fmt;

/// One repo dnf searched, its URL without credentials (it ends up in logs and job pages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Searched {
    pub name: String,
    pub url: String,
}

/// The kickstart's entries no repo has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unresolved {
    pub missing: Vec<PackageEntry>,
    pub repos: Vec<Searched>,
}

impl Unresolved {
    /// `package `x` is not in any of the repositories (fixture: file:///srv/repo)`.
    pub fn message(&self, e: &PackageEntry) -> String {
        format!("{} `{}` is not in any of the repositories ({})", noun(e.kind), e.name, self.searched())
    }

    /// The warning for a miss `%packages --ignoremissing` lets the build skip.
    pub fn skipped(&self, e: &PackageEntry) -> String {
        format!("{}; skipped (--ignoremissing)", self.message(e))
    }

    fn searched(&self) -> String {
        if self.repos.is_empty() {
            return "the kickstart enables none".to_owned();
        }
        self.repos.iter().map(|r| format!("{}: {}", r.name, r.url)).collect::<Vec<_>>().join(", ")
    }
}

impl fmt::Display for Unresolved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let each: Vec<String> =
            self.missing.iter().map(|e| format!("{} `{}` ({}:{})", noun(e.kind), e.name, e.file, e.line)).collect();
        let n = each.len();
        write!(
            f,
            "{n} %packages entr{} not in any of the repositories ({}): {}",
            if n == 1 { "y is" } else { "ies are" },
            self.searched(),
            each.join(", ")
        )
    }
}

fn noun(kind: PackageKind) -> &'static str {
    match kind {
        PackageKind::Group | PackageKind::ExcludeGroup => "group",
        PackageKind::Environment => "environment",
        PackageKind::Package | PackageKind::Exclude => "package",
    }
}

/// The build's phase: an error naming every miss, or with `%packages --ignoremissing` a
/// warning for each and the build goes on (dnf then skips them, as mic did).
pub fn check(install: &Install, warn: &Warnings) -> Result<()> {
    let unresolved = resolve(install)?;
    if unresolved.missing.is_empty() {
        return Ok(());
    }
    if !install.plan.packages_options.ignoremissing {
        return Err(CreateError::Unresolved(unresolved));
    }
    for e in &unresolved.missing {
        warn.warn(format!("{}:{}: {}", e.file, e.line, unresolved.skipped(e)));
    }
    Ok(())
}

/// Asks dnf for the transaction it would run (`--assumeno`) and reads what it could not find.
/// `strict=False` makes dnf list every miss instead of stopping at the first kind of one.
pub fn resolve(install: &Install) -> Result<Unresolved> {
    let mut specs = install.plan.prepackages.clone();
    specs.extend(install.specs()?);
    let dnf = install.setup()?;
    let ask = |strict: bool| {
        let cmd = install.dnf_cmd(&dnf).args(exclude_args(&install.plan.excludes));
        let cmd = if strict { cmd } else { cmd.arg("--setopt=strict=False") };
        let out = cmd.args(["--assumeno", "install"]).args(&specs).output();
        out.map_err(CreateError::in_phase("resolving packages"))
    };
    let out = ask(false)?;
    for line in out.stdout.lines() {
        tracing::debug!(target: "img::cmd::out", "{line}");
    }
    let missing = Misses::read(&out.stdout, &out.stderr).entries(&install.plan.package_entries);
    let repos = searched(install);
    if !missing.is_empty() {
        return Ok(Unresolved { missing, repos });
    }
    let broken = out.stdout.contains("Skipping packages with broken dependencies");
    resolved(out)?;
    if broken && !install.plan.packages_options.ignoremissing {
        // Found but not installable together: dnf's strict answer names the problem.
        resolved(ask(true)?)?;
    }
    Ok(Unresolved { missing, repos })
}

/// `--assumeno` ends a good resolve with "Operation aborted" and status 1; other failures
/// (an unreachable repo, a conflict) are dnf's errors.
fn resolved(out: Finished) -> Result<()> {
    if out.stderr.iter().any(|l| l.trim().starts_with("Operation aborted")) {
        return Ok(());
    }
    out.into_output().map(|_| ()).map_err(dnf_error)
}

/// The names dnf reported missing, as it spells them (dnf 4 and dnf 5).
#[derive(Debug, Default, PartialEq, Eq)]
struct Misses {
    packages: Vec<String>,
    groups: Vec<String>,
}

impl Misses {
    fn read(stdout: &str, stderr: &[String]) -> Misses {
        let mut m = Misses::default();
        for line in stdout.lines().chain(stderr.iter().map(String::as_str)).map(str::trim) {
            if let Some(name) = line.strip_prefix("No match for argument:") {
                // dnf 5 reports a missing `@group` this way too.
                match name.trim().strip_prefix('@') {
                    Some(group) => m.groups.push(group.to_owned()),
                    None => m.packages.push(name.trim().to_owned()),
                }
            } else if let Some(names) = line.strip_prefix("Error: Unable to find a match:") {
                m.packages.extend(names.split_whitespace().map(str::to_owned));
            } else if let Some(name) = group_miss(line) {
                m.groups.push(name.to_owned());
            } else if let Some(name) = wrong_arch(line) {
                // Only builds for other arches: for this one it is missing.
                m.packages.push(name.to_owned());
            }
        }
        m
    }

    /// Each kickstart entry a miss stands for, in document order.
    fn entries(&self, all: &[PackageEntry]) -> Vec<PackageEntry> {
        all.iter()
            .filter(|e| match e.kind {
                PackageKind::Package => self.packages.contains(&e.name),
                PackageKind::Group => self.groups.iter().any(|g| g.eq_ignore_ascii_case(&e.name)),
                _ => false,
            })
            .cloned()
            .collect()
    }
}

/// `Module or Group 'x' is not available.` / `… does not exist.` (dnf 4), `No match for group 'x'`.
/// (Not dnf 4's `No match for group package "x"`: a group member the kickstart excluded.)
fn group_miss(line: &str) -> Option<&str> {
    let rest = ["Module or Group '", "Group '", "No match for group '"].iter().find_map(|p| line.strip_prefix(p))?;
    let (name, tail) = rest.rsplit_once('\'')?;
    let tail = tail.trim();
    (tail.is_empty() || tail.contains("not available") || tail.contains("does not exist")).then_some(name)
}

/// `- package busybox-1.0-1.x86_64 does not have a compatible architecture` → `busybox`.
fn wrong_arch(line: &str) -> Option<&str> {
    let nevra = line.strip_prefix("- package ")?.strip_suffix(" does not have a compatible architecture")?;
    let (nevr, _arch) = nevra.rsplit_once('.')?;
    let (nev, _release) = nevr.rsplit_once('-')?;
    Some(nev.rsplit_once('-')?.0)
}

fn searched(install: &Install) -> Vec<Searched> {
    install
        .plan
        .repos
        .iter()
        .filter(|r| !r.disable)
        .map(|r| Searched {
            name: r.name.clone(),
            url: without_credentials(r.baseurl.as_deref().or(r.mirrorlist.as_deref()).unwrap_or("")),
        })
        .collect()
}

/// `https://user:pw@host/x` → `https://host/x`.
pub fn without_credentials(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, kind: PackageKind, line: usize) -> PackageEntry {
        PackageEntry { name: name.into(), kind, prepackage: false, file: "t.ks".into(), line, column: 1 }
    }

    #[test]
    fn reads_dnf4_and_dnf5_misses() {
        // dnf 4.14 with strict=False: packages on stdout, groups on stderr.
        let stdout = "Last metadata expiration check: 0:00:11 ago.\nNo match for argument: nosuch1\n\
                      No match for argument: nosuch2\nDependencies resolved.\n";
        let stderr = ["Module or Group 'nogroup' is not available.".to_owned(), "Operation aborted.".to_owned()];
        let m = Misses::read(stdout, &stderr);
        assert_eq!(m.packages, ["nosuch1", "nosuch2"]);
        assert_eq!(m.groups, ["nogroup"]);
        let m = Misses::read(
            "",
            &[
                "No match for argument: @No Group".to_owned(),
                "Module or Group 'gone' does not exist.".to_owned(),
                "Error: Unable to find a match: a b".to_owned(),
                "No match for group package \"bloat\"".to_owned(),
                "  - package my-tool-1:2.0-3.x86_64 does not have a compatible architecture".to_owned(),
            ],
        );
        assert_eq!(
            m,
            Misses {
                packages: vec!["a".into(), "b".into(), "my-tool".into()],
                groups: vec!["No Group".into(), "gone".into()]
            }
        );
    }

    #[test]
    fn misses_map_to_every_line_naming_them() {
        let all = [
            entry("busybox", PackageKind::Package, 3),
            entry("nosuch", PackageKind::Package, 4),
            entry("Nogroup", PackageKind::Group, 5),
            entry("nosuch", PackageKind::Exclude, 6),
            entry("nosuch", PackageKind::Package, 7),
        ];
        let m = Misses { packages: vec!["nosuch".into()], groups: vec!["nogroup".into()] };
        let lines: Vec<usize> = m.entries(&all).iter().map(|e| e.line).collect();
        assert_eq!(lines, [4, 5, 7]);
    }

    #[test]
    fn error_names_each_miss_and_the_repos_without_credentials() {
        let u = Unresolved {
            missing: vec![entry("nosuch", PackageKind::Package, 4), entry("nogroup", PackageKind::Group, 5)],
            repos: vec![
                Searched { name: "os".into(), url: without_credentials("https://bob:s3cret@repo.example/os/") },
                Searched { name: "local".into(), url: without_credentials("file:///srv/r") },
            ],
        };
        let repos = "os: https://repo.example/os/, local: file:///srv/r";
        assert_eq!(
            u.to_string(),
            format!("2 %packages entries are not in any of the repositories ({repos}): package `nosuch` (t.ks:4), group `nogroup` (t.ks:5)")
        );
        assert_eq!(u.message(&u.missing[1]), format!("group `nogroup` is not in any of the repositories ({repos})"));
        assert_eq!(without_credentials("http://h:8080/a@b"), "http://h:8080/a@b", "an @ in the path stays");
    }
}
