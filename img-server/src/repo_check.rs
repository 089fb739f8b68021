//! The repositories a submitted kickstart names, checked against the administrator's
//! `worker.local_repos`, `worker.repo_urls` and `worker.repo_allow` before the job is stored.
//! The list is the worker's (every enabled `repo`, baseurl and mirrorlist, tokens substituted),
//! so nothing refused here reaches a build. `file://` folders are judged after their links are
//! resolved on this host; web hosts only when they are addresses or loopback names (other
//! names are left to the worker's proxy, which checks the address it really connects to).

use img_core::diag::Diagnostic;
use img_core::kickstart::commands::CommandKind;
use img_core::kickstart::model::walk;
use img_core::kickstart::{Item, Kickstart};
use img_core::repo_policy::RepoPolicy;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

/// One diagnostic per refused repository URL of `ks` (parsed as the worker will parse it:
/// [`crate::submit`]'s `as_worker_parses`), named by its file and the `repo` line.
pub fn check(ks: &Kickstart, policy: &RepoPolicy) -> Vec<Diagnostic> {
    let file = ks.file.as_str();
    let mut items = Vec::new();
    walk(&ks.items, &mut items);
    let local = resolved_roots(policy);
    let mut out = Vec::new();
    for item in items {
        let Item::Command(c) = item else { continue };
        let CommandKind::Repo(r) = &c.kind else { continue };
        if r.disable {
            continue;
        }
        for (option, url) in [("--baseurl", &r.baseurl), ("--mirrorlist", &r.mirrorlist)] {
            let Some(url) = url else { continue };
            if let Err(why) = check_url(url, policy, &local) {
                let column = c.raw.as_deref().and_then(|raw| raw.find(option)).map_or(1, |i| i + 1);
                out.push(Diagnostic::error(file, c.line, column, format!("repository {}: {url}: {why}", r.name)));
            }
        }
    }
    out
}

/// The policy with each allowed folder's links resolved, so both sides of the comparison are
/// real paths (a folder that does not exist stays as written: nothing real is under it).
fn resolved_roots(policy: &RepoPolicy) -> RepoPolicy {
    let local_repos = policy
        .local_repos
        .iter()
        .map(|root| match std::fs::canonicalize(root) {
            Ok(real) => real.display().to_string(),
            Err(_) => root.clone(),
        })
        .collect();
    RepoPolicy { local_repos, ..policy.clone() }
}

fn check_url(url: &str, policy: &RepoPolicy, local: &RepoPolicy) -> Result<(), String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err("not a URL (http://, https:// or file://)".into());
    };
    match scheme.to_ascii_lowercase().as_str() {
        "file" => check_local(rest, local),
        "http" | "https" => {
            policy.check_url(url)?;
            check_host(rest, policy)
        }
        other => Err(format!("`{other}://` repositories are not supported (http://, https:// or file://)")),
    }
}

/// `PATH` of `file://PATH`: an existing folder whose real path is under an allowed one.
fn check_local(path: &str, local: &RepoPolicy) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err(format!("`{path}` is not an absolute path (file:///FOLDER)"));
    }
    let real = std::fs::canonicalize(Path::new(path)).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!("`{path}` does not exist on this server"),
        _ => format!("`{path}` cannot be resolved on this server ({e})"),
    })?;
    let shown = real.display().to_string();
    local.check_local(&shown)?;
    if !real.is_dir() {
        return Err(format!("`{shown}` is not a folder"));
    }
    Ok(())
}

/// The host part of `rest` (what follows `scheme://`): refused when it is loopback by name, or
/// an address (in any form a resolver would read as one) the policy does not allow.
fn check_host(rest: &str, policy: &RepoPolicy) -> Result<(), String> {
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        let inside = v6.split_once(']').map(|(h, _)| h).ok_or_else(|| format!("`{authority}`: unclosed `[`"))?;
        // A zone (`fe80::1%eth0`) is link-local whatever it says.
        let addr = inside.split('%').next().unwrap_or_default();
        let ip: IpAddr = addr.parse().map_err(|_| format!("`{inside}` is not an IPv6 address"))?;
        return policy.check_address(ip);
    } else {
        host_port.split(':').next().unwrap_or_default()
    };
    let name = host.trim_end_matches('.').to_ascii_lowercase();
    if name.is_empty() {
        return Err("the URL names no host".into());
    }
    if name == "localhost" || name.ends_with(".localhost") {
        return Err(format!("`{host}` is this machine (loopback)"));
    }
    if let Ok(ip) = name.parse::<IpAddr>() {
        return policy.check_address(ip);
    }
    if name.split('.').all(|p| p.bytes().all(|b| b.is_ascii_hexdigit() || b == b'x')) {
        // `127.1`, `0x7f.0.0.1`, `2130706433`: what inet_aton (and so curl) reads as IPv4.
        if let Some(ip) = inet_aton(&name) {
            return policy.check_address(IpAddr::V4(ip));
        }
    }
    Ok(())
}

/// The classic IPv4 forms: 1 to 4 parts, each decimal, `0x` hex or `0` octal; the last part
/// fills the remaining bytes.
fn inet_aton(s: &str) -> Option<Ipv4Addr> {
    let parts: Vec<&str> = s.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let nums: Vec<u64> = parts
        .iter()
        .map(|p| {
            if let Some(hex) = p.strip_prefix("0x") {
                u64::from_str_radix(hex, 16).ok().filter(|_| !hex.is_empty() && hex.len() <= 8)
            } else if p.len() > 1 && p.starts_with('0') {
                u64::from_str_radix(&p[1..], 8).ok()
            } else if !p.is_empty() && p.len() <= 10 {
                p.parse().ok()
            } else {
                None
            }
        })
        .collect::<Option<_>>()?;
    let (last, head) = nums.split_last()?;
    if head.iter().any(|&n| n > 255) || *last >= 1u64 << (8 * (4 - head.len())) {
        return None;
    }
    let mut v: u64 = 0;
    for (i, n) in head.iter().enumerate() {
        v |= n << (24 - 8 * i);
    }
    Some(Ipv4Addr::from((v | last) as u32))
}

#[cfg(test)]
mod tests {
    use super::*;
    use img_core::kickstart::{self, ParseOptions, TokenMap};
    use img_core::source::NoFiles;

    fn refused(url: &str) -> String {
        check_host(url.split_once("://").unwrap().1, &RepoPolicy::default()).unwrap_err()
    }

    #[test]
    fn loopback_and_private_hosts_in_any_spelling_are_refused() {
        for url in [
            "http://127.0.0.1:8080/",
            "http://[::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://localhost/",
            "http://LocalHost./",
            "http://a.localhost:80/",
            "http://user:pw@127.0.0.1/",
            "http://127.1/",
            "http://2130706433/",
            "http://0x7f000001/",
            "http://0177.0.0.1/",
            "http://169.254.169.254/latest/",
            "http://10.0.2.2/",
            "http://[fe80::1%25eth0]/",
            "http:///",
        ] {
            assert!(!refused(url).is_empty(), "{url}");
        }
        assert!(refused("http://127.0.0.1/").contains("loopback"));
        for ok in ["http://repo.example.org/x", "https://93.184.216.34/", "http://deadbeef.org/", "http://cafe/"] {
            assert_eq!(check_host(ok.split_once("://").unwrap().1, &RepoPolicy::default()), Ok(()), "{ok}");
        }
    }

    #[test]
    fn inet_aton_reads_the_short_forms() {
        assert_eq!(inet_aton("127.1"), Some(Ipv4Addr::new(127, 0, 0, 1)));
        assert_eq!(inet_aton("10.0x10.1"), Some(Ipv4Addr::new(10, 16, 0, 1)));
        assert_eq!(inet_aton("3232235777"), Some(Ipv4Addr::new(192, 168, 1, 1)));
        assert_eq!(inet_aton("256.1.1.1"), None);
        assert_eq!(inet_aton("1.2.3.4.5"), None);
        assert_eq!(inet_aton("cafe"), None);
    }

    #[test]
    fn repo_lines_are_named_and_other_schemes_refused() {
        let ks = "part / --size=64\nrepo --name=a --baseurl=ftp://x/\nrepo --name=b --mirrorlist=http://[::1]/m\n\
                  repo --name=c --baseurl=file:///etc --disable\nrepo --name=d --baseurl=@R@\n";
        let tokens = TokenMap::from([("R".to_owned(), "file:///etc".to_owned())]);
        let opts = ParseOptions { file: "job.ks", tokens: &tokens, literal_tokens: true };
        let d = check(&kickstart::parse(ks, &opts, &NoFiles).kickstart, &RepoPolicy::default());
        let got: Vec<(usize, &str)> = d.iter().map(|d| (d.line, d.message.as_str())).collect();
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!((got[0].0, got[1].0, got[2].0), (2, 3, 5));
        assert!(got[0].1.starts_with("repository a: ftp://x/: `ftp://`"), "{}", got[0].1);
        assert!(got[2].1.contains("allows no local"), "{}", got[2].1);
    }
}
