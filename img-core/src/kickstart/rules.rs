//! pykickstart's rules between options (required, exclusive, choices, numbers) for the
//! commands IMG only validates, so a line pykickstart and mic refuse is refused here too.
//! The typed commands call the helpers for their own rules.

use super::options::Matched;

/// Rules of a `Generic` command (`first` is its canonical name).
pub fn check(first: &str, m: &mut Matched, name_col: usize) {
    match first {
        "keyboard" if m.positionals.is_empty() && m.get("vckeymap").is_none() && m.get("xlayouts").is_none() => {
            m.error(name_col, "keyboard requires a keymap, --vckeymap or --xlayouts");
        }
        "services" if m.get("enabled").is_none() && m.get("disabled").is_none() => {
            m.error(name_col, "services requires --enabled or --disabled");
        }
        "logging" => requires(m, "logging", "port", "host"),
        "url" => {
            if ["url", "mirrorlist", "metalink"].iter().all(|o| m.get(o).is_none()) {
                m.error(name_col, "url requires --url, --mirrorlist or --metalink");
            }
            only_one(m, "url", &["url", "mirrorlist", "metalink"]);
        }
        "autopart" => autopart(m, name_col),
        "logvol" => logvol(m, name_col),
        "volgroup" => volgroup(m, name_col),
        "raid" => raid(m, name_col),
        _ => {}
    }
}

fn autopart(m: &mut Matched, name_col: usize) {
    choice_folded(m, "autopart", "type", &["lvm", "btrfs", "plain", "partition", "thinp"]);
    match (m.get("type").map(|(t, _)| t.to_ascii_lowercase()), m.get("fstype")) {
        (None, Some(("btrfs", c))) => m.error(c, "autopart --fstype=btrfs is not valid; use --type=btrfs"),
        (Some(t), Some(_)) if t == "btrfs" => m.error(name_col, "autopart --fstype cannot be used with --type=btrfs"),
        _ => {}
    }
}

fn logvol(m: &mut Matched, name_col: usize) {
    for name in ["name", "vgname"] {
        if m.get(name).is_none() {
            m.error(name_col, format!("logvol requires --{name}"));
        }
    }
    let numbers = ["size", "maxsize", "percent", "chunksize", "metadatasize", "cachesize"];
    whole_numbers(m, "logvol", &numbers);
    whole_numbers(m, "logvol", &["pbkdf-memory", "pbkdf-time", "pbkdf-iterations"]);
    in_range(m, "logvol", "percent", 0, 100);
    choice_folded(m, "logvol", "cachemode", &["writeback", "writethrough"]);
    requires(m, "logvol", "resize", "useexisting");
    requires(m, "logvol", "resize", "size");
    requires(m, "logvol", "thin", "poolname");
    for (a, b) in [
        ("thin", "thinpool"),
        ("size", "percent"),
        ("mkfsoptions", "fsprofile"),
        ("mkfsoptions", "noformat"),
        ("pbkdf-time", "pbkdf-iterations"),
        ("thin", "cachepvs"),
    ] {
        conflict(m, "logvol", a, b);
    }
    let cache = ["cachesize", "cachepvs", "cachemode"].iter().any(|o| m.flag(o));
    if cache {
        if !m.flag("cachepvs") {
            m.error(name_col, "logvol cache options require --cachepvs (the fast PVs)");
        } else if !m.flag("cachesize") {
            m.error(name_col, "logvol --cachepvs requires --cachesize");
        }
        if m.flag("useexisting") || m.flag("noformat") {
            m.error(name_col, "logvol cannot add a cache to an existing logical volume");
        }
    }
    if !m.flag("thinpool") && (m.flag("chunksize") || m.flag("metadatasize")) {
        m.error(name_col, "logvol --chunksize and --metadatasize are for thin pools only (--thinpool)");
    }
    let sized = ["useexisting", "noformat", "size", "percent", "hibernation", "recommended"].iter().any(|o| m.flag(o));
    if m.flag("thinpool") && !sized {
        m.error(name_col, "logvol --thinpool requires a size (--size, --percent, --useexisting or --noformat)");
    }
}

fn volgroup(m: &mut Matched, name_col: usize) {
    whole_numbers(m, "volgroup", &["pesize", "reserved-space", "reserved-percent"]);
    in_range(m, "volgroup", "reserved-space", 0, i64::MAX);
    in_range(m, "volgroup", "reserved-percent", 1, 99);
    let existing = m.flag("useexisting") || m.flag("noformat");
    match m.positionals.len() {
        0 => m.error(name_col, "volgroup requires a volume group name"),
        1 if !existing => m.error(name_col, "volgroup requires a list of physical volumes"),
        n if n > 1 && m.flag("useexisting") => {
            let column = m.positionals.get(1).map(|w| w.column).unwrap_or(name_col);
            m.error(column, "volgroup --useexisting takes no physical volumes");
        }
        _ => {}
    }
}

fn raid(m: &mut Matched, name_col: usize) {
    whole_numbers(m, "raid", &["spares", "chunksize", "pbkdf-memory", "pbkdf-time", "pbkdf-iterations"]);
    let levels = ["0", "1", "4", "5", "6", "10"];
    if let Some((level, column)) = m.get("level").map(|(l, c)| (l.to_ascii_lowercase(), c)) {
        if !levels.contains(&level.strip_prefix("raid").unwrap_or(&level)) {
            m.error(
                column,
                format!("raid --level must be one of RAID0, RAID1, RAID4, RAID5, RAID6, RAID10, not `{level}`"),
            );
        }
    }
    if m.positionals.is_empty() {
        m.error(name_col, "raid requires a mountpoint");
    }
    for name in ["device", "level"] {
        if m.get(name).is_none() {
            m.error(name_col, format!("raid requires --{name}"));
        }
    }
    if m.positionals.len() == 1 && !m.flag("useexisting") && !m.flag("noformat") {
        m.error(name_col, "raid requires a list of member partitions");
    }
}

/// At most one of `names` may be given.
pub fn only_one(m: &mut Matched, what: &str, names: &[&str]) {
    let given: Vec<(&str, usize)> = names.iter().filter_map(|n| m.get(n).map(|(_, c)| (*n, c))).collect();
    if let [(first, _), (second, column), ..] = given.as_slice() {
        m.error(*column, format!("{what} takes only one of --{first} and --{second}"));
    }
}

/// `a` and `b` cannot both be given.
pub fn conflict(m: &mut Matched, what: &str, a: &str, b: &str) {
    if m.flag(a) && m.flag(b) {
        let column = column_of(m, b);
        m.error(column, format!("{what} --{a} and --{b} cannot be used together"));
    }
}

/// `a` needs `b`.
pub fn requires(m: &mut Matched, what: &str, a: &str, b: &str) {
    if m.flag(a) && !m.flag(b) {
        let column = column_of(m, a);
        m.error(column, format!("{what} --{a} requires --{b}"));
    }
}

/// `name`'s value is one of `allowed`, exactly as pykickstart's argparse choices.
pub fn choice(m: &mut Matched, what: &str, name: &str, allowed: &[&str]) {
    if let Some((value, column)) = m.get(name).map(|(v, c)| (v.to_owned(), c)) {
        if !allowed.contains(&value.as_str()) {
            m.error(column, format!("{what} --{name} must be one of {}, not `{value}`", allowed.join(", ")));
        }
    }
}

/// As [`choice`], ignoring case (pykickstart lower-cases these).
pub fn choice_folded(m: &mut Matched, what: &str, name: &str, allowed: &[&str]) {
    if let Some((value, column)) = m.get(name).map(|(v, c)| (v.to_owned(), c)) {
        if !allowed.contains(&value.to_ascii_lowercase().as_str()) {
            m.error(column, format!("{what} --{name} must be one of {}, not `{value}`", allowed.join(", ")));
        }
    }
}

fn whole_numbers(m: &mut Matched, what: &str, names: &[&str]) {
    for name in names {
        m.int(name, what);
    }
}

fn in_range(m: &mut Matched, what: &str, name: &str, min: i64, max: i64) {
    let Some((text, column)) = m.get(name).map(|(t, c)| (t.trim().to_owned(), c)) else { return };
    if let Ok(n) = text.parse::<i64>() {
        if n < min || n > max {
            let bound = if max == i64::MAX { format!("at least {min}") } else { format!("between {min} and {max}") };
            m.error(column, format!("{what} --{name} must be {bound}, not {n}"));
        }
    }
}

fn column_of(m: &Matched, name: &str) -> usize {
    m.values.iter().find(|(n, _, _)| *n == name).map(|(_, _, c)| *c).unwrap_or(0)
}
