//! `rootpw`, `group` and `user`. As mic: the image's own `groupadd`/`useradd` run chrooted
//! when it has them (its login.defs, skeleton and hooks apply); without them passwd, group
//! and shadow are edited as text by the same rules (login.defs' UID_MIN/GID_MIN, a private
//! group, /etc/default/useradd's HOME and SHELL). Passwords are always set in shadow from
//! here, so no password ever appears on a command line.

use super::rootfs::RootFs;
use crate::error::{CreateError, Result};
use crate::fsio;
use crate::plan::{AtLine, Settings};
use crate::warnings::Warnings;
use img_core::kickstart::commands::{Group, User};

pub fn apply(fs: &RootFs, s: &Settings, warn: &Warnings) -> Result<()> {
    if s.rootpw.is_none() && s.users.is_empty() && s.groups.is_empty() {
        return Ok(());
    }
    let mut ed = Editor { fs, db: Accounts::read(fs)?, dirty: false, defs: Defaults::read(fs)? };
    if let Some(pw) = &s.rootpw {
        let hash = match (&pw.password, pw.iscrypted) {
            (Some(p), true) => p.clone(),
            (Some(p), false) => crypt(p)?,
            (None, _) => "*".to_owned(),
        };
        ed.db.ensure_root();
        ed.db.set_password("root", &lock(&hash, pw.lock));
        ed.dirty = true;
    }
    for g in &s.groups {
        let what = format!("group --name={} (line {})", g.value.name, g.line);
        match (ed.db.gid_of(&g.value.name), g.value.gid) {
            (None, _) => ed.add_group(&g.value, &what)?,
            (Some(have), Some(want)) if have != want => {
                warn.warn(format!("{what}: the group is in the image already with gid {have}; kept it"))
            }
            _ => {}
        }
    }
    for u in &s.users {
        add_user(&mut ed, u, warn)?;
    }
    ed.save()
}

fn add_user(ed: &mut Editor, at: &AtLine<User>, warn: &Warnings) -> Result<()> {
    let u = &at.value;
    let what = format!("user --name={} (line {})", u.name, at.line);
    for g in &u.groups {
        if ed.db.gid_of(g).is_none() {
            warn.warn(format!("{what}: group {g} is not in the image; created it"));
            ed.add_group(&Group { name: g.clone(), gid: None }, &what)?;
        }
    }
    if let Some(gid) = u.gid.filter(|gid| ed.db.name_of_gid(*gid).is_none()) {
        // As anaconda: --gid names the user's own group, made with that id.
        ed.add_group(&Group { name: u.name.clone(), gid: Some(gid) }, &what)?;
    }
    if ed.db.uid_of(&u.name).is_some() {
        warn.warn(format!(
            "{what}: the user is in the image already; kept its ids and home, set its password and groups"
        ));
    } else if let Some(tool) = ed.tool(&["usr/sbin/useradd", "sbin/useradd"]) {
        ed.run(&useradd_argv(&tool, u), &what)?;
    } else {
        ed.add_user_text(u)?;
    }
    for g in &u.groups {
        ed.db.add_member(g, &u.name);
    }
    let hash = match (&u.password, u.iscrypted) {
        (Some(p), true) => p.clone(),
        (Some(p), false) if !p.is_empty() => crypt(p)?,
        // mic ran `passwd -d`: no password at all, as Sailfish's devel images expect.
        _ => String::new(),
    };
    ed.db.set_password(&u.name, &lock(&hash, u.lock));
    ed.dirty = true;
    Ok(())
}

/// mic's `useradd --groups … NAME`, with the other options the kickstart gave; `-m` so the
/// home exists whatever the image's CREATE_HOME says.
fn useradd_argv(tool: &str, u: &User) -> Vec<String> {
    let mut argv = vec![tool.to_owned(), "--create-home".into()];
    let mut opt = |name: &str, v: Option<String>| {
        if let Some(v) = v {
            argv.push(format!("--{name}"));
            argv.push(v);
        }
    };
    opt("uid", u.uid.map(|v| v.to_string()));
    opt("gid", u.gid.map(|v| v.to_string()));
    opt("groups", (!u.groups.is_empty()).then(|| u.groups.join(",")));
    opt("shell", u.shell.clone());
    opt("home-dir", u.homedir.clone());
    opt("comment", u.gecos.clone());
    argv.push(u.name.clone());
    argv
}

fn lock(hash: &str, lock: bool) -> String {
    if lock {
        format!("!{hash}")
    } else {
        hash.to_owned()
    }
}

/// SHA-512 crypt, what a password without `--iscrypted` becomes in /etc/shadow.
fn crypt(password: &str) -> Result<String> {
    use sha_crypt::password_hash::PasswordHasher;
    let mut salt = [0u8; 12];
    fsio::random(&mut salt)?;
    sha_crypt::ShaCrypt::SHA512
        .hash_password_with_salt(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| CreateError::Image(format!("cannot hash a password: {e}")))
}

/// The account files as text, written back before the image's own tools run and read again after.
struct Editor<'a> {
    fs: &'a RootFs,
    db: Accounts,
    dirty: bool,
    defs: Defaults,
}

impl Editor<'_> {
    fn tool(&self, candidates: &[&str]) -> Option<String> {
        candidates.iter().find(|p| self.fs.exists(p)).map(|p| format!("/{p}"))
    }

    fn run(&mut self, argv: &[String], what: &str) -> Result<()> {
        self.save()?;
        let args: Vec<&str> = argv.iter().map(String::as_str).collect();
        let program = argv.first().map(|p| p.rsplit('/').next().unwrap_or(p)).unwrap_or("");
        self.fs
            .chroot(&args)
            .run()
            .map_err(|e| CreateError::Image(format!("{what}: the image's {program} failed: {e}")))?;
        self.db = Accounts::read(self.fs)?;
        Ok(())
    }

    fn save(&mut self) -> Result<()> {
        if self.dirty {
            self.db.write(self.fs)?;
            self.dirty = false;
        }
        Ok(())
    }

    fn add_group(&mut self, g: &Group, what: &str) -> Result<()> {
        if let Some(tool) = self.tool(&["usr/sbin/groupadd", "sbin/groupadd"]) {
            let mut argv = vec![tool];
            if let Some(gid) = g.gid {
                argv.extend(["--gid".to_owned(), gid.to_string()]);
            }
            argv.push(g.name.clone());
            return self.run(&argv, what);
        }
        let gid = g.gid.unwrap_or_else(|| self.db.free_gid(self.defs.gid_min, None));
        self.db.group.push(format!("{}:x:{gid}:", g.name));
        self.db.gshadow_add(&g.name);
        self.dirty = true;
        Ok(())
    }

    /// What useradd does with USERGROUPS_ENAB: a private group, preferably with the uid's number.
    fn add_user_text(&mut self, u: &User) -> Result<()> {
        let uid = u.uid.unwrap_or_else(|| self.db.free_uid(self.defs.uid_min));
        let gid = match u.gid {
            Some(gid) => gid,
            None => match self.db.gid_of(&u.name) {
                Some(gid) => gid,
                None => {
                    let gid = self.db.free_gid(self.defs.gid_min, Some(uid));
                    self.db.group.push(format!("{}:x:{gid}:", u.name));
                    self.db.gshadow_add(&u.name);
                    gid
                }
            },
        };
        let home = u.homedir.clone().unwrap_or_else(|| format!("{}/{}", self.defs.home.trim_end_matches('/'), u.name));
        let shell = u.shell.as_deref().unwrap_or(&self.defs.shell);
        let gecos = u.gecos.as_deref().unwrap_or("");
        self.db.passwd.push(format!("{}:x:{uid}:{gid}:{gecos}:{home}:{shell}", u.name));
        self.dirty = true;
        let dir = self.fs.dir(&home)?;
        std::os::unix::fs::lchown(&dir, Some(uid), Some(gid)).map_err(CreateError::io("cannot chown", &dir))?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
            .map_err(CreateError::io("cannot chmod", &dir))
    }
}

/// What shadow-utils would read: login.defs' id ranges, /etc/default/useradd's HOME and SHELL.
#[derive(Debug, PartialEq, Eq)]
struct Defaults {
    uid_min: u32,
    gid_min: u32,
    home: String,
    shell: String,
}

impl Defaults {
    fn read(fs: &RootFs) -> Result<Defaults> {
        let defs = fs.read("etc/login.defs")?.unwrap_or_default();
        let useradd = fs.read("etc/default/useradd")?.unwrap_or_default();
        Ok(Defaults::parse(&defs, &useradd))
    }

    fn parse(login_defs: &str, default_useradd: &str) -> Defaults {
        let def = |key: &str| {
            login_defs
                .lines()
                .filter_map(|l| l.split_whitespace().collect::<Vec<_>>().get(..2).map(|kv| (kv[0], kv[1])))
                .filter(|(k, _)| *k == key)
                .filter_map(|(_, v)| v.parse::<u32>().ok())
                .next_back()
        };
        let var = |key: &str| {
            default_useradd
                .lines()
                .filter_map(|l| l.trim().strip_prefix(key)?.strip_prefix('='))
                .next_back()
                .map(str::trim)
        };
        let path = |v: Option<&str>, or: &str| v.filter(|v| v.starts_with('/')).unwrap_or(or).to_owned();
        Defaults {
            uid_min: def("UID_MIN").unwrap_or(1000),
            gid_min: def("GID_MIN").unwrap_or(1000),
            home: path(var("HOME"), "/home"),
            shell: path(var("SHELL"), "/bin/sh"),
        }
    }
}

struct Accounts {
    passwd: Vec<String>,
    group: Vec<String>,
    shadow: Vec<String>,
    /// Only kept up to date when the image has one.
    gshadow: Option<Vec<String>>,
}

fn lines(text: Option<String>) -> Vec<String> {
    text.unwrap_or_default().lines().map(str::to_owned).collect()
}

fn field(line: &str, n: usize) -> Option<&str> {
    line.split(':').nth(n)
}

impl Accounts {
    fn read(fs: &RootFs) -> Result<Accounts> {
        Ok(Accounts {
            passwd: lines(fs.read("etc/passwd")?),
            group: lines(fs.read("etc/group")?),
            shadow: lines(fs.read("etc/shadow")?),
            gshadow: fs.read("etc/gshadow")?.map(|t| lines(Some(t))),
        })
    }

    fn write(&self, fs: &RootFs) -> Result<()> {
        let join = |v: &[String]| v.iter().map(|l| format!("{l}\n")).collect::<String>();
        fs.write("etc/passwd", &join(&self.passwd), 0o644)?;
        fs.write("etc/group", &join(&self.group), 0o644)?;
        fs.write("etc/shadow", &join(&self.shadow), 0o600)?;
        if let Some(g) = &self.gshadow {
            fs.write("etc/gshadow", &join(g), 0o600)?;
        }
        Ok(())
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
        match self.shadow.iter_mut().find(|l| field(l, 0) == Some(user)) {
            Some(line) if line.split(':').count() > 1 => {
                let mut f: Vec<&str> = line.split(':').collect();
                f[1] = hash;
                *line = f.join(":");
            }
            Some(line) => *line = format!("{user}:{hash}:19000:0:99999:7:::"),
            None => self.shadow.push(format!("{user}:{hash}:19000:0:99999:7:::")),
        }
    }

    fn uid_of(&self, name: &str) -> Option<u32> {
        self.passwd.iter().find(|l| field(l, 0) == Some(name)).and_then(|l| field(l, 2)?.parse().ok())
    }

    fn gid_of(&self, name: &str) -> Option<u32> {
        self.group.iter().find(|l| field(l, 0) == Some(name)).and_then(|l| field(l, 2)?.parse().ok())
    }

    fn name_of_gid(&self, gid: u32) -> Option<&str> {
        self.group.iter().find(|l| field(l, 2).and_then(|g| g.parse().ok()) == Some(gid)).and_then(|l| field(l, 0))
    }

    fn ids(table: &[String]) -> Vec<u32> {
        table.iter().filter_map(|l| field(l, 2)?.parse().ok()).collect()
    }

    fn free_uid(&self, from: u32) -> u32 {
        let used = Self::ids(&self.passwd);
        (from..).find(|id| !used.contains(id)).unwrap_or(from)
    }

    fn free_gid(&self, from: u32, prefer: Option<u32>) -> u32 {
        let used = Self::ids(&self.group);
        match prefer.filter(|p| !used.contains(p)) {
            Some(p) => p,
            None => (from..).find(|id| !used.contains(id)).unwrap_or(from),
        }
    }

    fn gshadow_add(&mut self, group: &str) {
        if let Some(g) = &mut self.gshadow {
            g.push(format!("{group}:!::"));
        }
    }

    fn add_member(&mut self, group: &str, user: &str) {
        for line in self.group.iter_mut().filter(|l| field(l, 0) == Some(group)) {
            let members = line.rsplit(':').next().unwrap_or("");
            if !members.split(',').any(|m| m == user) {
                line.push_str(if members.is_empty() { "" } else { "," });
                line.push_str(user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_defs_and_useradd_defaults() {
        let d = Defaults::parse(
            "# comment UID_MIN 5\nUID_MIN\t\t100000\nGID_MIN 100000\nUID_MAX 200000\n",
            "SHELL=/bin/bash\nHOME=/home\n",
        );
        assert_eq!(d, Defaults { uid_min: 100000, gid_min: 100000, home: "/home".into(), shell: "/bin/bash".into() });
        let d = Defaults::parse("", "");
        assert_eq!((d.uid_min, d.gid_min, d.shell.as_str()), (1000, 1000, "/bin/sh"));
    }

    #[test]
    fn useradd_gets_every_option_the_kickstart_gave() {
        let u = User {
            name: "nemo".into(),
            groups: vec!["audio".into(), "video".into()],
            uid: Some(100000),
            gid: Some(100000),
            shell: Some("/bin/ash".into()),
            homedir: Some("/home/nemo".into()),
            gecos: Some("Nemo".into()),
            ..User::default()
        };
        assert_eq!(
            useradd_argv("/usr/sbin/useradd", &u).join(" "),
            "/usr/sbin/useradd --create-home --uid 100000 --gid 100000 --groups audio,video --shell /bin/ash \
             --home-dir /home/nemo --comment Nemo nemo"
        );
        let plain = User { name: "alice".into(), ..User::default() };
        assert_eq!(useradd_argv("/usr/sbin/useradd", &plain), ["/usr/sbin/useradd", "--create-home", "alice"]);
    }
}
