//! System settings from the kickstart, applied to the installed root as mic applied them:
//! plain files written from Rust (locale, fstab, network, …), the image's own tools where a
//! setting needs them (useradd, systemctl), and a warning for what could not be applied.

mod accounts;
mod network;
mod repos;
pub mod rootfs;

use crate::error::{CreateError, Result};
use crate::layout::{fstab, Volume};
use crate::plan::{Plan, Settings};
use crate::warnings::Warnings;
use img_core::kickstart::model::PackagesOptions;
use rootfs::RootFs;
use std::path::Path;

pub fn apply(root: &Path, plan: &Plan, volumes: &[Volume], arch: img_core::job::Arch, warn: &Warnings) -> Result<()> {
    let s = &plan.settings;
    let fs = RootFs::for_target(root, arch);
    fs.dir("etc")?;
    if let Some(lang) = &s.lang {
        fs.write("etc/locale.conf", &format!("LANG={lang}\n"), 0o644)?;
    }
    if let Some(k) = &s.keyboard {
        fs.write("etc/vconsole.conf", &format!("KEYMAP={k}\n"), 0o644)?;
    }
    timezone(&fs, s, warn)?;
    accounts::apply(&fs, s, warn)?;
    network::apply(&fs, s, warn)?;
    if let Some(mode) = &s.selinux {
        selinux(&fs, mode)?;
    }
    if let Some(on) = s.firewall {
        firewall(&fs, on)?;
    }
    desktop(&fs, s)?;
    services(&fs, s, warn)?;
    fs.write("etc/rpm/macros.imgcreate", &rpm_macros(&plan.packages_options), 0o644)?;
    if !volumes.is_empty() {
        fs.write("etc/fstab", &fstab(volumes), 0o644)?;
    }
    repos::save(&fs, &plan.repos, warn)
}

/// mic's /etc/rpm/macros.imgcreate: what the install honoured, kept for later installs.
pub fn rpm_macros(o: &PackagesOptions) -> String {
    let mut s = String::new();
    if o.excludedocs {
        s.push_str("%_excludedocs 1\n");
    }
    s.push_str("%__file_context_path %{nil}\n");
    if let Some(langs) = o.inst_langs.as_deref().filter(|l| !l.is_empty()) {
        s.push_str(&format!("%_install_langs {langs}\n"));
    }
    s
}

fn timezone(fs: &RootFs, s: &Settings, warn: &Warnings) -> Result<()> {
    let Some(tz) = &s.timezone else { return Ok(()) };
    let Some(zone) = tz.timezone.as_deref() else { return Ok(()) };
    if zone.split('/').any(|p| p.is_empty() || p == "." || p == "..") || zone.contains(char::is_whitespace) {
        return Err(CreateError::Image(format!("timezone `{zone}` is not a zone name like Europe/Helsinki")));
    }
    if !fs.exists(&format!("usr/share/zoneinfo/{zone}")) {
        warn.warn(format!("timezone {zone}: no tzdata for it in the image; /etc/localtime points to it anyway"));
    }
    let link = fs.dir("etc")?.join("localtime");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(format!("../usr/share/zoneinfo/{zone}"), &link)
        .map_err(CreateError::io("cannot link", &link))?;
    fs.write("etc/timezone", &format!("{zone}\n"), 0o644)?;
    fs.write("etc/sysconfig/clock", &format!("ZONE=\"{zone}\"\nUTC={}\n", tz.utc), 0o644)
}

fn selinux(fs: &RootFs, mode: &str) -> Result<()> {
    if !fs.exists("etc/selinux/config") {
        tracing::info!("selinux --{mode}: the image has no SELinux policy; nothing to set");
        return Ok(());
    }
    fs.write("etc/selinux/config", &format!("SELINUX={mode}\nSELINUXTYPE=targeted\n"), 0o644)
}

fn firewall(fs: &RootFs, enabled: bool) -> Result<()> {
    let tool = "usr/bin/firewall-offline-cmd";
    if !fs.exists(tool) {
        tracing::info!("firewall: the image has no firewalld; nothing to set");
        return Ok(());
    }
    let flag = if enabled { "--enabled" } else { "--disabled" };
    fs.chroot(&[&format!("/{tool}"), flag]).run().map(drop).map_err(CreateError::in_phase("firewall"))
}

fn desktop(fs: &RootFs, s: &Settings) -> Result<()> {
    let mut text = String::new();
    if let Some(d) = &s.desktop {
        for (key, v) in [
            ("DESKTOP", &d.defaultdesktop),
            ("DISPLAYMANAGER", &d.defaultdm),
            ("AUTOLOGIN_USER", &d.autologinuser),
            ("SESSION", &d.session),
        ] {
            if let Some(v) = v {
                text.push_str(&format!("{key}=\"{v}\"\n"));
            }
        }
    }
    if !text.is_empty() {
        fs.write("etc/sysconfig/desktop", &text, 0o644)?;
    }
    if s.start_x {
        if fs.exists("usr/lib/systemd/system/graphical.target") {
            let target = fs.dir("etc/systemd/system")?.join("default.target");
            let _ = std::fs::remove_file(&target);
            std::os::unix::fs::symlink("/usr/lib/systemd/system/graphical.target", &target)
                .map_err(CreateError::io("cannot link", &target))?;
        } else {
            tracing::info!("xconfig --startxonboot: the image has no systemd graphical.target; nothing to set");
        }
    }
    Ok(())
}

/// Each unit through the image's systemctl; one that fails is a warning, as mic ignored it.
fn services(fs: &RootFs, s: &Settings, warn: &Warnings) -> Result<()> {
    if s.services.is_empty() {
        return Ok(());
    }
    let Some(systemctl) = ["usr/bin/systemctl", "bin/systemctl"].into_iter().find(|p| fs.exists(p)) else {
        let units: Vec<&str> = s.services.iter().map(|u| u.unit.as_str()).collect();
        let line = s.services[0].line;
        warn.warn(format!("services (line {line}): the image has no systemctl; not applied to {}", units.join(", ")));
        return Ok(());
    };
    let tool = format!("/{systemctl}");
    for u in &s.services {
        let (verb, opt) = if u.enable { ("enable", "enabled") } else { ("disable", "disabled") };
        match fs.chroot(&[&tool, verb, &u.unit]).run() {
            Ok(_) => {}
            Err(crate::cmd::CmdError::Cancelled) => return Err(CreateError::Cancelled),
            Err(e) => warn.warn(format!("services --{opt}={} (line {}): not {verb}d: {e}", u.unit, u.line)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workdir::TempDir;
    use img_core::job::Arch;
    use img_core::kickstart::{parse, ParseOptions, TokenMap};
    use img_core::source::NoFiles;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    /// A root with passwd, group and shadow; `plant` adds what the test needs.
    fn root_with(plant: impl FnOnce(&Path)) -> TempDir {
        let dir = TempDir::new_in(&std::env::temp_dir(), "img-configure-").unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
        std::fs::write(root.join("etc/group"), "root:x:0:\nwheel:x:10:root\n").unwrap();
        std::fs::write(root.join("etc/shadow"), "root:*:19000:0:99999:7:::\n").unwrap();
        plant(root);
        dir
    }

    fn apply_to(dir: &TempDir, ks: &str) -> Vec<String> {
        let parsed =
            parse(ks, &ParseOptions { file: "t.ks", tokens: &TokenMap::new(), literal_tokens: false }, &NoFiles);
        let warn = Warnings::default();
        apply(dir.path(), &Plan::of(&parsed.kickstart), &[], Arch::X86_64, &warn).unwrap();
        warn.take()
    }

    fn apply_ks(ks: &str) -> TempDir {
        let d = root_with(|_| {});
        apply_to(&d, ks);
        d
    }

    fn read(dir: &TempDir, rel: &str) -> String {
        std::fs::read_to_string(dir.path().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }

    fn plant(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// busybox as the image's /bin/sh, so the image's own tools (stand-ins) can run chrooted.
    fn busybox(root: &Path) {
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::copy("/bin/busybox", root.join("bin/busybox")).expect("busybox-static");
        for applet in ["sh", "echo", "cat"] {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
        }
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
        assert_eq!(home.uid(), 1000);
        assert_eq!(d.path().join("etc/shadow").metadata().unwrap().mode() & 0o777, 0o600);
    }

    /// Sailfish's login.defs starts users at 100000; its %post finds the user by that.
    #[test]
    fn text_accounts_follow_login_defs_and_the_user_options() {
        let d = root_with(|r| {
            plant(r, "etc/login.defs", "UID_MIN\t\t\t100000\nGID_MIN\t\t\t100000\n");
            plant(r, "etc/default/useradd", "HOME=/home\nSHELL=/bin/ash\n");
        });
        let warnings = apply_to(
            &d,
            "user --name=nemo --groups=audio,wheel\nuser --name=guest --lock\n\
             user --name=dev --uid=2000 --gid=3000 --shell=/bin/zsh --homedir=/srv/dev --gecos=Developer --password=pw\n",
        );
        let passwd = read(&d, "etc/passwd");
        assert!(passwd.lines().any(|l| l == "nemo:x:100000:100001::/home/nemo:/bin/ash"), "{passwd}");
        assert!(passwd.lines().any(|l| l == "guest:x:100001:100002::/home/guest:/bin/ash"), "{passwd}");
        assert!(passwd.lines().any(|l| l == "dev:x:2000:3000:Developer:/srv/dev:/bin/zsh"), "{passwd}");
        let group = read(&d, "etc/group");
        for line in ["audio:x:100000:nemo", "wheel:x:10:root,nemo", "nemo:x:100001:", "dev:x:3000:"] {
            assert!(group.lines().any(|l| l == line), "{line} missing in\n{group}");
        }
        let shadow = read(&d, "etc/shadow");
        assert!(shadow.lines().any(|l| l.starts_with("nemo::")), "no password is an empty one, as mic: {shadow}");
        assert!(shadow.lines().any(|l| l.starts_with("guest:!:")), "--lock: {shadow}");
        assert!(shadow.lines().any(|l| l.starts_with("dev:$6$")), "{shadow}");
        assert_eq!(warnings, ["user --name=nemo (line 1): group audio is not in the image; created it"]);
        assert_eq!(d.path().join("srv/dev").metadata().unwrap().uid(), 2000);
    }

    const USERADD: &str = r#"#!/bin/sh
echo "useradd $*" >> /standin.log
uid=4242 gid=4242 name=
while [ $# -gt 0 ]; do
  case $1 in
    --uid) uid=$2; shift 2 ;;
    --gid) gid=$2; shift 2 ;;
    --create-home) shift ;;
    --*) shift 2 ;;
    *) name=$1; shift ;;
  esac
done
echo "$name:x:$uid:$gid::/home/$name:/bin/sh" >> /etc/passwd
"#;
    const GROUPADD: &str = r#"#!/bin/sh
echo "groupadd $*" >> /standin.log
gid=5555
[ "$1" = --gid ] && { gid=$2; shift 2; }
echo "$1:x:$gid:" >> /etc/group
"#;
    const SYSTEMCTL: &str = r#"#!/bin/sh
echo "systemctl $*" >> /standin.log
case $2 in
  sshd|sshd.service) exit 0 ;;
  *) echo "Failed to $1 unit: Unit file $2.service does not exist." >&2; exit 1 ;;
esac
"#;

    #[test]
    fn the_images_own_useradd_and_groupadd_run_chrooted() {
        let d = root_with(|r| {
            busybox(r);
            plant(r, "usr/sbin/useradd", USERADD);
            plant(r, "usr/sbin/groupadd", GROUPADD);
        });
        let warnings = apply_to(
            &d,
            "group --name=builders --gid=1500\ngroup --name=wheel --gid=11\nuser --name=nemo --groups=audio,wheel --uid=100000 --gid=100000 \
             --shell=/bin/sh --password=$6$x$y --iscrypted\n",
        );
        assert_eq!(
            read(&d, "standin.log"),
            "groupadd --gid 1500 builders\ngroupadd audio\ngroupadd --gid 100000 nemo\n\
             useradd --create-home --uid 100000 --gid 100000 --groups audio,wheel --shell /bin/sh nemo\n"
        );
        assert!(read(&d, "etc/passwd").lines().any(|l| l == "nemo:x:100000:100000::/home/nemo:/bin/sh"));
        let group = read(&d, "etc/group");
        assert!(group.lines().any(|l| l == "audio:x:5555:nemo") && group.contains("wheel:x:10:root,nemo"), "{group}");
        assert!(read(&d, "etc/shadow").lines().any(|l| l.starts_with("nemo:$6$x$y:")), "the password is set in shadow");
        assert_eq!(
            warnings,
            [
                "group --name=wheel (line 2): the group is in the image already with gid 10; kept it",
                "user --name=nemo (line 3): group audio is not in the image; created it"
            ]
        );
    }

    #[test]
    fn a_failing_useradd_fails_the_build_naming_the_line() {
        let d = root_with(|r| {
            busybox(r);
            plant(r, "usr/sbin/useradd", "#!/bin/sh\necho 'useradd: cannot lock /etc/passwd' >&2\nexit 1\n");
        });
        let parsed = parse(
            "\nuser --name=nemo\n",
            &ParseOptions { file: "t.ks", tokens: &TokenMap::new(), literal_tokens: false },
            &NoFiles,
        );
        let e = apply(d.path(), &Plan::of(&parsed.kickstart), &[], Arch::X86_64, &Warnings::default())
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("user --name=nemo (line 2): the image's useradd failed: "), "{e}");
        assert!(e.contains("cannot lock /etc/passwd"), "{e}");
    }

    #[test]
    fn units_the_image_lacks_are_warnings() {
        let d = root_with(|r| {
            busybox(r);
            plant(r, "usr/bin/systemctl", SYSTEMCTL);
        });
        let warnings = apply_to(&d, "services --enabled=sshd,nosuch --disabled=gone\n");
        assert_eq!(read(&d, "standin.log"), "systemctl enable sshd\nsystemctl enable nosuch\nsystemctl disable gone\n");
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].starts_with("services --enabled=nosuch (line 1): not enabled: "), "{warnings:?}");
        assert!(warnings[0].contains("Unit file nosuch.service does not exist"), "{warnings:?}");
        assert!(warnings[1].starts_with("services --disabled=gone (line 1): not disabled: "), "{warnings:?}");

        let bare = root_with(|_| {});
        let warnings = apply_to(&bare, "\nservices --enabled=sshd\n");
        assert_eq!(warnings, ["services (line 2): the image has no systemctl; not applied to sshd"]);
    }

    const STATIC: &str = "network --device=eth0 --bootproto=static --ip=10.0.0.5 --netmask=255.255.255.0 \
        --gateway=10.0.0.1 --nameserver=1.1.1.1,9.9.9.9 --hostname=box.example.org --mtu=1400 --bondslaves=eth1\n";

    #[test]
    fn network_as_mic_wrote_it() {
        let d = root_with(|_| {});
        let warnings =
            apply_to(&d, &format!("{STATIC}network --device=wlan0 --bootproto=dhcp --onboot=no --essid=home\n"));
        assert_eq!(
            read(&d, "etc/sysconfig/network-scripts/ifcfg-eth0"),
            "DEVICE=eth0\nBOOTPROTO=static\nIPADDR=10.0.0.5\nNETMASK=255.255.255.0\nONBOOT=on\nMTU=1400\n"
        );
        assert_eq!(
            read(&d, "etc/sysconfig/network-scripts/ifcfg-wlan0"),
            "DEVICE=wlan0\nBOOTPROTO=dhcp\nONBOOT=off\nESSID=home\n"
        );
        assert_eq!(
            read(&d, "etc/sysconfig/network"),
            "NETWORKING=yes\nNETWORKING_IPV6=no\nHOSTNAME=box.example.org\nGATEWAY=10.0.0.1\n"
        );
        assert!(read(&d, "etc/hosts").starts_with("127.0.0.1\t\tbox.example.org box localhost.localdomain localhost\n"));
        assert_eq!(read(&d, "etc/resolv.conf"), "nameserver 1.1.1.1\nnameserver 9.9.9.9\n");
        assert_eq!(read(&d, "etc/hostname"), "box.example.org\n");
        assert_eq!(warnings, ["network (line 1): --bondslaves is not applied to the image"]);
    }

    #[test]
    fn network_in_networkmanagers_format_when_the_image_runs_it() {
        let d = root_with(|r| plant(r, "usr/sbin/NetworkManager", ""));
        let warnings = apply_to(&d, &format!("{STATIC}network --device=eth1 --ethtool=speed 100\n"));
        let conn = d.path().join("etc/NetworkManager/system-connections/eth0.nmconnection");
        assert_eq!(
            std::fs::read_to_string(&conn).unwrap(),
            "[connection]\nid=eth0\ntype=ethernet\ninterface-name=eth0\n\n[ethernet]\nmtu=1400\n\n\
             [ipv4]\nmethod=manual\naddress1=10.0.0.5/24,10.0.0.1\ndns=1.1.1.1;9.9.9.9;\n\n[ipv6]\nmethod=auto\n"
        );
        assert_eq!(conn.metadata().unwrap().mode() & 0o777, 0o600, "NetworkManager ignores readable keyfiles");
        assert!(read(&d, "etc/NetworkManager/system-connections/eth1.nmconnection").contains("method=auto"));
        assert!(!d.path().join("etc/sysconfig/network-scripts").exists(), "no ifcfg nobody reads");
        assert_eq!(
            warnings,
            [
                "network (line 1): --bondslaves is not applied to the image",
                "network (line 2): --ethtool is not applied: the image's network stack (NetworkManager) has no such setting"
            ]
        );
    }

    #[test]
    fn network_as_systemd_networkd_units() {
        let d = root_with(|r| plant(r, "usr/lib/systemd/systemd-networkd", ""));
        apply_to(&d, &format!("{STATIC}network --device=eth1 --bootproto=dhcp --noipv6 --onboot=off\n"));
        assert_eq!(
            read(&d, "etc/systemd/network/10-eth0.network"),
            "[Match]\nName=eth0\n\n[Link]\nMTUBytes=1400\n\n[Network]\nAddress=10.0.0.5/24\nGateway=10.0.0.1\n\
             DNS=1.1.1.1\nDNS=9.9.9.9\n"
        );
        assert_eq!(
            read(&d, "etc/systemd/network/10-eth1.network"),
            "[Match]\nName=eth1\n\n[Link]\nActivationPolicy=manual\n\n[Network]\nDHCP=ipv4\nIPv6AcceptRA=no\n\
             LinkLocalAddressing=ipv4\n"
        );
    }

    #[test]
    fn network_lines_that_cannot_be_applied_are_warnings() {
        let d = root_with(|_| {});
        let warnings = apply_to(
            &d,
            "network --bootproto=static --ip=10.0.0.5 --netmask=255.255.255.0\n\
             network --device=eth0 --bootproto=static --ip=10.0.0.5\nnetwork --device=../../x --bootproto=dhcp\n\
             network --bootproto=dhcp --hostname=plain\n",
        );
        assert_eq!(
            warnings,
            [
                "network (line 1): no --device, so no interface is configured (mic refused this line)",
                "network (line 2): --bootproto=static needs --ip and a valid --netmask; eth0 not configured",
                "network (line 3): --device=../../x is not an interface name; not configured",
            ]
        );
        assert!(!d.path().join("etc/sysconfig/network-scripts/ifcfg-eth0").exists());
        assert_eq!(read(&d, "etc/hostname"), "plain\n");
    }

    /// A package or %pre may leave links where configure writes: they are replaced, never followed.
    #[test]
    fn links_planted_in_the_image_do_not_reach_the_host() {
        let outside = TempDir::new_in(&std::env::temp_dir(), "img-configure-host-").unwrap();
        let host_file = outside.path().join("hosts");
        std::fs::write(&host_file, "host's own\n").unwrap();
        let d = root_with(|r| {
            std::os::unix::fs::symlink(&host_file, r.join("etc/hosts")).unwrap();
            std::os::unix::fs::symlink(&host_file, r.join("etc/resolv.conf")).unwrap();
            std::os::unix::fs::symlink(outside.path(), r.join("etc/rpm")).unwrap();
        });
        let parsed = parse(
            "network --device=eth0 --bootproto=dhcp --nameserver=1.1.1.1 --hostname=box\n",
            &ParseOptions { file: "t.ks", tokens: &TokenMap::new(), literal_tokens: false },
            &NoFiles,
        );
        let e = apply(d.path(), &Plan::of(&parsed.kickstart), &[], Arch::X86_64, &Warnings::default()).unwrap_err();
        assert!(e.to_string().contains("/etc/rpm is a link"), "{e}");
        assert_eq!(std::fs::read_to_string(&host_file).unwrap(), "host's own\n");
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 1, "nothing written into the linked folder");
        assert!(read(&d, "etc/hosts").contains("box"));
        assert_eq!(read(&d, "etc/resolv.conf"), "nameserver 1.1.1.1\n");
    }

    #[test]
    fn saved_repos_land_in_yum_repos_d() {
        let d = apply_ks(
            "repo --name=extra --baseurl=http://h/x/ --save\nrepo --name=tmp --baseurl=http://h/y/\n\
             repo --name=later --baseurl=http://h/z/ --save --disable\n",
        );
        assert!(read(&d, "etc/yum.repos.d/extra.repo").contains("baseurl=http://h/x/"));
        assert!(!read(&d, "etc/yum.repos.d/extra.repo").contains("enabled=0"));
        assert!(read(&d, "etc/yum.repos.d/later.repo").lines().any(|l| l == "enabled=0"));
        assert!(!d.path().join("etc/yum.repos.d/tmp.repo").exists());
    }

    #[test]
    fn saved_repos_go_to_zypper_in_images_that_use_it() {
        let d = root_with(|r| plant(r, "usr/bin/zypper", ""));
        let warnings = apply_to(&d, "repo --name=jolla --baseurl=http://h/j/ --user=u --passwd=secret --save\n");
        assert_eq!(
            read(&d, "etc/zypp/repos.d/jolla.repo"),
            "[jolla]\nname=jolla\nfailovermethod=priority\nbaseurl=http://h/j/\ngpgcheck=0\nenabled=1\n\n"
        );
        assert!(!d.path().join("etc/yum.repos.d").exists());
        assert_eq!(warnings, ["repo --name=jolla: its proxy and credentials are not saved into the image (as mic)"]);
    }

    #[test]
    fn rpm_macros_as_mic_wrote_them() {
        let d = apply_ks("%packages --excludedocs --instLangs=fi:de\na\n%end\n");
        assert_eq!(
            read(&d, "etc/rpm/macros.imgcreate"),
            "%_excludedocs 1\n%__file_context_path %{nil}\n%_install_langs fi:de\n"
        );
    }
}
