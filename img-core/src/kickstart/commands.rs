//! Kickstart commands: the options each one takes (pykickstart's plus mic's extensions)
//! and typed values for the ones IMG uses.

use super::lexer::Word;
use super::options::{flag, match_options, value, Matched, OptSpec, Problem};
use serde::Serialize;

/// Shown in place of a password in any printed model.
pub const SECRET: &str = "***";

fn secret_if_set<S: serde::Serializer>(set: &bool, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_some(&set.then_some(SECRET))
}

/// What a command line means. Commands IMG does not interpret are `Generic`.
#[derive(Debug, Clone, PartialEq)]
pub enum CommandKind {
    Repo(Repo),
    Partition(Partition),
    Bootloader(Bootloader),
    Btrfs(Btrfs),
    Timezone(Timezone),
    Rootpw(Rootpw),
    User(User),
    Group(Group),
    Network(Network),
    Desktop(Desktop),
    Lang(String),
    /// A known command whose options are only validated.
    Generic,
    /// A command neither pykickstart nor mic knows (a warning).
    Unknown,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Repo {
    pub name: String,
    pub baseurl: Option<String>,
    pub mirrorlist: Option<String>,
    pub save: bool,
    pub debuginfo: bool,
    pub source: bool,
    pub gpgkey: Option<String>,
    pub ssl_verify: Option<String>,
    pub priority: Option<i64>,
    pub cost: Option<i64>,
    pub includepkgs: Vec<String>,
    pub excludepkgs: Vec<String>,
    pub proxy: Option<String>,
    pub proxyuser: Option<String>,
    pub proxypasswd: Option<String>,
    pub disable: bool,
    pub user: Option<String>,
    pub passwd: Option<String>,
    pub nocache: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Partition {
    pub mountpoint: String,
    /// MiB.
    pub size: Option<i64>,
    pub fstype: Option<String>,
    pub ondisk: Option<String>,
    pub label: Option<String>,
    /// KiB, mic's `--align`.
    pub align: Option<i64>,
    pub active: bool,
    pub fsoptions: Option<String>,
    pub extoptions: Option<String>,
    pub part_type: Option<String>,
    pub uuid: Option<String>,
    pub grow: bool,
    pub asprimary: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Bootloader {
    pub append: Option<String>,
    pub timeout: Option<i64>,
    pub location: Option<String>,
    pub ptable: Option<String>,
    pub menus: Option<String>,
    pub disabled: bool,
    /// Only whether one was given: the summary must not carry it.
    #[serde(rename = "password", serialize_with = "secret_if_set")]
    pub password_set: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Btrfs {
    pub mountpoint: Option<String>,
    pub devices: Vec<String>,
    pub label: Option<String>,
    pub name: Option<String>,
    pub parent: Option<String>,
    pub base: Option<String>,
    pub subvol: bool,
    pub snapshot: bool,
    pub quota: bool,
    pub data: Option<String>,
    pub metadata: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Timezone {
    pub timezone: Option<String>,
    pub utc: bool,
    pub nontp: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rootpw {
    pub password: Option<String>,
    pub iscrypted: bool,
    pub lock: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub password: Option<String>,
    pub groups: Vec<String>,
    pub iscrypted: bool,
    pub lock: bool,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub shell: Option<String>,
    pub homedir: Option<String>,
    pub gecos: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Group {
    pub name: String,
    pub gid: Option<u32>,
}

/// One `network` line, the options mic wrote into the image (pykickstart's names).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Network {
    pub device: Option<String>,
    pub bootproto: Option<String>,
    pub ip: Option<String>,
    pub netmask: Option<String>,
    pub gateway: Option<String>,
    pub nameservers: Vec<String>,
    pub hostname: Option<String>,
    /// `--onboot=no` is false; absent is None (on, as pykickstart).
    pub onboot: Option<bool>,
    pub ipv6: Option<String>,
    pub noipv6: bool,
    pub nodns: bool,
    pub mtu: Option<String>,
    pub essid: Option<String>,
    pub wepkey: Option<String>,
    pub ethtool: Option<String>,
    pub dhcpclass: Option<String>,
    /// Every other option given (canonical name): the creator names what it did not apply.
    pub other: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Desktop {
    pub defaultdesktop: Option<String>,
    pub autologinuser: Option<String>,
    pub defaultdm: Option<String>,
    pub session: Option<String>,
}

/// How many positional arguments a command takes.
#[derive(Debug, Clone, Copy)]
struct Args {
    min: usize,
    /// `usize::MAX` for any number.
    max: usize,
}

const NONE: Args = Args { min: 0, max: 0 };
const ANY: Args = Args { min: 0, max: usize::MAX };
const ONE: Args = Args { min: 1, max: 1 };
const OPT: Args = Args { min: 0, max: 1 };

struct Spec {
    names: &'static [&'static str],
    opts: &'static [OptSpec],
    args: Args,
    /// Accept unknown options silently (commands with large option sets IMG ignores).
    open: bool,
    /// A warning on every use: the command is not applied (said with the line, not hidden).
    note: Option<&'static str>,
}

/// Said of the commands IMG passes through (mostly the installer's).
const NOT_APPLIED: &str = "is not applied by IMG (passed through); its options are not checked";
/// Said of commands current pykickstart no longer knows (mic-era kickstarts still have them).
const OBSOLETE: &str = "is obsolete (removed from pykickstart); IMG ignores it";

const REPO: &[OptSpec] = &[
    value(&["name"]),
    value(&["baseurl"]),
    value(&["mirrorlist"]),
    value(&["metalink"]),
    flag(&["save"]),
    flag(&["debuginfo"]),
    flag(&["source"]),
    value(&["gpgkey"]),
    value(&["ssl_verify"]),
    value(&["priority"]),
    value(&["cost"]),
    value(&["includepkgs"]),
    value(&["excludepkgs"]),
    value(&["proxy"]),
    value(&["proxyuser"]),
    value(&["proxypasswd"]),
    flag(&["disable"]),
    value(&["user"]),
    value(&["passwd"]),
    flag(&["nocache"]),
    flag(&["noverifyssl"]),
    flag(&["ignoregroups"]),
    flag(&["install"]),
];

// What `Partition` does not hold, IMG does not apply.
const PART: &[OptSpec] = &[
    value(&["size"]),
    value(&["fstype"]),
    value(&["ondisk", "ondrive"]),
    value(&["label"]),
    value(&["align"]),
    flag(&["active"]),
    value(&["fsoptions"]),
    value(&["extoptions"]),
    value(&["part-type", "part_type"]),
    value(&["uuid"]),
    flag(&["grow"]),
    flag(&["asprimary"]),
    value(&["maxsize"]).ignored(),
    flag(&["noformat"]).ignored(),
    value(&["onpart", "usepart"]).ignored(),
    flag(&["recommended"]).ignored(),
    flag(&["encrypted"]).ignored(),
    value(&["passphrase"]).ignored(),
    value(&["start"]).ignored(),
    value(&["end"]).ignored(),
    value(&["bytes-per-inode"]).ignored(),
    value(&["onbiosdisk"]).ignored(),
    value(&["fsprofile"]).ignored(),
    value(&["mkfsoptions"]).ignored(),
    flag(&["resize"]).ignored(),
    flag(&["hibernation"]).ignored(),
    value(&["system-id"]).ignored(),
    flag(&["exclude-image"]).ignored(),
    flag(&["no-cpio"]).ignored(),
    value(&["cipher"]).ignored(),
    value(&["luks-version"]).ignored(),
];

// What `Bootloader` does not hold, IMG does not apply.
const BOOTLOADER: &[OptSpec] = &[
    value(&["append"]),
    value(&["timeout"]),
    value(&["location"]),
    value(&["ptable"]),
    value(&["menus"]),
    value(&["password"]),
    flag(&["iscrypted"]).ignored(),
    value(&["md5pass"]),
    value(&["driveorder"]).ignored(),
    value(&["boot-drive"]).ignored(),
    flag(&["leavebootorder"]).ignored(),
    flag(&["disabled", "disable"]),
    flag(&["extlinux"]).ignored(),
    flag(&["upgrade"]).ignored(),
    flag(&["nombr"]).ignored(),
    flag(&["lba32"]).ignored(),
    flag(&["useLilo"]).ignored(),
    flag(&["linear"]).ignored(),
    flag(&["nolinear"]).ignored(),
    value(&["default"]).ignored(),
    flag(&["noefi"]).ignored(),
];

const BTRFS: &[OptSpec] = &[
    flag(&["noformat"]),
    flag(&["useexisting"]),
    value(&["label"]),
    value(&["data"]),
    value(&["metadata"]),
    flag(&["quota"]),
    flag(&["subvol"]),
    value(&["parent"]),
    flag(&["snapshot"]),
    value(&["name"]),
    value(&["base"]),
    value(&["mkfsoptions"]),
];

const TIMEZONE: &[OptSpec] =
    &[flag(&["utc", "isUtc"]), flag(&["nontp"]), value(&["ntpservers"]), flag(&["ntp"]), flag(&["isUTC"])];
const ROOTPW: &[OptSpec] = &[flag(&["iscrypted"]), flag(&["plaintext"]), flag(&["lock"]), flag(&["allow-ssh"])];
const USER: &[OptSpec] = &[
    value(&["name"]),
    value(&["password"]),
    value(&["groups"]),
    flag(&["iscrypted"]),
    flag(&["plaintext"]),
    flag(&["lock"]),
    value(&["homedir"]),
    value(&["shell"]),
    value(&["uid"]),
    value(&["gid"]),
    value(&["gecos"]),
];
const GROUP: &[OptSpec] = &[value(&["name"]), value(&["gid"])];
/// pykickstart's network options; `Network` holds those in `NETWORK_HELD`.
const NETWORK: &[OptSpec] = &[
    value(&["device"]),
    value(&["bootproto"]),
    value(&["ip"]),
    value(&["netmask"]),
    value(&["gateway"]),
    value(&["nameserver"]),
    value(&["hostname"]),
    value(&["onboot"]),
    value(&["ipv6"]),
    flag(&["noipv6"]),
    flag(&["nodns"]),
    value(&["mtu"]),
    value(&["essid"]),
    value(&["wepkey"]),
    value(&["ethtool"]),
    value(&["dhcpclass"]),
    flag(&["activate"]),
    flag(&["no-activate"]),
    flag(&["noipv4"]),
    flag(&["nodefroute"]),
    value(&["ipv6gateway"]),
    value(&["wpakey"]),
    value(&["bondslaves"]),
    value(&["bondopts"]),
    value(&["vlanid"]),
    value(&["interfacename"]),
    value(&["teamslaves"]),
    value(&["teamconfig"]),
    value(&["bridgeslaves"]),
    value(&["bridgeopts"]),
    value(&["bindto"]),
    value(&["ipv4-dns-search"]),
    value(&["ipv6-dns-search"]),
    flag(&["ipv4-ignore-auto-dns"]),
    flag(&["ipv6-ignore-auto-dns"]),
    flag(&["notksdevice"]),
];
const NETWORK_HELD: &[&str] = &[
    "device",
    "bootproto",
    "ip",
    "netmask",
    "gateway",
    "nameserver",
    "hostname",
    "onboot",
    "ipv6",
    "noipv6",
    "nodns",
    "mtu",
    "essid",
    "wepkey",
    "ethtool",
    "dhcpclass",
    // Activation is the installer's business; an image has nothing to activate.
    "activate",
    "no-activate",
];
const DESKTOP: &[OptSpec] =
    &[value(&["defaultdesktop"]), value(&["autologinuser"]), value(&["defaultdm"]), value(&["session"])];
const LANG: &[OptSpec] = &[value(&["addsupport"])];
const KEYBOARD: &[OptSpec] = &[value(&["vckeymap"]), value(&["xlayouts"]), value(&["switch"])];
const SELINUX: &[OptSpec] = &[flag(&["enforcing"]), flag(&["permissive"]), flag(&["disabled"])];
const FIREWALL: &[OptSpec] = &[
    flag(&["enabled", "enable"]),
    flag(&["disabled", "disable"]),
    value(&["port"]),
    value(&["service"]),
    value(&["trust"]),
    value(&["remove-service"]),
    flag(&["use-system-defaults"]),
    flag(&["ssh"]),
    flag(&["smtp"]),
    flag(&["http"]),
    flag(&["ftp"]),
    flag(&["telnet"]),
];
const SERVICES: &[OptSpec] = &[value(&["enabled"]), value(&["disabled"])];
/// pykickstart's logvol, volgroup and raid options (IMG builds no LVM or RAID; the rules
/// are checked so a kickstart meant for the installer is still told its mistakes).
const LOGVOL: &[OptSpec] = &[
    value(&["fstype"]),
    flag(&["grow"]),
    value(&["maxsize"]),
    value(&["name"]),
    flag(&["noformat"]),
    value(&["percent"]),
    flag(&["recommended"]),
    value(&["size"]),
    flag(&["useexisting"]),
    value(&["vgname"]),
    value(&["fsoptions"]),
    value(&["fsprofile"]),
    flag(&["encrypted"]),
    value(&["passphrase"]),
    value(&["escrowcert"]),
    flag(&["backuppassphrase"]),
    value(&["label"]),
    flag(&["resize"]),
    flag(&["hibernation"]),
    value(&["cipher"]),
    flag(&["thinpool"]),
    flag(&["thin"]),
    value(&["poolname"]),
    value(&["chunksize"]),
    value(&["metadatasize"]),
    value(&["profile"]),
    value(&["cachesize"]),
    value(&["cachemode"]),
    value(&["cachepvs"]),
    value(&["mkfsoptions"]),
    value(&["luks-version"]),
    value(&["pbkdf"]),
    value(&["pbkdf-memory"]),
    value(&["pbkdf-time"]),
    value(&["pbkdf-iterations"]),
    value(&["bytes-per-inode"]),
];
const VOLGROUP: &[OptSpec] = &[
    flag(&["noformat"]),
    flag(&["useexisting"]),
    value(&["reserved-space"]),
    value(&["reserved-percent"]),
    value(&["pesize"]),
];
const RAID: &[OptSpec] = &[
    value(&["device"]),
    value(&["fstype"]),
    value(&["level"]),
    flag(&["noformat"]),
    value(&["spares"]),
    flag(&["useexisting"]),
    value(&["fsoptions"]),
    value(&["fsprofile"]),
    flag(&["encrypted"]),
    value(&["passphrase"]),
    value(&["escrowcert"]),
    flag(&["backuppassphrase"]),
    value(&["label"]),
    value(&["cipher"]),
    value(&["mkfsoptions"]),
    value(&["chunksize"]),
    value(&["luks-version"]),
    value(&["pbkdf"]),
    value(&["pbkdf-memory"]),
    value(&["pbkdf-time"]),
    value(&["pbkdf-iterations"]),
    value(&["bytes-per-inode"]),
];
const XCONFIG: &[OptSpec] = &[
    flag(&["startxonboot"]),
    value(&["defaultdesktop"]),
    value(&["driver"]),
    value(&["depth"]),
    value(&["resolution"]),
    value(&["videoram"]),
    value(&["card"]),
    value(&["monitor"]),
    value(&["hsync"]),
    value(&["vsync"]),
    flag(&["noprobe"]),
    flag(&["server"]),
];
const CLEARPART: &[OptSpec] = &[
    flag(&["all"]),
    flag(&["linux"]),
    flag(&["none"]),
    flag(&["initlabel"]),
    value(&["drives"]),
    value(&["disklabel"]),
    value(&["list"]),
    flag(&["cdl"]),
];
const LOGGING: &[OptSpec] = &[value(&["level"]), value(&["host"]), value(&["port"])];
const URL: &[OptSpec] =
    &[value(&["url"]), value(&["mirrorlist"]), value(&["metalink"]), value(&["proxy"]), flag(&["noverifyssl"])];
const FIRSTBOOT: &[OptSpec] = &[flag(&["enable", "enabled"]), flag(&["disable", "disabled"]), flag(&["reconfig"])];
const AUTOPART: &[OptSpec] = &[
    value(&["type"]),
    flag(&["encrypted"]),
    value(&["passphrase"]),
    flag(&["nohome"]),
    flag(&["noboot"]),
    flag(&["noswap"]),
    flag(&["nolvm"]),
    value(&["fstype"]),
    value(&["cipher"]),
];

const SPECS: &[Spec] = &[
    Spec { names: &["repo", "micrepo"], opts: REPO, args: NONE, open: false, note: None },
    Spec { names: &["part", "partition"], opts: PART, args: OPT, open: false, note: None },
    Spec { names: &["bootloader", "micboot"], opts: BOOTLOADER, args: ANY, open: false, note: None },
    Spec { names: &["btrfs"], opts: BTRFS, args: ANY, open: false, note: None },
    Spec { names: &["timezone"], opts: TIMEZONE, args: OPT, open: false, note: None },
    Spec { names: &["rootpw"], opts: ROOTPW, args: OPT, open: false, note: None },
    Spec { names: &["user"], opts: USER, args: NONE, open: false, note: None },
    Spec { names: &["group"], opts: GROUP, args: NONE, open: false, note: None },
    // `Network::other` names the known options the image does not get (each a warning too).
    Spec { names: &["network"], opts: NETWORK, args: NONE, open: false, note: None },
    Spec { names: &["desktop"], opts: DESKTOP, args: NONE, open: false, note: None },
    Spec { names: &["lang"], opts: LANG, args: ONE, open: false, note: None },
    Spec { names: &["keyboard"], opts: KEYBOARD, args: OPT, open: false, note: None },
    Spec { names: &["selinux"], opts: SELINUX, args: NONE, open: false, note: None },
    Spec { names: &["firewall"], opts: FIREWALL, args: NONE, open: false, note: None },
    Spec { names: &["services"], opts: SERVICES, args: NONE, open: false, note: None },
    Spec { names: &["xconfig"], opts: XCONFIG, args: NONE, open: false, note: None },
    Spec { names: &["clearpart"], opts: CLEARPART, args: NONE, open: false, note: None },
    Spec { names: &["logging"], opts: LOGGING, args: NONE, open: false, note: None },
    Spec { names: &["url"], opts: URL, args: NONE, open: false, note: None },
    Spec { names: &["firstboot"], opts: FIRSTBOOT, args: NONE, open: false, note: None },
    Spec { names: &["autopart"], opts: AUTOPART, args: NONE, open: false, note: None },
    Spec { names: &["logvol"], opts: LOGVOL, args: ONE, open: false, note: None },
    Spec { names: &["volgroup"], opts: VOLGROUP, args: ANY, open: false, note: None },
    Spec { names: &["raid"], opts: RAID, args: ANY, open: false, note: None },
    // Gone from current pykickstart (removed, or kept by old versions only); mic-era
    // kickstarts still have them, so they pass with a warning.
    Spec {
        names: &[
            "install",
            "upgrade",
            "interactive",
            "lilo",
            "lilocheck",
            "langsupport",
            "mouse",
            "deviceprobe",
            "auth",
            "authconfig",
            "device",
            "module",
            "vnc",
            "monitor",
            "method",
            "key",
            "multipath",
            "dmraid",
            "nvdimm",
            "pwpolicy",
        ],
        opts: &[],
        args: ANY,
        open: true,
        note: Some(OBSOLETE),
    },
    // mic's: one comma-separated list of features (mic refused anything else).
    Spec { names: &["installerfw_plugins", "installerfw"], opts: &[], args: ONE, open: false, note: Some(NOT_APPLIED) },
    Spec {
        names: &[
            "zerombr",
            "text",
            "graphical",
            "cmdline",
            "shutdown",
            "reboot",
            "poweroff",
            "halt",
            "skipx",
            "mediacheck",
            "rescue",
        ],
        opts: &[flag(&["eject"]), flag(&["kexec"])],
        args: NONE,
        open: false,
        note: None,
    },
    // Large option sets IMG only passes through.
    Spec {
        names: &[
            "authselect",
            "sshpw",
            "sshkey",
            "reqpart",
            "ostreesetup",
            "eula",
            "driverdisk",
            "iscsi",
            "iscsiname",
            "ignoredisk",
            "realm",
            "liveimg",
            "timesource",
            "snapshot",
            "zfcp",
            "zipl",
            "mount",
            "nfs",
            "harddrive",
            "cdrom",
            "fcoe",
            "updates",
            "hmc",
            "ostreecontainer",
            "bootc",
            "xconfig_",
            "vmlinuz",
        ],
        opts: &[],
        args: ANY,
        open: true,
        note: Some(NOT_APPLIED),
    },
];

/// Result of interpreting one command line.
pub struct Interpreted {
    pub kind: CommandKind,
    pub problems: Vec<Problem>,
}

/// Interprets `name` with `args` (the words after it); `name_col` is the command's column.
pub fn interpret(name: &str, args: &[Word], name_col: usize) -> Interpreted {
    let Some(spec) = SPECS.iter().find(|s| s.names.contains(&name)) else {
        let problems =
            vec![Problem { column: name_col, message: format!("unknown command `{name}`, ignored"), is_error: false }];
        return Interpreted { kind: CommandKind::Unknown, problems };
    };
    let mut m = match_options(name, args, spec.opts, spec.open);
    if let Some(note) = spec.note {
        m.warn(name_col, format!("`{name}` {note}"));
    }
    check_arg_count(name, name_col, spec.args, &mut m);
    let kind = match spec.names.first().copied().unwrap_or("") {
        "repo" => CommandKind::Repo(repo(&mut m, name_col)),
        "part" => CommandKind::Partition(partition(&mut m, name_col)),
        "bootloader" => CommandKind::Bootloader(bootloader(&mut m)),
        "btrfs" => CommandKind::Btrfs(btrfs(&mut m, name_col)),
        "timezone" => CommandKind::Timezone(timezone(&mut m, name_col)),
        "rootpw" => CommandKind::Rootpw(rootpw(&mut m, name_col)),
        "user" => CommandKind::User(user(&mut m, name_col)),
        "group" => CommandKind::Group(group(&mut m, name_col)),
        "network" => CommandKind::Network(network(&mut m)),
        "desktop" => CommandKind::Desktop(Desktop {
            defaultdesktop: m.string("defaultdesktop"),
            autologinuser: m.string("autologinuser"),
            defaultdm: m.string("defaultdm"),
            session: m.string("session"),
        }),
        "lang" => CommandKind::Lang(m.positionals.first().map(|w| w.text.clone()).unwrap_or_default()),
        first => {
            super::rules::check(first, &mut m, name_col);
            CommandKind::Generic
        }
    };
    Interpreted { kind, problems: m.problems }
}

fn check_arg_count(name: &str, name_col: usize, args: Args, m: &mut Matched) {
    let count = m.positionals.len();
    if count < args.min {
        m.error(name_col, format!("{name} requires an argument"));
    } else if count > args.max {
        let column = m.positionals.get(args.max).map(|w| w.column).unwrap_or(name_col);
        let extra: Vec<&str> = m.positionals.iter().skip(args.max).map(|w| w.text.as_str()).collect();
        m.warn(column, format!("unexpected argument(s) to {name} ignored: {}", extra.join(" ")));
    }
}

fn list(m: &Matched, name: &str) -> Vec<String> {
    m.string(name)
        .map(|v| v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect())
        .unwrap_or_default()
}

fn repo(m: &mut Matched, name_col: usize) -> Repo {
    let name = m.string("name");
    if name.as_deref().is_none_or(str::is_empty) {
        m.error(name_col, "repo requires --name");
    }
    let baseurl = m.string("baseurl");
    let mirrorlist = m.string("mirrorlist");
    if baseurl.is_none() && mirrorlist.is_none() && m.string("metalink").is_none() {
        m.error(name_col, "repo requires --baseurl or --mirrorlist");
    }
    super::rules::only_one(m, "repo", &["baseurl", "mirrorlist", "metalink"]);
    Repo {
        name: name.unwrap_or_default(),
        baseurl,
        mirrorlist,
        save: m.flag("save"),
        debuginfo: m.flag("debuginfo"),
        source: m.flag("source"),
        gpgkey: m.string("gpgkey"),
        ssl_verify: m.string("ssl_verify"),
        priority: m.int("priority", "repository priority"),
        cost: m.int("cost", "repository cost"),
        includepkgs: list(m, "includepkgs"),
        excludepkgs: list(m, "excludepkgs"),
        proxy: m.string("proxy"),
        proxyuser: m.string("proxyuser"),
        proxypasswd: m.string("proxypasswd"),
        disable: m.flag("disable"),
        user: m.string("user"),
        passwd: m.string("passwd"),
        nocache: m.flag("nocache"),
    }
}

fn partition(m: &mut Matched, name_col: usize) -> Partition {
    let mountpoint = m.positionals.first().map(|w| w.text.clone());
    if mountpoint.is_none() {
        m.error(name_col, "part requires a mountpoint");
    }
    if m.get("fstype").is_some_and(|(f, _)| f == "tmpfs") && (m.flag("grow") || m.flag("maxsize")) {
        m.error(name_col, "part --fstype=tmpfs cannot be used with --grow or --maxsize");
    }
    Partition {
        mountpoint: mountpoint.unwrap_or_default(),
        size: m.int("size", "size in MiB"),
        fstype: m.string("fstype"),
        ondisk: m.string("ondisk"),
        label: m.string("label"),
        align: m.int("align", "alignment in KiB"),
        active: m.flag("active"),
        fsoptions: m.string("fsoptions"),
        extoptions: m.string("extoptions"),
        part_type: m.string("part-type"),
        uuid: m.string("uuid"),
        grow: m.flag("grow"),
        asprimary: m.flag("asprimary"),
    }
}

fn bootloader(m: &mut Matched) -> Bootloader {
    super::rules::choice(m, "bootloader", "location", &["mbr", "partition", "none", "boot"]);
    Bootloader {
        append: m.string("append"),
        timeout: m.int("timeout", "seconds"),
        location: m.string("location"),
        ptable: m.string("ptable"),
        menus: m.string("menus"),
        disabled: m.flag("disabled"),
        password_set: m.string("password").is_some() || m.string("md5pass").is_some(),
    }
}

fn btrfs(m: &mut Matched, name_col: usize) -> Btrfs {
    for level in ["data", "metadata"] {
        super::rules::choice_folded(m, "btrfs", level, &["raid0", "0", "raid1", "1", "raid10", "10", "single"]);
    }
    let b = Btrfs {
        mountpoint: m.positionals.first().map(|w| w.text.clone()),
        devices: m.positionals.iter().skip(1).map(|w| w.text.clone()).collect(),
        label: m.string("label"),
        name: m.string("name").filter(|n| !n.is_empty()),
        parent: m.string("parent"),
        base: m.string("base"),
        subvol: m.flag("subvol"),
        snapshot: m.flag("snapshot"),
        quota: m.flag("quota"),
        data: m.string("data"),
        metadata: m.string("metadata"),
    };
    // mic's rules (custom_commands/btrfs.py).
    let problem = if b.mountpoint.is_none() && !b.snapshot {
        Some("btrfs must be given a mountpoint")
    } else if b.devices.is_empty() && b.mountpoint.is_some() && !b.subvol {
        Some("btrfs must be given a list of partitions")
    } else if b.subvol && b.devices.is_empty() {
        Some("btrfs subvol requires specification of parent volume")
    } else if (b.subvol || b.snapshot) && b.name.is_none() {
        Some("btrfs subvolume or snapshot requires --name")
    } else if b.snapshot && b.subvol {
        Some("btrfs subvolume cannot be a snapshot at the same time")
    } else if b.snapshot && b.base.is_none() {
        Some("btrfs snapshot requires --base")
    } else {
        None
    };
    if let Some(message) = problem {
        m.error(name_col, message);
    }
    b
}

fn timezone(m: &mut Matched, name_col: usize) -> Timezone {
    let timezone = m.positionals.first().map(|w| w.text.clone());
    if timezone.is_none() && m.values.is_empty() {
        m.error(name_col, "timezone requires a time zone or an option");
    }
    super::rules::conflict(m, "timezone", "nontp", "ntpservers");
    Timezone { timezone, utc: m.flag("utc") || m.flag("isUTC"), nontp: m.flag("nontp") }
}

fn rootpw(m: &mut Matched, name_col: usize) -> Rootpw {
    let password = m.positionals.first().map(|w| w.text.clone());
    let lock = m.flag("lock");
    if password.is_none() && !lock {
        m.error(name_col, "rootpw requires a password (or --lock)");
    }
    Rootpw { password, iscrypted: m.flag("iscrypted"), lock }
}

fn user(m: &mut Matched, name_col: usize) -> User {
    let name = m.string("name");
    if name.as_deref().is_none_or(str::is_empty) {
        m.error(name_col, "user requires --name");
    }
    User {
        name: name.unwrap_or_default(),
        password: m.string("password"),
        groups: list(m, "groups"),
        iscrypted: m.flag("iscrypted"),
        lock: m.flag("lock"),
        uid: id(m, "uid", "user id"),
        gid: id(m, "gid", "group id"),
        shell: m.string("shell"),
        homedir: m.string("homedir"),
        gecos: m.string("gecos"),
    }
}

fn group(m: &mut Matched, name_col: usize) -> Group {
    let name = m.string("name");
    if name.as_deref().is_none_or(str::is_empty) {
        m.error(name_col, "group requires --name");
    }
    Group { name: name.unwrap_or_default(), gid: id(m, "gid", "group id") }
}

/// A user or group id: a whole number that fits 32 bits.
fn id(m: &mut Matched, name: &str, what: &str) -> Option<u32> {
    let n = m.int(name, what)?;
    match u32::try_from(n) {
        Ok(id) => Some(id),
        Err(_) => {
            let column = m.get(name).map(|(_, c)| c).unwrap_or(0);
            m.error(column, format!("--{name} must be between 0 and 4294967295 ({what}), not {n}"));
            None
        }
    }
}

fn network(m: &mut Matched) -> Network {
    let yes = |v: String| !matches!(v.to_ascii_lowercase().as_str(), "no" | "off" | "0" | "false");
    super::rules::choice(m, "network", "bootproto", &["dhcp", "bootp", "static", "query", "ibft"]);
    let mut other: Vec<String> = Vec::new();
    let mut unapplied = Vec::new();
    for (name, _, column) in &m.values {
        if !NETWORK_HELD.contains(name) && !other.iter().any(|o| o == name) {
            other.push((*name).to_owned());
            unapplied.push((*name, *column));
        }
    }
    for (name, column) in unapplied {
        m.warn(column, format!("option --{name} of network is not applied by IMG, ignored"));
    }
    Network {
        device: m.string("device"),
        bootproto: m.string("bootproto"),
        ip: m.string("ip"),
        netmask: m.string("netmask"),
        gateway: m.string("gateway"),
        nameservers: list(m, "nameserver"),
        hostname: m.string("hostname"),
        onboot: m.string("onboot").map(yes),
        ipv6: m.string("ipv6"),
        noipv6: m.flag("noipv6"),
        nodns: m.flag("nodns"),
        mtu: m.string("mtu"),
        essid: m.string("essid"),
        wepkey: m.string("wepkey"),
        ethtool: m.string("ethtool"),
        dhcpclass: m.string("dhcpclass"),
        other,
    }
}
