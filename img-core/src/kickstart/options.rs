//! Option parsing shared by commands and section headers: `--opt=value` and `--opt value`,
//! aliases, and the unique-prefix abbreviations Python's option parsers accept
//! (mic kickstarts write `bootloader --menu=` for `--menus`).

use super::lexer::Word;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arity {
    Flag,
    Value,
}

/// One option: its names (first is canonical, without dashes) and whether it takes a value.
#[derive(Debug, Clone, Copy)]
pub struct OptSpec {
    pub names: &'static [&'static str],
    pub arity: Arity,
    /// Known but not applied by IMG: using it is a warning, so the user knows.
    pub ignored: bool,
}

pub const fn flag(names: &'static [&'static str]) -> OptSpec {
    OptSpec { names, arity: Arity::Flag, ignored: false }
}

pub const fn value(names: &'static [&'static str]) -> OptSpec {
    OptSpec { names, arity: Arity::Value, ignored: false }
}

impl OptSpec {
    /// This option, marked as one IMG does not apply.
    pub const fn ignored(self) -> Self {
        OptSpec { ignored: true, ..self }
    }
}

/// A problem found while matching options; the caller turns it into a diagnostic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub column: usize,
    pub message: String,
    pub is_error: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Matched {
    /// Canonical name → (value, column of the option word); later occurrences win.
    pub values: Vec<(&'static str, Option<String>, usize)>,
    pub positionals: Vec<Word>,
    pub problems: Vec<Problem>,
}

impl Matched {
    pub fn flag(&self, name: &str) -> bool {
        self.values.iter().any(|(n, _, _)| *n == name)
    }

    /// The last value given for `name`, with the column of its option.
    pub fn get(&self, name: &str) -> Option<(&str, usize)> {
        self.values.iter().rev().find(|(n, _, _)| *n == name).and_then(|(_, v, c)| v.as_deref().map(|v| (v, *c)))
    }

    pub fn string(&self, name: &str) -> Option<String> {
        self.get(name).map(|(v, _)| v.to_owned())
    }

    /// An integer option; a non-number is an error at the option's column.
    pub fn int(&mut self, name: &str, what: &str) -> Option<i64> {
        let (text, column) = self.get(name).map(|(t, c)| (t.to_owned(), c))?;
        match text.trim().parse::<i64>() {
            Ok(n) => Some(n),
            Err(_) => {
                let message = format!("--{name} must be a whole number ({what}), not `{text}`");
                self.problems.push(Problem { column, message, is_error: true });
                None
            }
        }
    }

    pub fn error(&mut self, column: usize, message: impl Into<String>) {
        self.problems.push(Problem { column, message: message.into(), is_error: true });
    }

    pub fn warn(&mut self, column: usize, message: impl Into<String>) {
        self.problems.push(Problem { column, message: message.into(), is_error: false });
    }
}

/// Matches `words` against `specs`. With `open` every unknown `--option` is accepted
/// silently (commands whose options IMG does not interpret); otherwise it is a warning,
/// as mic was lenient.
pub fn match_options(what: &str, words: &[Word], specs: &[OptSpec], open: bool) -> Matched {
    let mut m = Matched::default();
    let mut iter = words.iter().peekable();
    while let Some(word) = iter.next() {
        let Some(body) = word.text.strip_prefix("--") else {
            m.positionals.push(word.clone());
            continue;
        };
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_owned())),
            None => (body, None),
        };
        let Some(spec) = find_spec(name, specs) else {
            if !open {
                m.warn(word.column, format!("unknown option --{name} for {what}, ignored"));
            }
            continue;
        };
        let canonical = spec.names.first().copied().unwrap_or("");
        if spec.ignored {
            m.warn(word.column, format!("option --{canonical} of {what} is not applied by IMG, ignored"));
        }
        match spec.arity {
            Arity::Flag => {
                if inline.is_some() {
                    m.warn(word.column, format!("option --{name} of {what} takes no value, value ignored"));
                }
                m.values.push((canonical, None, word.column));
            }
            Arity::Value => {
                let value = match inline {
                    Some(v) => Some(v),
                    None => match iter.peek() {
                        Some(next) if !next.text.starts_with("--") => iter.next().map(|w| w.text.clone()),
                        _ => None,
                    },
                };
                match value {
                    Some(v) => m.values.push((canonical, Some(v), word.column)),
                    None => m.error(word.column, format!("option --{name} of {what} requires a value")),
                }
            }
        }
    }
    m
}

fn find_spec<'s>(name: &str, specs: &'s [OptSpec]) -> Option<&'s OptSpec> {
    if let Some(spec) = specs.iter().find(|s| s.names.contains(&name)) {
        return Some(spec);
    }
    if name.is_empty() {
        return None;
    }
    let mut candidates = specs.iter().filter(|s| s.names.iter().any(|n| n.starts_with(name)));
    match (candidates.next(), candidates.next()) {
        (Some(only), None) => Some(only),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::lexer::split_words;
    use super::*;

    const SPECS: &[OptSpec] = &[value(&["menus"]), flag(&["utc", "isUtc"]), value(&["name"])];

    #[test]
    fn matches_forms_aliases_and_prefixes() {
        let words = split_words("--menu=x --isUtc --name y pos --bogus").unwrap();
        let m = match_options("cmd", &words, SPECS, false);
        assert_eq!(m.string("menus").as_deref(), Some("x"));
        assert!(m.flag("utc"));
        assert_eq!(m.string("name").as_deref(), Some("y"));
        assert_eq!(m.positionals.len(), 1);
        assert_eq!(m.problems.len(), 1);
        assert!(!m.problems[0].is_error);
    }

    #[test]
    fn missing_value_is_an_error() {
        let words = split_words("--name").unwrap();
        let m = match_options("cmd", &words, SPECS, false);
        assert!(m.problems[0].is_error);
        assert_eq!(m.problems[0].column, 1);
    }
}
