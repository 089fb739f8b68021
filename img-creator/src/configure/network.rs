//! `network`: the files mic wrote (ifcfg-DEV, sysconfig/network, hosts, resolv.conf), or, when
//! the image runs NetworkManager or systemd-networkd, a connection in that stack's own format
//! instead of the ifcfg file nothing would read. Every option not written is a warning.

use super::rootfs::RootFs;
use crate::error::Result;
use crate::plan::{AtLine, Settings};
use crate::warnings::Warnings;
use img_core::kickstart::commands::Network;
use std::fmt::Write as _;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stack {
    Ifcfg,
    NetworkManager,
    Networkd,
}

impl Stack {
    fn of(fs: &RootFs) -> Stack {
        let any = |paths: &[&str]| paths.iter().any(|p| fs.exists(p));
        if any(&["usr/sbin/NetworkManager", "usr/bin/NetworkManager"]) {
            Stack::NetworkManager
        } else if any(&["usr/lib/systemd/systemd-networkd", "lib/systemd/systemd-networkd"]) {
            Stack::Networkd
        } else {
            Stack::Ifcfg
        }
    }

    /// Options this stack's file has no place for (written only by mic's ifcfg).
    fn unsupported(self, n: &Network) -> Vec<&'static str> {
        let given = [
            ("essid", n.essid.is_some()),
            ("wepkey", n.wepkey.is_some()),
            ("ethtool", n.ethtool.is_some()),
            ("dhcpclass", n.dhcpclass.is_some()),
        ];
        match self {
            Stack::Ifcfg => Vec::new(),
            Stack::NetworkManager => given.into_iter().filter(|(o, g)| *g && *o != "essid").map(|(o, _)| o).collect(),
            Stack::Networkd => given.into_iter().filter(|(_, g)| *g).map(|(o, _)| o).collect(),
        }
    }
}

pub fn apply(fs: &RootFs, s: &Settings, warn: &Warnings) -> Result<()> {
    if let Some(h) = &s.hostname {
        fs.write("etc/hostname", &format!("{h}\n"), 0o644)?;
    }
    if s.networks.is_empty() {
        return Ok(());
    }
    let stack = Stack::of(fs);
    for at in &s.networks {
        device(fs, stack, at, warn)?;
    }
    let nets = || s.networks.iter().map(|n| &n.value);
    let gateway = nets().filter_map(|n| n.gateway.clone()).next_back();
    let ipv6 = nets().any(|n| n.ipv6.is_some());
    fs.write("etc/sysconfig/network", &sysconfig_network(ipv6, s.hostname.as_deref(), gateway.as_deref()), 0o644)?;
    fs.write("etc/hosts", &hosts(s.hostname.as_deref()), 0o644)?;
    let nameservers = nets().filter(|n| !n.nameservers.is_empty()).map(|n| &n.nameservers).next_back();
    if let Some(ns) = nameservers.filter(|_| !nets().any(|n| n.nodns)) {
        fs.write("etc/resolv.conf", &ns.iter().map(|n| format!("nameserver {n}\n")).collect::<String>(), 0o644)?;
    }
    Ok(())
}

fn device(fs: &RootFs, stack: Stack, at: &AtLine<Network>, warn: &Warnings) -> Result<()> {
    let n = &at.value;
    let what = format!("network (line {})", at.line);
    for o in &n.other {
        warn.warn(format!("{what}: --{o} is not applied to the image"));
    }
    let Some(dev) = &n.device else {
        let static_ip = n.bootproto.as_deref().is_some_and(|b| !b.eq_ignore_ascii_case("dhcp"));
        if static_ip || n.ip.is_some() || n.mtu.is_some() || n.essid.is_some() || n.ethtool.is_some() {
            warn.warn(format!("{what}: no --device, so no interface is configured (mic refused this line)"));
        }
        return Ok(());
    };
    if dev.is_empty() || !dev.chars().all(|c| c.is_ascii_alphanumeric() || "_.:-".contains(c)) || dev.starts_with('.') {
        warn.warn(format!("{what}: --device={dev} is not an interface name; not configured"));
        return Ok(());
    }
    let bootproto = n.bootproto.clone().unwrap_or_else(|| "dhcp".into()).to_ascii_lowercase();
    let dhcp = bootproto == "dhcp";
    let onboot = n.onboot.unwrap_or(true);
    let prefix = n.netmask.as_deref().and_then(prefix_len);
    if !dhcp && (n.ip.is_none() || prefix.is_none()) {
        warn.warn(format!("{what}: --bootproto={bootproto} needs --ip and a valid --netmask; {dev} not configured"));
        return Ok(());
    }
    for o in stack.unsupported(n) {
        warn.warn(format!("{what}: --{o} is not applied: the image's network stack ({stack:?}) has no such setting"));
    }
    let address = match (&n.ip, prefix) {
        (Some(ip), Some(p)) if !dhcp => Some(format!("{ip}/{p}")),
        _ => None,
    };
    match stack {
        Stack::Ifcfg => {
            fs.write(&format!("etc/sysconfig/network-scripts/ifcfg-{dev}"), &ifcfg(dev, &bootproto, onboot, n), 0o644)?;
            if let Some(key) = &n.wepkey {
                fs.write(&format!("etc/sysconfig/network-scripts/keys-{dev}"), &format!("KEY={key}\n"), 0o600)?;
            }
        }
        Stack::NetworkManager => {
            let text = keyfile(dev, onboot, address.as_deref(), n);
            fs.write(&format!("etc/NetworkManager/system-connections/{dev}.nmconnection"), &text, 0o600)?;
        }
        Stack::Networkd => {
            fs.write(
                &format!("etc/systemd/network/10-{dev}.network"),
                &networkd(dev, onboot, address.as_deref(), n),
                0o644,
            )?;
        }
    }
    Ok(())
}

/// mic's ifcfg file, line for line.
fn ifcfg(dev: &str, bootproto: &str, onboot: bool, n: &Network) -> String {
    let mut s = format!("DEVICE={dev}\nBOOTPROTO={}\n", n.bootproto.as_deref().unwrap_or(bootproto));
    if bootproto == "static" {
        if let Some(ip) = &n.ip {
            let _ = writeln!(s, "IPADDR={ip}");
        }
        if let Some(m) = &n.netmask {
            let _ = writeln!(s, "NETMASK={m}");
        }
    }
    s.push_str(if onboot { "ONBOOT=on\n" } else { "ONBOOT=off\n" });
    if let Some(e) = &n.essid {
        let _ = writeln!(s, "ESSID={e}");
    }
    if let Some(e) = &n.ethtool {
        let e = if e.contains("autoneg") { e.clone() } else { format!("autoneg off {e}") };
        let _ = writeln!(s, "ETHTOOL_OPTS={e}");
    }
    if bootproto == "dhcp" {
        if let Some(h) = &n.hostname {
            let _ = writeln!(s, "DHCP_HOSTNAME={h}");
        }
        if let Some(c) = &n.dhcpclass {
            let _ = writeln!(s, "DHCP_CLASSID={c}");
        }
    }
    if let Some(m) = &n.mtu {
        let _ = writeln!(s, "MTU={m}");
    }
    s
}

/// A NetworkManager keyfile connection for the device.
fn keyfile(dev: &str, onboot: bool, address: Option<&str>, n: &Network) -> String {
    let kind = if n.essid.is_some() { "wifi" } else { "ethernet" };
    let mut s = format!("[connection]\nid={dev}\ntype={kind}\ninterface-name={dev}\n");
    if !onboot {
        s.push_str("autoconnect=false\n");
    }
    let _ = writeln!(s, "\n[{kind}]");
    if let Some(e) = &n.essid {
        let _ = writeln!(s, "mode=infrastructure\nssid={e}");
    }
    if let Some(m) = &n.mtu {
        let _ = writeln!(s, "mtu={m}");
    }
    s.push_str("\n[ipv4]\n");
    match address {
        Some(a) => {
            let gw = n.gateway.as_deref().map(|g| format!(",{g}")).unwrap_or_default();
            let _ = writeln!(s, "method=manual\naddress1={a}{gw}");
        }
        None => s.push_str("method=auto\n"),
    }
    if !n.nameservers.is_empty() && !n.nodns {
        let _ = writeln!(s, "dns={};", n.nameservers.join(";"));
    }
    if n.nodns {
        s.push_str("ignore-auto-dns=true\n");
    }
    let v6 = if n.noipv6 { "disabled" } else { "auto" };
    let _ = writeln!(s, "\n[ipv6]\nmethod={v6}");
    s
}

/// A systemd-networkd `.network` unit for the device.
fn networkd(dev: &str, onboot: bool, address: Option<&str>, n: &Network) -> String {
    let mut s = format!("[Match]\nName={dev}\n");
    if n.mtu.is_some() || !onboot {
        s.push_str("\n[Link]\n");
        if let Some(m) = &n.mtu {
            let _ = writeln!(s, "MTUBytes={m}");
        }
        if !onboot {
            s.push_str("ActivationPolicy=manual\n");
        }
    }
    s.push_str("\n[Network]\n");
    match address {
        Some(a) => {
            let _ = writeln!(s, "Address={a}");
            if let Some(g) = &n.gateway {
                let _ = writeln!(s, "Gateway={g}");
            }
        }
        None => s.push_str("DHCP=ipv4\n"),
    }
    if !n.nodns {
        for ns in &n.nameservers {
            let _ = writeln!(s, "DNS={ns}");
        }
    }
    if n.noipv6 {
        s.push_str("IPv6AcceptRA=no\nLinkLocalAddressing=ipv4\n");
    }
    if n.nodns && address.is_none() {
        s.push_str("\n[DHCPv4]\nUseDNS=no\n");
    }
    s
}

fn sysconfig_network(ipv6: bool, hostname: Option<&str>, gateway: Option<&str>) -> String {
    let mut s = format!("NETWORKING=yes\nNETWORKING_IPV6={}\n", if ipv6 { "yes" } else { "no" });
    let _ = writeln!(s, "HOSTNAME={}", hostname.unwrap_or("localhost.localdomain"));
    if let Some(g) = gateway {
        let _ = writeln!(s, "GATEWAY={g}");
    }
    s
}

fn hosts(hostname: Option<&str>) -> String {
    let mut local = String::new();
    if let Some(h) = hostname.filter(|h| *h != "localhost.localdomain") {
        local.push_str(h);
        local.push(' ');
        if let Some((short, _)) = h.split_once('.') {
            local.push_str(short);
            local.push(' ');
        }
    }
    format!("127.0.0.1\t\t{local}localhost.localdomain localhost\n::1\t\tlocalhost6.localdomain6 localhost6\n")
}

/// `255.255.255.0` or `24` as a prefix length; None for anything else.
fn prefix_len(mask: &str) -> Option<u32> {
    if let Ok(p) = mask.parse::<u32>() {
        return (p <= 32).then_some(p);
    }
    let ip: std::net::Ipv4Addr = mask.parse().ok()?;
    let bits = u32::from(ip);
    (bits.leading_ones() + bits.trailing_zeros() == 32).then_some(bits.leading_ones())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netmasks_become_prefixes() {
        assert_eq!(prefix_len("255.255.255.0"), Some(24));
        assert_eq!(prefix_len("255.255.0.0"), Some(16));
        assert_eq!(prefix_len("0.0.0.0"), Some(0));
        assert_eq!(prefix_len("22"), Some(22));
        assert_eq!(prefix_len("255.0.255.0"), None);
        assert_eq!(prefix_len("33"), None);
    }

    #[test]
    fn hosts_as_mic_wrote_it() {
        assert_eq!(
            hosts(Some("box.example.org")),
            "127.0.0.1\t\tbox.example.org box localhost.localdomain localhost\n::1\t\tlocalhost6.localdomain6 localhost6\n"
        );
        assert!(hosts(None).starts_with("127.0.0.1\t\tlocalhost.localdomain localhost\n"));
    }
}
