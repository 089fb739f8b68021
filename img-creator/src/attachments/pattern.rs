//! Shell-style patterns for one path component, as Python's `glob` (which mic used) reads
//! them: `*`, `?`, `[abc]`, `[a-z]`, `[!x]`; a leading `.` is only matched by a pattern
//! that starts with one. Pure.

/// Whether the component has anything to expand.
pub(crate) fn has_magic(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

pub(crate) fn matches(pattern: &[u8], name: &[u8]) -> bool {
    if name.first() == Some(&b'.') && pattern.first() != Some(&b'.') {
        return false;
    }
    // Iterative matching with one backtrack point (the last `*`): linear in practice,
    // never exponential, whatever the image's names are.
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, n));
                p += 1;
                continue;
            }
            Some(b'?') => {
                p += 1;
                n += 1;
                continue;
            }
            Some(b'[') => {
                if let Some((hit, len)) = class(&pattern[p..], name[n]) {
                    if hit {
                        p += len;
                        n += 1;
                        continue;
                    }
                } else if name[n] == b'[' {
                    p += 1;
                    n += 1;
                    continue;
                }
            }
            Some(&c) if c == name[n] => {
                p += 1;
                n += 1;
                continue;
            }
            _ => {}
        }
        match star {
            Some((sp, sn)) => {
                p = sp + 1;
                n = sn + 1;
                star = Some((sp, sn + 1));
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// `[...]` at the start of `pat`: whether `c` is in it and the class's length, or None
/// when the bracket is not closed (then it is a literal `[`, as in fnmatch).
fn class(pat: &[u8], c: u8) -> Option<(bool, usize)> {
    let mut i = 1;
    let negate = matches!(pat.get(i), Some(b'!' | b'^'));
    if negate {
        i += 1;
    }
    let mut hit = false;
    let mut first = true;
    loop {
        let lo = *pat.get(i)?;
        if lo == b']' && !first {
            return Some((hit != negate, i + 1));
        }
        first = false;
        if pat.get(i + 1) == Some(&b'-') && pat.get(i + 2).is_some_and(|&h| h != b']') {
            let hi = pat[i + 2];
            hit |= lo <= c && c <= hi;
            i += 3;
        } else {
            hit |= lo == c;
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, n: &str) -> bool {
        matches(p.as_bytes(), n.as_bytes())
    }

    #[test]
    fn reads_patterns_as_python_glob() {
        assert!(m("vmlinuz*", "vmlinuz-6.1.0-amd64") && m("vmlinuz*", "vmlinuz"));
        assert!(!m("vmlinuz*", "initrd.img"));
        assert!(m("*", "config-6.1") && !m("*", ".hidden") && m(".*", ".hidden"));
        assert!(m("a?c", "abc") && !m("a?c", "ac"));
        assert!(m("*.[ch]", "x.c") && !m("*.[ch]", "x.o") && m("*.[!ch]", "x.o"));
        assert!(m("[a-c]x", "bx") && !m("[a-c]x", "dx") && m("[]]", "]") && m("[a-]", "-"));
        assert!(m("[x", "[x") && !m("[x", "x"));
        assert!(m("*a*b*c", "xxaxxbxxc") && !m("*a*b*c", "xxaxxbxx"));
        assert!(has_magic("/boot/*") && !has_magic("/etc/os-release"));
    }

    #[test]
    fn long_names_do_not_blow_up() {
        let name = "a".repeat(10_000);
        let started = std::time::Instant::now();
        assert!(!m("*a*a*a*a*a*a*a*a*b", &name));
        assert!(started.elapsed().as_secs() < 2);
    }
}
