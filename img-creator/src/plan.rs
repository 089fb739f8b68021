//! What the kickstart asks the creator to do, read once from the model: repos, packages,
//! partitions, settings, scripts. Pure: no I/O, so every rule here is unit-tested.

use img_core::kickstart::commands::{
    Bootloader, Btrfs, CommandKind, Desktop, Group, Network, Partition, Repo, Rootpw, Timezone, User,
};
use img_core::kickstart::model::{walk, PackagesOptions, ScriptKind};
use img_core::kickstart::{Item, Kickstart, PackageEntry, SectionKind};

#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub repos: Vec<Repo>,
    pub prepackages: Vec<String>,
    pub packages: Vec<String>,
    pub groups: Vec<String>,
    pub excludes: Vec<String>,
    /// Every %packages/%prepackages line with its file and line, for messages.
    pub package_entries: Vec<PackageEntry>,
    pub packages_options: PackagesOptions,
    pub partitions: Vec<Partition>,
    pub bootloader: Bootloader,
    pub settings: Settings,
    pub scripts: Vec<Script>,
    /// `%attachment` paths inside the root.
    pub attachments: Vec<String>,
    /// `btrfs` lines, with their kickstart line for error messages.
    pub btrfs: Vec<(usize, Btrfs)>,
}

/// System settings mic applied after installing packages.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub lang: Option<String>,
    pub keyboard: Option<String>,
    pub timezone: Option<Timezone>,
    pub rootpw: Option<Rootpw>,
    pub users: Vec<AtLine<User>>,
    pub groups: Vec<AtLine<Group>>,
    pub services: Vec<Service>,
    pub networks: Vec<AtLine<Network>>,
    /// The last `network --hostname`.
    pub hostname: Option<String>,
    /// `firewall --enabled/--disabled`: Some(true) when enabled.
    pub firewall: Option<bool>,
    /// `selinux --enforcing|--permissive|--disabled`.
    pub selinux: Option<String>,
    pub desktop: Option<Desktop>,
    /// `xconfig --startxonboot`.
    pub start_x: bool,
}

/// A setting with the kickstart line it came from, for warnings and errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AtLine<T> {
    pub line: usize,
    pub value: T,
}

/// One unit of `services --enabled/--disabled`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub unit: String,
    pub enable: bool,
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    pub kind: ScriptKind,
    pub nochroot: bool,
    pub interpreter: String,
    pub erroronfail: bool,
    /// Kickstart line of the section header, for error messages.
    pub line: usize,
    pub body: String,
}

impl Plan {
    pub fn of(ks: &Kickstart) -> Plan {
        let summary = ks.summary();
        let mut plan = Plan {
            repos: Vec::new(),
            prepackages: summary.prepackages,
            packages: summary.packages,
            groups: summary.groups,
            excludes: summary.exclusions,
            package_entries: ks.package_entries(),
            packages_options: summary.packages_options,
            partitions: summary.partitions,
            bootloader: summary.bootloader.unwrap_or_default(),
            settings: Settings::default(),
            scripts: Vec::new(),
            attachments: summary.attachments,
            btrfs: Vec::new(),
        };
        let mut items = Vec::new();
        walk(&ks.items, &mut items);
        for item in items {
            match item {
                // The summary masks passwords; the build needs the real ones.
                Item::Command(c) => match &c.kind {
                    CommandKind::Repo(r) => plan.repos.push(r.clone()),
                    CommandKind::Btrfs(b) => plan.btrfs.push((c.line, b.clone())),
                    _ => apply_command(&mut plan.settings, &c.name, &c.args, &c.kind, c.line),
                },
                Item::Section(sec) => {
                    if let SectionKind::Script(kind) = sec.kind {
                        let opts = sec.script.clone().unwrap_or_default();
                        plan.scripts.push(Script {
                            kind,
                            nochroot: opts.nochroot,
                            interpreter: opts.interpreter,
                            erroronfail: opts.erroronfail,
                            line: sec.line,
                            body: sec.body.iter().filter_map(|b| b.raw.as_deref()).collect(),
                        });
                    }
                }
                Item::Text { .. } | Item::Include(_) => {}
            }
        }
        plan
    }
}

fn apply_command(s: &mut Settings, name: &str, args: &[String], kind: &CommandKind, line: usize) {
    match kind {
        CommandKind::Timezone(t) => s.timezone = Some(t.clone()),
        CommandKind::Rootpw(r) => s.rootpw = Some(r.clone()),
        CommandKind::User(u) => s.users.push(AtLine { line, value: u.clone() }),
        CommandKind::Group(g) => s.groups.push(AtLine { line, value: g.clone() }),
        CommandKind::Network(n) => {
            if let Some(h) = &n.hostname {
                s.hostname = Some(h.clone());
            }
            s.networks.push(AtLine { line, value: n.clone() });
        }
        CommandKind::Desktop(d) => s.desktop = Some(d.clone()),
        CommandKind::Lang(l) if !l.is_empty() => s.lang = Some(l.clone()),
        _ => match name {
            "keyboard" => s.keyboard = positional(args).or_else(|| option(args, "vckeymap")).or(s.keyboard.take()),
            "services" => {
                for (opt, enable) in [("enabled", true), ("disabled", false)] {
                    s.services.extend(list(option(args, opt)).into_iter().map(|unit| Service { unit, enable, line }));
                }
            }
            "firewall" => s.firewall = Some(!has_flag(args, "disabled")),
            "selinux" => {
                s.selinux = ["enforcing", "permissive", "disabled"]
                    .into_iter()
                    .find(|m| has_flag(args, m))
                    .map(str::to_owned)
                    .or(s.selinux.take())
            }
            "xconfig" => s.start_x |= has_flag(args, "startxonboot"),
            _ => {}
        },
    }
}

/// `--name=value` or `--name value`.
fn option(args: &[String], name: &str) -> Option<String> {
    let long = format!("--{name}");
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if let Some(v) = a.strip_prefix(&long).and_then(|rest| rest.strip_prefix('=')) {
            return Some(v.to_owned());
        }
        if *a == long {
            return it.next().cloned();
        }
    }
    None
}

fn has_flag(args: &[String], name: &str) -> bool {
    let long = format!("--{name}");
    args.contains(&long)
}

/// The first argument that is neither an option nor an option's value.
fn positional(args: &[String]) -> Option<String> {
    let takes_value = |a: &String| a.starts_with("--") && !a.contains('=');
    args.iter()
        .enumerate()
        .find(|(i, a)| !a.starts_with('-') && (*i == 0 || !takes_value(&args[i - 1])))
        .map(|(_, a)| a.clone())
}

fn list(v: Option<String>) -> Vec<String> {
    v.map(|v| v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use img_core::kickstart::{parse, ParseOptions, TokenMap};
    use img_core::source::NoFiles;

    fn plan(text: &str) -> Plan {
        let parsed =
            parse(text, &ParseOptions { file: "t.ks", tokens: &TokenMap::new(), literal_tokens: false }, &NoFiles);
        Plan::of(&parsed.kickstart)
    }

    #[test]
    fn reads_settings_mic_applies() {
        let p = plan(
            "lang en_GB.UTF-8\nkeyboard fi\ntimezone --utc Europe/Helsinki\nrootpw --iscrypted $6$x$y\n\
             user --name=alice --groups=wheel --password=pw\ngroup --name=builders --gid=1500\n\
             services --enabled=sshd,chronyd --disabled=kdump\nnetwork --bootproto=dhcp --hostname=box\n\
             firewall --disabled\nselinux --permissive\nxconfig --startxonboot\n",
        );
        let s = &p.settings;
        assert_eq!(s.lang.as_deref(), Some("en_GB.UTF-8"));
        assert_eq!(s.keyboard.as_deref(), Some("fi"));
        assert_eq!(s.timezone.as_ref().and_then(|t| t.timezone.as_deref()), Some("Europe/Helsinki"));
        assert!(s.rootpw.as_ref().is_some_and(|r| r.iscrypted));
        assert_eq!((s.users[0].line, s.users[0].value.name.as_str()), (5, "alice"));
        assert_eq!(s.groups, [AtLine { line: 6, value: Group { name: "builders".into(), gid: Some(1500) } }]);
        let units: Vec<(&str, bool, usize)> = s.services.iter().map(|u| (u.unit.as_str(), u.enable, u.line)).collect();
        assert_eq!(units, [("sshd", true, 7), ("chronyd", true, 7), ("kdump", false, 7)]);
        assert_eq!(s.hostname.as_deref(), Some("box"));
        assert_eq!((s.networks[0].line, s.networks[0].value.bootproto.as_deref()), (8, Some("dhcp")));
        assert_eq!(s.firewall, Some(false));
        assert_eq!(s.selinux.as_deref(), Some("permissive"));
        assert!(s.start_x);
    }

    #[test]
    fn reads_network_and_user_options() {
        let p = plan(
            "network --device eth0 --bootproto=static --ip=10.0.0.5 --netmask=255.255.255.0 --gateway=10.0.0.1 \
             --nameserver=1.1.1.1,9.9.9.9 --onboot=no --bondslaves=eth1 --activate\n\
             user --name=nemo --uid=100000 --gid=100000 --shell=/bin/ash --homedir=/home/nemo --lock\n",
        );
        let n = &p.settings.networks[0].value;
        assert_eq!(n.device.as_deref(), Some("eth0"));
        assert_eq!((n.ip.as_deref(), n.gateway.as_deref()), (Some("10.0.0.5"), Some("10.0.0.1")));
        assert_eq!(n.nameservers, ["1.1.1.1", "9.9.9.9"]);
        assert_eq!(n.onboot, Some(false));
        assert_eq!(n.other, ["bondslaves"], "--activate is the installer's, not the image's");
        let u = &p.settings.users[0].value;
        assert_eq!((u.uid, u.gid, u.lock), (Some(100000), Some(100000), true));
        assert_eq!((u.shell.as_deref(), u.homedir.as_deref()), (Some("/bin/ash"), Some("/home/nemo")));
    }

    #[test]
    fn keeps_repo_passwords_and_script_options() {
        let p = plan(
            "repo --name=r --baseurl=http://h/ --user=u --passwd=secret\n%post --nochroot --erroronfail\necho hi\n%end\n",
        );
        assert_eq!(p.repos[0].passwd.as_deref(), Some("secret"));
        let s = &p.scripts[0];
        assert!(s.nochroot && s.erroronfail);
        assert_eq!((s.kind, s.line, s.body.as_str()), (ScriptKind::Post, 2, "echo hi\n"));
    }
}
