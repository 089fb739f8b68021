//! Which repositories a build may reach: the administrator's word (`worker.local_repos`,
//! `worker.repo_allow`, `worker.repo_urls`) against the addresses and paths a kickstart names.
//! The kickstart is untrusted, so everything here is decided on what the host will really
//! use: the address the proxy connects to (never a name), the folder a share exports after
//! the caller resolved its links. Pure: callers resolve names and paths.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An address prefix such as `127.0.0.2/32` or `fd00::/8` (a bare address is one address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prefix {
    addr: IpAddr,
    len: u8,
}

impl std::str::FromStr for Prefix {
    type Err = String;

    fn from_str(s: &str) -> Result<Prefix, String> {
        let (a, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = a.trim().parse().map_err(|_| format!("`{s}` is not an address or address/length"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match len {
            None => max,
            Some(l) => l
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|&l| l <= max)
                .ok_or_else(|| format!("`{s}`: the prefix length must be a number from 0 to {max}"))?,
        };
        Ok(Prefix { addr, len })
    }
}

impl std::fmt::Display for Prefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl Prefix {
    pub fn contains(&self, ip: IpAddr) -> bool {
        let mask = |bits: u32, len: u8| if len == 0 { 0 } else { u128::MAX << (bits - u32::from(len)) };
        match (self.addr, unmap(ip)) {
            (IpAddr::V4(p), IpAddr::V4(a)) => {
                let m = mask(32, self.len) as u32;
                u32::from(p) & m == u32::from(a) & m
            }
            (IpAddr::V6(p), IpAddr::V6(a)) => {
                let m = mask(128, self.len);
                u128::from(p) & m == u128::from(a) & m
            }
            _ => false,
        }
    }
}

/// What kind of non-public address `ip` is, or `None` for a public (global unicast) one.
/// IPv6 forms that carry an IPv4 address (mapped, compatible, NAT64, 6to4) are judged by it.
pub fn non_public(ip: IpAddr) -> Option<&'static str> {
    match unmap(ip) {
        IpAddr::V4(a) => non_public_v4(a),
        IpAddr::V6(a) => non_public_v6(a),
    }
}

fn non_public_v4(a: Ipv4Addr) -> Option<&'static str> {
    let [b0, b1, b2, _] = a.octets();
    Some(match () {
        _ if a.is_loopback() => "a loopback address",
        _ if b0 == 0 => "an unspecified address",
        _ if a.is_private() => "a private address",
        _ if a.is_link_local() => "a link-local address",
        _ if b0 == 100 && (64..128).contains(&b1) => "a shared (carrier NAT) address",
        _ if b0 == 192 && b1 == 0 && b2 == 0 => "an IETF protocol address",
        _ if a.is_documentation() => "a documentation address",
        _ if b0 == 198 && (18..20).contains(&b1) => "a benchmarking address",
        _ if a.is_multicast() => "a multicast address",
        _ if b0 >= 240 => "a reserved address",
        _ => return None,
    })
}

fn non_public_v6(a: Ipv6Addr) -> Option<&'static str> {
    let s = a.segments();
    Some(match () {
        _ if a.is_loopback() => "a loopback address",
        _ if a.is_unspecified() => "an unspecified address",
        _ if s[0] & 0xfe00 == 0xfc00 => "a unique-local address",
        _ if s[0] & 0xffc0 == 0xfe80 => "a link-local address",
        _ if s[0] & 0xffc0 == 0xfec0 => "a site-local address",
        _ if a.is_multicast() => "a multicast address",
        _ if s[0] == 0x2001 && s[1] == 0x0db8 => "a documentation address",
        // Teredo and ORCHID: tunnels and non-routable identifiers.
        _ if s[0] == 0x2001 && s[1] < 0x0200 => "a special-purpose address",
        _ if s[0] & 0xe000 != 0x2000 => "a reserved address",
        _ => return None,
    })
}

/// The IPv4 address inside the IPv6 forms that carry one; other addresses unchanged.
fn unmap(ip: IpAddr) -> IpAddr {
    let IpAddr::V6(a) = ip else { return ip };
    let s = a.segments();
    let low = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        // ::ffff:a.b.c.d (mapped) and ::a.b.c.d (compatible, not :: or ::1)
        [0, 0, 0, 0, 0, 0xffff, ..] => IpAddr::V4(low),
        [0, 0, 0, 0, 0, 0, hi, lo] if hi != 0 || lo > 1 => IpAddr::V4(low),
        // NAT64 (64:ff9b::/96)
        [0x64, 0xff9b, 0, 0, 0, 0, ..] => IpAddr::V4(low),
        // 6to4 (2002:a.b.c.d::/48)
        [0x2002, hi, lo, ..] => IpAddr::V4(Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8)),
        _ => ip,
    }
}

/// The administrator's rules for repository addresses and URLs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepoPolicy {
    /// Non-public prefixes allowed anyway (`worker.repo_allow`).
    pub allow: Vec<Prefix>,
    /// When not empty, the only repository URL prefixes accepted (`worker.repo_urls`).
    pub url_prefixes: Vec<String>,
    /// Folders `file://` repositories may name (`worker.local_repos`), absolute, as given.
    pub local_repos: Vec<String>,
}

impl RepoPolicy {
    /// From the `worker` settings; the first entry that is not a prefix is the error.
    pub fn from_config(w: &crate::config::WorkerConfig) -> Result<RepoPolicy, String> {
        let allow = w.repo_allow.iter().map(|p| p.parse()).collect::<Result<Vec<Prefix>, String>>()?;
        if let Some(bad) = w.local_repos.iter().find(|d| !d.starts_with('/')) {
            return Err(format!("`{bad}` is not an absolute folder"));
        }
        Ok(RepoPolicy { allow, url_prefixes: w.repo_urls.clone(), local_repos: w.local_repos.clone() })
    }

    /// May the proxy connect to `ip`? `Err`: why not, for the job log.
    pub fn check_address(&self, ip: IpAddr) -> Result<(), String> {
        match non_public(ip) {
            Some(kind) if !self.allow.iter().any(|p| p.contains(ip)) => {
                Err(format!("{ip} is {kind} (worker.repo_allow does not allow it)"))
            }
            _ => Ok(()),
        }
    }

    /// Is `url` one of the allowed repository URLs (`worker.repo_urls`)?
    pub fn check_url(&self, url: &str) -> Result<(), String> {
        if self.url_prefixes.is_empty() || self.url_prefixes.iter().any(|p| url.starts_with(p.as_str())) {
            Ok(())
        } else {
            Err(format!("`{url}` is not under an allowed repository URL (worker.repo_urls)"))
        }
    }

    /// Is `dir` (absolute, links already resolved by the caller) an allowed local folder?
    pub fn check_local(&self, dir: &str) -> Result<(), String> {
        let clean = lexical(dir).ok_or_else(|| format!("`{dir}` is not an absolute path without `..`"))?;
        let under =
            |root: &str| lexical(root).is_some_and(|r| r == "/" || clean == r || clean.starts_with(&format!("{r}/")));
        if self.local_repos.iter().any(|r| under(r)) {
            Ok(())
        } else if self.local_repos.is_empty() {
            Err(format!("`{dir}`: this server allows no local (file://) repositories (worker.local_repos)"))
        } else {
            Err(format!("`{dir}` is not under a folder worker.local_repos allows"))
        }
    }
}

/// `dir` with `.` and repeated `/` removed and no trailing `/`; `None` if relative or with `..`.
fn lexical(dir: &str) -> Option<String> {
    if !dir.starts_with('/') {
        return None;
    }
    let mut parts = Vec::new();
    for p in dir.split('/') {
        match p {
            "" | "." => {}
            ".." => return None,
            p => parts.push(p),
        }
    }
    Some(format!("/{}", parts.join("/")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    #[test]
    fn only_public_addresses_pass_unless_allowed() {
        let p = RepoPolicy::default();
        for bad in [
            "127.0.0.1",
            "127.0.0.2",
            "10.0.2.2",
            "192.168.1.1",
            "172.16.0.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "fc00::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a00:202",
            "2002:7f00:1::",
            "ff02::1",
            "2001:db8::1",
        ] {
            assert!(p.check_address(ip(bad)).is_err(), "{bad} must be refused");
        }
        for good in ["93.184.216.34", "8.8.8.8", "2a00:1450:4001::1", "::ffff:93.184.216.34"] {
            assert_eq!(p.check_address(ip(good)), Ok(()), "{good}");
        }
        assert_eq!(
            p.check_address(ip("127.0.0.1")),
            Err("127.0.0.1 is a loopback address (worker.repo_allow does not allow it)".into())
        );
    }

    #[test]
    fn allowed_prefixes_open_exactly_their_range() {
        let p = RepoPolicy {
            allow: vec!["127.0.0.2/32".parse().unwrap(), "fd00::/8".parse().unwrap()],
            ..Default::default()
        };
        assert_eq!(p.check_address(ip("127.0.0.2")), Ok(()));
        assert_eq!(p.check_address(ip("::ffff:127.0.0.2")), Ok(()));
        assert!(p.check_address(ip("127.0.0.1")).is_err());
        assert!(p.check_address(ip("127.0.0.3")).is_err());
        assert_eq!(p.check_address(ip("fd12::1")), Ok(()));
        assert!(p.check_address(ip("fc00::1")).is_err());
        assert!("10.0.0.0/33".parse::<Prefix>().is_err());
        assert!("localhost".parse::<Prefix>().is_err());
        assert_eq!("10.1.2.3/8".parse::<Prefix>().unwrap().to_string(), "10.1.2.3/8");
        let all: Prefix = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("127.0.0.1")) && !all.contains(ip("::1")));
    }

    #[test]
    fn local_folders_must_be_under_an_allowed_one() {
        let none = RepoPolicy::default();
        assert!(none.check_local("/srv/repo").unwrap_err().contains("allows no local"));
        let p = RepoPolicy { local_repos: vec!["/srv/repos/".into()], ..Default::default() };
        assert_eq!(p.check_local("/srv/repos"), Ok(()));
        assert_eq!(p.check_local("/srv/repos//os/./x86_64"), Ok(()));
        assert!(p.check_local("/srv/repos-evil").is_err());
        assert!(p.check_local("/srv/repos/../../etc").is_err());
        assert!(p.check_local("/var/lib/img").is_err());
        assert!(p.check_local("srv/repos").is_err());
    }

    #[test]
    fn url_prefixes_close_the_deployment() {
        let open = RepoPolicy::default();
        assert_eq!(open.check_url("http://anything/"), Ok(()));
        let closed = RepoPolicy { url_prefixes: vec!["https://repo.example.org/".into()], ..Default::default() };
        assert_eq!(closed.check_url("https://repo.example.org/os/"), Ok(()));
        assert!(closed.check_url("https://repo.example.org.evil/").is_err());
        assert!(closed.check_url("http://repo.example.org/").is_err());
    }
}
