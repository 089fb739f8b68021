//! Standard output for the commands: a reader going away (`img-client … | head`) ends the
//! output but is not an error, so each command still finishes with its own verdict.

use std::io::{self, StdoutLock, Write};

pub struct Stdout {
    inner: StdoutLock<'static>,
    closed: bool,
}

pub fn stdout() -> Stdout {
    Stdout { inner: io::stdout().lock(), closed: false }
}

impl Stdout {
    fn guard<T>(&mut self, done: T, result: io::Result<T>) -> io::Result<T> {
        match result {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(done)
            }
            other => other,
        }
    }
}

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.closed {
            return Ok(buf.len());
        }
        let result = self.inner.write(buf);
        self.guard(buf.len(), result)
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.closed {
            return Ok(());
        }
        let result = self.inner.flush();
        self.guard((), result)
    }
}

/// Text from the server (details, log lines, names) made safe to print on a terminal: escape
/// sequences (`ESC [ … letter`, `ESC ] … BEL`) are dropped, tabs become spaces and any other
/// control character is shown as `\u{…}`, so a build log or a hostile server cannot move the
/// cursor, retitle the window or hide text.
pub fn clean(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => match chars.next() {
                // CSI: parameters and intermediates up to a final byte in @..~.
                Some('[') => {
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                }
                // OSC: up to BEL or ESC \.
                Some(']') => {
                    while let Some(c) = chars.next() {
                        if c == '\u{7}' {
                            break;
                        }
                        if c == '\u{1b}' {
                            chars.next_if_eq(&'\\');
                            break;
                        }
                    }
                }
                _ => {}
            },
            '\t' => out.push(' '),
            c if c.is_control() => out.extend(c.escape_unicode()),
            c => out.push(c),
        }
    }
    out
}

/// `1.5 GiB`, `312 KiB`, `17 B`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if value < 10.0 {
        format!("{value:.1} {}", UNITS[unit])
    } else {
        format!("{value:.0} {}", UNITS[unit])
    }
}

/// `45s`, `3m07s`, `1h02m`.
pub fn human_duration(d: std::time::Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// Width of the terminal on stderr, 80 when it cannot be told.
pub fn stderr_width() -> usize {
    // SAFETY: TIOCGWINSZ only fills the winsize struct we pass; fd 2 may be anything.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::ioctl(2, libc::TIOCGWINSZ, &mut ws) } == 0;
    if ok && ws.ws_col > 0 {
        ws.ws_col as usize
    } else {
        80
    }
}

/// The first `width` characters of `text`.
pub fn fit(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    let mut s: String = text.chars().take(width.saturating_sub(1)).collect();
    s.push('…');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_drops_escapes_and_controls() {
        assert_eq!(clean("\u{1b}[1;31mred\u{1b}[0m text"), "red text");
        assert_eq!(clean("a\u{1b}]0;title\u{7}b"), "ab");
        assert_eq!(clean("a\u{1b}]0;title\u{1b}\\b"), "ab");
        assert_eq!(clean("tab\there\rx"), "tab here\\u{d}x");
        assert_eq!(clean("plain ünïcode"), "plain ünïcode");
    }

    #[test]
    fn sizes_durations_and_fitting() {
        assert_eq!(human_size(17), "17 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(300 * 1024 * 1024), "300 MiB");
        assert_eq!(human_duration(std::time::Duration::from_secs(187)), "3m07s");
        assert_eq!(human_duration(std::time::Duration::from_secs(3720)), "1h02m");
        assert_eq!(fit("abcdef", 4), "abc…");
        assert_eq!(fit("abc", 4), "abc");
    }
}
