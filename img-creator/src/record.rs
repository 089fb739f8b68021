//! `--record-pkgs`: what mic wrote about the installed packages, in mic's file names and line
//! formats: `NAME.packages` (always: the worker shows it), `NAME.urls`, `NAME.files` and
//! `NAME.license`. A package is named as mic named it, `name.arch [epoch:]version-release`.

use crate::cmd::Cmd;
use crate::error::{CreateError, Result};
use crate::fsio;
use crate::install::RPM_DBPATH;
use crate::warnings::Warnings;
use std::collections::BTreeMap;
use std::path::Path;

/// What `--record-pkgs` may ask for (mic's four; `vcs` was never implemented by mic).
pub const KINDS: &[&str] = &["name", "url", "content", "license"];

/// Which records were asked for; the package list is written either way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Kinds {
    pub url: bool,
    pub content: bool,
    pub license: bool,
}

impl Kinds {
    /// `name,url,content,license` (any subset, in any order).
    pub fn parse(list: &str) -> std::result::Result<Kinds, String> {
        let mut k = Kinds::default();
        for word in list.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            match word {
                "name" => {}
                "url" => k.url = true,
                "content" => k.content = true,
                "license" => k.license = true,
                other => return Err(format!("unknown kind `{other}` (valid: {})", KINDS.join(", "))),
            }
        }
        Ok(k)
    }
}

/// mic's name for a package (`misc.RPM_FMT`); epoch 0 is not written, as rpm and dnf omit it.
pub fn long_name(name: &str, arch: &str, epoch: &str, version: &str, release: &str) -> String {
    match epoch {
        "" | "0" | "(none)" => format!("{name}.{arch} {version}-{release}"),
        e => format!("{name}.{arch} {e}:{version}-{release}"),
    }
}

/// One installed package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    pub long_name: String,
    pub license: String,
}

/// The image's packages from its rpm database, sorted by mic's name.
pub fn installed(root: &Path) -> Result<Vec<Package>> {
    let out = rpm_query(root, "%{NAME}\\t%{ARCH}\\t%{EPOCHNUM}\\t%{VERSION}\\t%{RELEASE}\\t%{LICENSE}\\n")?;
    Ok(parse_installed(&out))
}

fn parse_installed(text: &str) -> Vec<Package> {
    let mut v: Vec<Package> = text
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.splitn(6, '\t').collect();
            let [name, arch, epoch, version, release, license] = f[..] else { return None };
            // Imported signing keys are rpm database entries, not installed packages.
            (name != "gpg-pubkey").then(|| Package {
                long_name: long_name(name, arch, epoch, version, release),
                license: license.to_owned(),
            })
        })
        .collect();
    v.sort_by(|a, b| a.long_name.cmp(&b.long_name));
    v
}

/// Every package's directories (with a trailing `/`) then files, as mic's yum backend listed
/// them; `%ghost` entries are left out, as yum did.
pub fn contents(root: &Path) -> Result<BTreeMap<String, Vec<String>>> {
    // `%{=TAG}` repeats the package's own values on each file line, so arrays iterate together.
    let qf = "[%{=NAME}\\t%{=ARCH}\\t%{=EPOCHNUM}\\t%{=VERSION}\\t%{=RELEASE}\\t%{FILEMODES}\\t%{FILEFLAGS}\\t%{FILENAMES}\\n]";
    let out = rpm_query(root, qf)?;
    Ok(parse_contents(&out))
}

const RPMFILE_GHOST: u32 = 1 << 6;
const S_IFMT: u32 = 0o170000;
const S_IFDIR: u32 = 0o040000;

fn parse_contents(text: &str) -> BTreeMap<String, Vec<String>> {
    let mut dirs: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut files: BTreeMap<String, Vec<String>> = BTreeMap::new();
    // Which list the last path went to: a name with a newline continues on the next line.
    let mut last: Option<(bool, String)> = None;
    for line in text.lines() {
        let f: Vec<&str> = line.splitn(8, '\t').collect();
        let parsed = match f[..] {
            [name, arch, epoch, version, release, mode, flags, path] => mode
                .parse::<u32>()
                .ok()
                .zip(flags.parse::<u32>().ok())
                .map(|(mode, flags)| (long_name(name, arch, epoch, version, release), mode, flags, path)),
            _ => None,
        };
        let Some((pkg, mode, flags, path)) = parsed else {
            if let Some((is_dir, pkg)) = &last {
                let list = if *is_dir { dirs.get_mut(pkg) } else { files.get_mut(pkg) };
                if let Some(p) = list.and_then(|l| l.last_mut()) {
                    p.push_str("\\n");
                    p.push_str(line);
                }
            }
            continue;
        };
        if flags & RPMFILE_GHOST != 0 {
            last = None;
            continue;
        }
        let is_dir = mode & S_IFMT == S_IFDIR;
        let list = if is_dir { &mut dirs } else { &mut files };
        list.entry(pkg.clone()).or_default().push(path.to_owned());
        last = Some((is_dir, pkg));
    }
    let mut all: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (pkg, ds) in dirs {
        all.entry(pkg).or_default().extend(ds.into_iter().map(|d| d + "/"));
    }
    for (pkg, fs) in files {
        all.entry(pkg).or_default().extend(fs);
    }
    all
}

/// rpm opens ROOT/var/lib/rpm as the host sees it: %post may have made it a link out of the
/// image, whose database must not become the image's record.
fn rpm_query(root: &Path, qf: &str) -> Result<String> {
    let db = root.join(RPM_DBPATH.trim_start_matches('/'));
    let inside = |p: &Path| std::fs::canonicalize(p).ok();
    match (inside(root), inside(&db)) {
        (Some(r), Some(d)) if d.starts_with(&r) => {}
        _ => {
            return Err(CreateError::Image(format!(
                "the image's rpm database {RPM_DBPATH} is missing or points outside the image"
            )))
        }
    }
    Cmd::new("rpm")
        .arg("--root")
        .arg(root)
        .args(["--dbpath", RPM_DBPATH, "-qa", "--qf", qf])
        .capture()
        .map_err(CreateError::in_phase("reading the image's rpm database"))
}

/// `NAME.packages`: one package per line, sorted.
pub fn names_text(pkgs: &[Package]) -> String {
    pkgs.iter().map(|p| format!("{}\n", p.long_name)).collect()
}

/// `NAME.urls`: where each package came from (its repo's baseurl joined with its location),
/// one per line, sorted.
pub fn urls_text(urls: &BTreeMap<String, String>) -> String {
    let mut v: Vec<&String> = urls.values().collect();
    v.sort();
    v.into_iter().map(|u| format!("{u}\n")).collect()
}

/// `NAME.files`: each package, its entries indented by four spaces, and a blank line.
pub fn files_text(pkgs: &[Package], contents: &BTreeMap<String, Vec<String>>) -> String {
    let mut s = String::new();
    for p in pkgs {
        s.push_str(&p.long_name);
        s.push('\n');
        for item in contents.get(&p.long_name).into_iter().flatten() {
            s.push_str("    ");
            s.push_str(item);
            s.push('\n');
        }
        s.push('\n');
    }
    s
}

/// `NAME.license`: a summary (licenses by package count, most first) and each license's
/// packages. mic broke ties between equal counts by install order; here by name.
pub fn license_text(pkgs: &[Package]) -> String {
    let mut by: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for p in pkgs {
        by.entry(p.license.as_str()).or_default().push(p.long_name.as_str());
    }
    let mut order: Vec<(&str, Vec<&str>)> = by.into_iter().collect();
    order.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(b.0)));
    let mut s = String::from("Summary:\n");
    for (license, names) in &order {
        s.push_str(&format!("    - {license}: {}\n", names.len()));
    }
    s.push_str("\nDetails:\n");
    for (license, names) in &order {
        s.push_str(&format!("    - {license}:\n"));
        let mut names = names.clone();
        names.sort();
        for n in names {
            s.push_str(&format!("        - {n}\n"));
        }
        s.push('\n');
    }
    s
}

/// dnf's view after installing (`repoquery`, fields tab-separated): the installed packages'
/// repos (`name arch epoch version release from_repo`) and what the repos offer
/// (`name arch epoch version release repoid location`). Gives mic's name → URL.
pub fn urls_from(
    installed: &str,
    available: &str,
    baseurl: impl Fn(&str) -> Option<String>,
) -> BTreeMap<String, String> {
    let mut location: BTreeMap<(String, &str), &str> = BTreeMap::new();
    for l in available.lines() {
        if let [name, arch, epoch, version, release, repo, loc] = l.splitn(7, '\t').collect::<Vec<_>>()[..] {
            location.entry((long_name(name, arch, epoch, version, release), repo)).or_insert(loc);
        }
    }
    let mut urls = BTreeMap::new();
    for l in installed.lines() {
        let [name, arch, epoch, version, release, repo] = l.splitn(6, '\t').collect::<Vec<_>>()[..] else { continue };
        let pkg = long_name(name, arch, epoch, version, release);
        let (Some(loc), Some(base)) = (location.get(&(pkg.clone(), repo)), baseurl(repo)) else { continue };
        urls.insert(pkg, join_url(&base, loc));
    }
    urls
}

/// mic's join: the baseurl without its query, the location without a leading `./`.
pub fn join_url(baseurl: &str, location: &str) -> String {
    let base = baseurl.split('?').next().unwrap_or(baseurl);
    let loc = location.strip_prefix("./").unwrap_or(location);
    if base.ends_with('/') {
        format!("{base}{loc}")
    } else {
        format!("{base}/{loc}")
    }
}

/// Writes the records into `out`; returns how many packages the image has.
pub fn write(
    root: &Path,
    out: &Path,
    name: &str,
    kinds: Kinds,
    urls: &BTreeMap<String, String>,
    warn: &Warnings,
) -> Result<usize> {
    let pkgs = installed(root)?;
    let file = |suffix: &str| out.join(format!("{name}{suffix}"));
    fsio::write(&file(".packages"), names_text(&pkgs))?;
    if kinds.url {
        let unknown: Vec<&str> = pkgs.iter().map(|p| p.long_name.as_str()).filter(|p| !urls.contains_key(*p)).collect();
        if !unknown.is_empty() {
            let shown = unknown.iter().take(5).copied().collect::<Vec<_>>().join(", ");
            warn.warn(format!(
                "--record-pkgs url: {name}.urls lacks {} package(s) whose repo has no baseurl or that \
                 %post installed ({shown}{})",
                unknown.len(),
                if unknown.len() > 5 { ", …" } else { "" }
            ));
        }
        fsio::write(&file(".urls"), urls_text(urls))?;
    }
    if kinds.content {
        fsio::write(&file(".files"), files_text(&pkgs, &contents(root)?))?;
    }
    if kinds.license {
        fsio::write(&file(".license"), license_text(&pkgs))?;
    }
    Ok(pkgs.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkg(long_name: &str, license: &str) -> Package {
        Package { long_name: long_name.into(), license: license.into() }
    }

    #[test]
    fn names_are_mics() {
        let v = parse_installed(
            "zsh\tx86_64\t0\t5.9\t2\tMIT\nperl\tx86_64\t4\t5.36\t1\tGPL+\ngpg-pubkey\t(none)\t0\tabc\tdef\tpubkey\n",
        );
        assert_eq!(names_text(&v), "perl.x86_64 4:5.36-1\nzsh.x86_64 5.9-2\n");
        assert_eq!(Kinds::parse("name,content").unwrap(), Kinds { content: true, ..Kinds::default() });
        assert_eq!(Kinds::parse("vcs").unwrap_err(), "unknown kind `vcs` (valid: name, url, content, license)");
    }

    #[test]
    fn contents_iterate_every_file_of_every_package() {
        let text = "a\tnoarch\t0\t1\t1\t16877\t0\t/usr/share/a\n\
                    a\tnoarch\t0\t1\t1\t33188\t0\t/usr/share/a/one\n\
                    a\tnoarch\t0\t1\t1\t33188\t64\t/var/log/a.log\n\
                    a\tnoarch\t0\t1\t1\t41471\t0\t/usr/bin/a-link\n\
                    b\tx86_64\t0\t2\t3\t33261\t0\t/usr/bin/odd\n\
                    name\n";
        let c = parse_contents(text);
        let pkgs = [pkg("a.noarch 1-1", "MIT"), pkg("b.x86_64 2-3", "MIT"), pkg("c.noarch 1-1", "MIT")];
        assert_eq!(
            files_text(&pkgs, &c),
            "a.noarch 1-1\n    /usr/share/a/\n    /usr/share/a/one\n    /usr/bin/a-link\n\n\
             b.x86_64 2-3\n    /usr/bin/odd\\nname\n\n\
             c.noarch 1-1\n\n"
        );
    }

    #[test]
    fn license_summary_counts_then_lists() {
        let pkgs = [pkg("a.noarch 1-1", "MIT"), pkg("b.noarch 1-1", "GPLv2"), pkg("c.noarch 1-1", "MIT")];
        assert_eq!(
            license_text(&pkgs),
            "Summary:\n    - MIT: 2\n    - GPLv2: 1\n\nDetails:\n    - MIT:\n        - a.noarch 1-1\n        \
             - c.noarch 1-1\n\n    - GPLv2:\n        - b.noarch 1-1\n\n"
        );
    }

    #[test]
    fn urls_join_repo_and_location() {
        let installed = "a\tnoarch\t0\t1\t1\tmain\nb\tx86_64\t0\t2\t1\t@commandline\n";
        let available =
            "a\tnoarch\t0\t1\t1\tother\tx/a-1-1.noarch.rpm\na\tnoarch\t0\t1\t1\tmain\t./a/a-1-1.noarch.rpm\n";
        let base = |repo: &str| (repo == "main").then(|| "http://h/os?ssl=1".to_owned());
        let urls = urls_from(installed, available, base);
        assert_eq!(urls_text(&urls), "http://h/os/a/a-1-1.noarch.rpm\n");
        assert_eq!(join_url("file:///r/", "p.rpm"), "file:///r/p.rpm");
    }
}
