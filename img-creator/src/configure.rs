//! System settings from the kickstart, applied to the installed root as mic applied them:
//! plain files written from Rust (passwd, shadow, locale, …), the image's own tools only
//! where a setting needs them (systemctl for services), and a note when they are absent.

use crate::error::{CreateError, Result};
use crate::fsio;
use crate::install::repo_section;
use crate::layout::{fstab, Volume};
use crate::plan::{Plan, Settings};
use crate::warnings::Warnings;
use img_core::kickstart::commands::User;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

pub fn apply(root: &Path, plan: &Plan, volumes: &[Volume], warn: &Warnings) -> Result<()> {
    let s = &plan.settings;
    let etc = root.join("etc");
    fsio::create_dir_all(&etc)?;
    if let Some(lang) = &s.lang {
        write(root, "etc/locale.conf", &format!("LANG={lang}\n"))?;
    }
    if let Some(k) = &s.keyboard {
        write(root, "etc/vconsole.conf", &format!("KEYMAP={k}\n"))?;
    }
    timezone(root, s, warn)?;
    accounts(root, s)?;
    if let Some(h) = &s.hostname {
        write(root, "etc/hostname", &format!("{h}\n"))?;
    }
    if let Some(mode) = &s.selinux {
        selinux(root, mode)?;
    }
    if let Some(on) = s.firewall {
        firewall(root, on)?;
    }
    desktop(root, s)?;
    services(root, s, warn)?;
    if !volumes.is_empty() {
        write(root, "etc/fstab", &fstab(volumes))?;
    }
    for r in plan.repos.iter().filter(|r| r.save) {
        let name = r.name.replace(['/', ' '], "_");
        write(root, &format!("etc/yum.repos.d/{name}.repo"), &repo_section(r))?;
    }
    Ok(())
}

fn timezone(root: &Path, s: &Settings, warn: &Warnings) -> Result<()> {
    let Some(tz) = &s.timezone else { return Ok(()) };
    let Some(zone) = tz.timezone.as_deref() else { return Ok(()) };
    if zone.split('/').any(|p| p.is_empty() || p == "." || p == "..") || zone.contains(char::is_whitespace) {
        return Err(CreateError::Image(format!("timezone `{zone}` is not a zone name like Europe/Helsinki")));
    }
    if !root.join("usr/share/zoneinfo").join(zone).exists() {
        warn.warn(format!("timezone {zone}: no tzdata for it in the image; /etc/localtime points to it anyway"));
    }
    let link = root.join("etc/localtime");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(format!("../usr/share/zoneinfo/{zone}"), &link)
        .map_err(CreateError::io("cannot link", &link))?;
    write(root, "etc/timezone", &format!("{zone}\n"))?;
    write(root, "etc/sysconfig/clock", &format!("ZONE=\"{zone}\"\nUTC={}\n", tz.utc))
}

/// passwd/group/shadow edited as text: no dependency on the image having shadow-utils.
fn accounts(root: &Path, s: &Settings) -> Result<()> {
    if s.rootpw.is_none() && s.users.is_empty() && s.groups.is_empty() {
        return Ok(());
    }
    let mut db = Accounts::read(root)?;
    if let Some(pw) = &s.rootpw {
        let hash = match (&pw.password, pw.iscrypted) {
            (Some(p), true) => p.clone(),
            (Some(p), false) => crypt(p)?,
            (None, _) => "*".to_owned(),
        };
        let hash = if pw.lock { format!("!{hash}") } else { hash };
        db.ensure_root();
        db.set_password("root", &hash);
    }
    for g in &s.groups {
        db.add_group(&g.name, g.gid);
    }
    for u in &s.users {
        add_user(root, &mut db, u)?;
    }
    db.write(root)
}

fn add_user(root: &Path, db: &mut Accounts, u: &User) -> Result<()> {
    let gid = db.add_group(&u.name, None);
    let uid = db.next_id(&db.passwd, 1000);
    let home = format!("/home/{}", u.name);
    if !db.passwd.iter().any(|l| l.split(':').next() == Some(u.name.as_str())) {
        db.passwd.push(format!("{}:x:{uid}:{gid}::{home}:/bin/sh", u.name));
    }
    let hash = match (&u.password, u.iscrypted) {
        (Some(p), true) => p.clone(),
        (Some(p), false) => crypt(p)?,
        (None, _) => "!".to_owned(),
    };
    db.set_password(&u.name, &hash);
    for g in &u.groups {
        db.add_member(g, &u.name);
    }
    let dir = root.join(home.trim_start_matches('/'));
    fsio::create_dir_all(&dir)?;
    std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).map_err(CreateError::io("cannot chown", &dir))?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
        .map_err(CreateError::io("cannot chmod", &dir))
}

/// SHA-512 crypt, what `rootpw` without `--iscrypted` becomes in /etc/shadow.
fn crypt(password: &str) -> Result<String> {
    use sha_crypt::password_hash::PasswordHasher;
    let mut salt = [0u8; 12];
    fsio::random(&mut salt)?;
    sha_crypt::ShaCrypt::SHA512
        .hash_password_with_salt(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| CreateError::Image(format!("cannot hash a password: {e}")))
}

struct Accounts {
    passwd: Vec<String>,
    group: Vec<String>,
    shadow: Vec<String>,
}

impl Accounts {
    fn read(root: &Path) -> Result<Accounts> {
        let lines = |rel: &str| -> Result<Vec<String>> {
            let p = root.join(rel);
            match std::fs::read_to_string(&p) {
                Ok(t) => Ok(t.lines().map(str::to_owned).collect()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
                Err(e) => Err(CreateError::io("cannot read", p)(e)),
            }
        };
        Ok(Accounts { passwd: lines("etc/passwd")?, group: lines("etc/group")?, shadow: lines("etc/shadow")? })
    }

    fn write(&self, root: &Path) -> Result<()> {
        let join = |v: &[String]| v.iter().map(|l| format!("{l}\n")).collect::<String>();
        write(root, "etc/passwd", &join(&self.passwd))?;
        write(root, "etc/group", &join(&self.group))?;
        write(root, "etc/shadow", &join(&self.shadow))?;
        let shadow = root.join("etc/shadow");
        std::fs::set_permissions(&shadow, std::fs::Permissions::from_mode(0o600))
            .map_err(CreateError::io("cannot chmod", &shadow))
    }

    fn ensure_root(&mut self) {
        if !self.passwd.iter().any(|l| l.starts_with("root:")) {
            self.passwd.insert(0, "root:x:0:0:root:/root:/bin/sh".into());
        }
        if !self.group.iter().any(|l| l.starts_with("root:")) {
            self.group.insert(0, "root:x:0:".into());
        }
    }

    fn set_password(&mut self, user: &str, hash: &str) {
        let entry = format!("{user}:{hash}:19000:0:99999:7:::");
        match self.shadow.iter_mut().find(|l| l.split(':').next() == Some(user)) {
            Some(line) => {
                let mut f: Vec<&str> = line.split(':').collect();
                if f.len() > 1 {
                    f[1] = hash;
                    *line = f.join(":");
                } else {
                    *line = entry;
                }
            }
            None => self.shadow.push(entry),
        }
    }

    fn next_id(&self, table: &[String], from: u32) -> u32 {
        let used: Vec<u32> = table.iter().filter_map(|l| l.split(':').nth(2)?.parse().ok()).collect();
        (from..).find(|id| !used.contains(id)).unwrap_or(from)
    }

    /// The group's gid, adding the group when it does not exist.
    fn add_group(&mut self, name: &str, gid: Option<u32>) -> u32 {
        if let Some(existing) = self.group.iter().find(|l| l.split(':').next() == Some(name)) {
            return existing.split(':').nth(2).and_then(|g| g.parse().ok()).unwrap_or(0);
        }
        let gid = gid.unwrap_or_else(|| self.next_id(&self.group, 1000));
        self.group.push(format!("{name}:x:{gid}:"));
        gid
    }

    fn add_member(&mut self, group: &str, user: &str) {
        if !self.group.iter().any(|l| l.split(':').next() == Some(group)) {
            self.add_group(group, None);
        }
        if let Some(line) = self.group.iter_mut().find(|l| l.split(':').next() == Some(group)) {
            let members = line.rsplit(':').next().unwrap_or("");
            if !members.split(',').any(|m| m == user) {
                line.push_str(if members.is_empty() { "" } else { "," });
                line.push_str(user);
            }
        }
    }
}

fn selinux(root: &Path, mode: &str) -> Result<()> {
    let conf = root.join("etc/selinux/config");
    if !conf.exists() {
        tracing::info!("selinux --{mode}: the image has no SELinux policy; nothing to set");
        return Ok(());
    }
    write(root, "etc/selinux/config", &format!("SELINUX={mode}\nSELINUXTYPE=targeted\n"))
}

fn firewall(root: &Path, enabled: bool) -> Result<()> {
    let tool = "usr/bin/firewall-offline-cmd";
    if !root.join(tool).exists() {
        tracing::info!("firewall: the image has no firewalld; nothing to set");
        return Ok(());
    }
    let flag = if enabled { "--enabled" } else { "--disabled" };
    chroot(root, &[&format!("/{tool}"), flag], "firewall")
}

fn desktop(root: &Path, s: &Settings) -> Result<()> {
    let mut text = String::new();
    if let Some(d) = &s.desktop {
        if let Some(v) = &d.defaultdesktop {
            text.push_str(&format!("DESKTOP=\"{v}\"\n"));
        }
        if let Some(v) = &d.defaultdm {
            text.push_str(&format!("DISPLAYMANAGER=\"{v}\"\n"));
        }
        if let Some(v) = &d.autologinuser {
            text.push_str(&format!("AUTOLOGIN_USER=\"{v}\"\n"));
        }
        if let Some(v) = &d.session {
            text.push_str(&format!("SESSION=\"{v}\"\n"));
        }
    }
    if !text.is_empty() {
        write(root, "etc/sysconfig/desktop", &text)?;
    }
    if s.start_x {
        let target = root.join("etc/systemd/system/default.target");
        if root.join("usr/lib/systemd/system/graphical.target").exists() {
            fsio::create_dir_all(target.parent().unwrap_or(root))?;
            let _ = std::fs::remove_file(&target);
            std::os::unix::fs::symlink("/usr/lib/systemd/system/graphical.target", &target)
                .map_err(CreateError::io("cannot link", &target))?;
        } else {
            tracing::info!("xconfig --startxonboot: the image has no systemd graphical.target; nothing to set");
        }
    }
    Ok(())
}

fn services(root: &Path, s: &Settings, warn: &Warnings) -> Result<()> {
    if s.services_enabled.is_empty() && s.services_disabled.is_empty() {
        return Ok(());
    }
    let systemctl = ["usr/bin/systemctl", "bin/systemctl"].into_iter().find(|p| root.join(p).exists());
    let Some(systemctl) = systemctl else {
        warn.warn(format!("services: the image has no systemctl; not enabling/disabling {:?}", s.services_enabled));
        return Ok(());
    };
    let tool = format!("/{systemctl}");
    for svc in &s.services_enabled {
        chroot(root, &[&tool, "enable", svc], "services --enabled")?;
    }
    for svc in &s.services_disabled {
        chroot(root, &[&tool, "disable", svc], "services --disabled")?;
    }
    Ok(())
}

/// The image's own tool, run as %post scripts are (/proc, /sys, /dev for it alone).
fn chroot(root: &Path, argv: &[&str], phase: &'static str) -> Result<()> {
    crate::scripts::chroot_cmd(root, argv).run().map(drop).map_err(CreateError::in_phase(phase))
}

fn write(root: &Path, rel: &str, text: &str) -> Result<()> {
    let p = root.join(rel);
    if let Some(parent) = p.parent() {
        fsio::create_dir_all(parent)?;
    }
    fsio::write(&p, text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use img_core::kickstart::{parse, ParseOptions, TokenMap};
    use img_core::source::NoFiles;

    fn apply_ks(ks: &str) -> crate::workdir::TempDir {
        let dir = crate::workdir::TempDir::new_in(&std::env::temp_dir(), "img-configure-").unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
        std::fs::write(root.join("etc/group"), "root:x:0:\nwheel:x:10:root\n").unwrap();
        std::fs::write(root.join("etc/shadow"), "root:*:19000:0:99999:7:::\n").unwrap();
        let parsed = parse(ks, &ParseOptions { file: "t.ks", tokens: &TokenMap::new() }, &NoFiles);
        let plan = Plan::of(&parsed.kickstart);
        apply(root, &plan, &[], &Warnings::default()).unwrap();
        dir
    }

    fn read(dir: &crate::workdir::TempDir, rel: &str) -> String {
        std::fs::read_to_string(dir.path().join(rel)).unwrap()
    }

    #[test]
    fn accounts_timezone_and_locale() {
        let d = apply_ks(
            "rootpw secret\nuser --name=alice --groups=wheel --password=$6$s$h --iscrypted\n\
             group --name=builders --gid=1500\ntimezone --utc Europe/Helsinki\nlang fi_FI.UTF-8\nkeyboard fi\n\
             network --hostname=box\n",
        );
        let shadow = read(&d, "etc/shadow");
        let root_hash = shadow.lines().next().unwrap().split(':').nth(1).unwrap();
        assert!(root_hash.starts_with("$6$"), "{root_hash}");
        assert!(shadow.contains("alice:$6$s$h:"), "{shadow}");
        assert!(read(&d, "etc/passwd").contains("alice:x:1000:1000::/home/alice:/bin/sh"));
        let group = read(&d, "etc/group");
        assert!(group.contains("wheel:x:10:root,alice") && group.contains("builders:x:1500:"), "{group}");
        assert_eq!(
            std::fs::read_link(d.path().join("etc/localtime")).unwrap().to_str(),
            Some("../usr/share/zoneinfo/Europe/Helsinki")
        );
        assert_eq!(read(&d, "etc/locale.conf"), "LANG=fi_FI.UTF-8\n");
        assert_eq!(read(&d, "etc/hostname"), "box\n");
        let home = d.path().join("home/alice").metadata().unwrap();
        assert_eq!(std::os::unix::fs::MetadataExt::uid(&home), 1000);
    }

    #[test]
    fn saved_repos_land_in_yum_repos_d() {
        let d = apply_ks("repo --name=extra --baseurl=http://h/x/ --save\nrepo --name=tmp --baseurl=http://h/y/\n");
        assert!(read(&d, "etc/yum.repos.d/extra.repo").contains("baseurl=http://h/x/"));
        assert!(!d.path().join("etc/yum.repos.d/tmp.repo").exists());
    }
}
