//! `repo --save`: the repos the image keeps, where its package manager reads them. As mic:
//! zypper's /etc/zypp/repos.d in images that use zypper (Sailfish OS, Tizen), with mic's
//! `-debuginfo`/`-source` companions and no proxy or credentials; dnf/yum's
//! /etc/yum.repos.d otherwise.

use super::rootfs::RootFs;
use crate::error::Result;
use crate::install::repo_section;
use crate::warnings::Warnings;
use img_core::kickstart::commands::Repo;
use std::fmt::Write as _;

pub fn save(fs: &RootFs, repos: &[Repo], warn: &Warnings) -> Result<()> {
    let saved: Vec<&Repo> = repos.iter().filter(|r| r.save).collect();
    if saved.is_empty() {
        return Ok(());
    }
    let zypper = ["usr/bin/zypper", "etc/zypp"].iter().any(|p| fs.exists(p));
    for r in saved {
        let name = r.name.replace(['/', ' '], "_");
        if zypper {
            if r.proxy.is_some() || r.user.is_some() || r.passwd.is_some() {
                warn.warn(format!(
                    "repo --name={}: its proxy and credentials are not saved into the image (as mic)",
                    r.name
                ));
            }
            fs.write(&format!("etc/zypp/repos.d/{name}.repo"), &zypp_file(r), 0o644)?;
        } else {
            fs.write(&format!("etc/yum.repos.d/{name}.repo"), &repo_section(r), 0o644)?;
        }
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Base,
    Debuginfo,
    Source,
}

fn zypp_file(r: &Repo) -> String {
    let mut s = zypp_section(r, Kind::Base);
    if r.debuginfo {
        s.push_str(&zypp_section(r, Kind::Debuginfo));
    }
    if r.source {
        s.push_str(&zypp_section(r, Kind::Source));
    }
    s
}

/// One section as mic's MoblinRepoConfig wrote it.
fn zypp_section(r: &Repo, kind: Kind) -> String {
    let (suffix, sub, up) = match kind {
        Kind::Base => ("", "", 0),
        Kind::Debuginfo => ("-debuginfo", "debug", 1),
        Kind::Source => ("-source", "source", 2),
    };
    let name = format!("{}{suffix}", r.name);
    let mut s = format!("[{name}]\nname={name}\nfailovermethod=priority\n");
    // mic's companions: the base URL `up` folders higher plus debug/ or source/.
    let baseurl = r.baseurl.as_deref().map(|u| match kind {
        Kind::Base => u.to_owned(),
        _ => {
            let mut p = u.trim_end_matches('/').to_owned();
            for _ in 0..up {
                p.truncate(p.rfind('/').unwrap_or(0));
            }
            format!("{p}/{sub}")
        }
    });
    let mirrorlist = r.mirrorlist.as_deref().map(|m| match (kind, m.find('$')) {
        (Kind::Base, _) | (_, None) => m.to_owned(),
        (_, Some(i)) => format!("{}{sub}-{}", &m[..i], &m[i..]),
    });
    if let Some(u) = baseurl {
        let _ = writeln!(s, "baseurl={u}");
    }
    if let Some(m) = mirrorlist {
        let _ = writeln!(s, "mirrorlist={m}");
    }
    match &r.gpgkey {
        Some(k) => {
            let _ = writeln!(s, "gpgkey={k}\ngpgcheck=1");
        }
        None => s.push_str("gpgcheck=0\n"),
    }
    let enabled = kind == Kind::Base && !r.disable;
    let _ = writeln!(s, "enabled={}\n", u8::from(enabled));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zypper_sections_as_mic() {
        let r = Repo {
            name: "adaptation".into(),
            baseurl: Some("http://h/releases/4.5/jolla/armv7hl/".into()),
            debuginfo: true,
            source: true,
            gpgkey: Some("file:///k".into()),
            save: true,
            ..Repo::default()
        };
        assert_eq!(
            zypp_file(&r),
            "[adaptation]\nname=adaptation\nfailovermethod=priority\nbaseurl=http://h/releases/4.5/jolla/armv7hl/\n\
             gpgkey=file:///k\ngpgcheck=1\nenabled=1\n\n\
             [adaptation-debuginfo]\nname=adaptation-debuginfo\nfailovermethod=priority\n\
             baseurl=http://h/releases/4.5/jolla/debug\ngpgkey=file:///k\ngpgcheck=1\nenabled=0\n\n\
             [adaptation-source]\nname=adaptation-source\nfailovermethod=priority\n\
             baseurl=http://h/releases/4.5/source\ngpgkey=file:///k\ngpgcheck=1\nenabled=0\n\n"
        );
    }
}
