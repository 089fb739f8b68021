//! The rules for short texts from outside — a user's fields, a build guest's file names: one
//! plain line, one plain file name. Checked before anything is stored, shown or created, so no
//! database, page, log line or folder gets a NUL, a newline or a terminal escape from outside.

use thiserror::Error;

/// Longest plain file name, in bytes: Linux's `NAME_MAX`.
pub const MAX_FILE_NAME: usize = 255;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TextError {
    /// Any Unicode control character (`Cc`: C0 with NUL, tab and newline, DEL, C1).
    #[error("control character U+{:04X} at byte {at}: give one plain line", u32::from(*ch))]
    Control { ch: char, at: usize },
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NameError {
    #[error("empty")]
    Empty,
    #[error("{0} bytes long; a file name has at most {MAX_FILE_NAME}")]
    TooLong(usize),
    #[error("starts with `.`")]
    Hidden,
    #[error("contains `{0}`: a file name is one path component")]
    Separator(char),
    #[error(transparent)]
    Text(#[from] TextError),
}

/// The first control character of `s` and its byte offset.
pub fn first_control(s: &str) -> Option<(usize, char)> {
    s.char_indices().find(|(_, c)| c.is_control())
}

/// `s` is one plain line: no control character at all.
pub fn one_line(s: &str) -> Result<(), TextError> {
    match first_control(s) {
        Some((at, ch)) => Err(TextError::Control { ch, at }),
        None => Ok(()),
    }
}

/// `name` is a file name the host may create and serve as given: one path component (no `/`
/// or `\`), not hidden (so not `.` or `..` either), no control characters, at most
/// [`MAX_FILE_NAME`] bytes.
pub fn plain_file_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_FILE_NAME {
        return Err(NameError::TooLong(name.len()));
    }
    if name.starts_with('.') {
        return Err(NameError::Hidden);
    }
    if let Some(c) = name.chars().find(|c| matches!(c, '/' | '\\')) {
        return Err(NameError::Separator(c));
    }
    Ok(one_line(name)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_refuses_every_control_character() {
        for ok in ["", "nightly", "a b", "ünï €", "x@example.org"] {
            assert_eq!(one_line(ok), Ok(()), "{ok:?}");
        }
        for (bad, at, ch) in [
            ("a\0b", 1, '\0'),
            ("\n", 0, '\n'),
            ("a\tb", 1, '\t'),
            ("é\u{1b}[2J", 2, '\u{1b}'),
            ("\u{7f}", 0, '\u{7f}'),
        ] {
            assert_eq!(one_line(bad), Err(TextError::Control { ch, at }), "{bad:?}");
        }
        assert_eq!(
            one_line("\u{85}").unwrap_err().to_string(),
            "control character U+0085 at byte 0: give one plain line"
        );
    }

    #[test]
    fn plain_file_names() {
        for ok in ["fixture-1.0.raw", "ünï.img", "a b", "a..b", &"a".repeat(MAX_FILE_NAME)] {
            assert_eq!(plain_file_name(ok), Ok(()), "{ok:?}");
        }
        assert_eq!(plain_file_name(""), Err(NameError::Empty));
        assert_eq!(plain_file_name(&"é".repeat(128)), Err(NameError::TooLong(256)));
        for hidden in [".", "..", ".hidden"] {
            assert_eq!(plain_file_name(hidden), Err(NameError::Hidden), "{hidden}");
        }
        assert_eq!(plain_file_name("a/b"), Err(NameError::Separator('/')));
        assert_eq!(plain_file_name("..\\x"), Err(NameError::Hidden));
        assert_eq!(plain_file_name("a\\b"), Err(NameError::Separator('\\')));
        assert!(matches!(plain_file_name("a\nb"), Err(NameError::Text(TextError::Control { ch: '\n', at: 1 }))));
    }
}
