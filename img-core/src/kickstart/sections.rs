//! `%section` headers and the meaning of body lines.

use super::lexer::Word;
use super::model::{Entry, PackagesOptions, ScriptKind, ScriptOptions, SectionKind};
use super::options::{flag, match_options, value, OptSpec, Problem};

/// Every section header and what it opens.
const SECTIONS: &[(&str, SectionKind)] = &[
    ("%packages", SectionKind::Packages),
    ("%prepackages", SectionKind::Prepackages),
    ("%pre", SectionKind::Script(ScriptKind::Pre)),
    ("%pre-install", SectionKind::Script(ScriptKind::PreInstall)),
    ("%post", SectionKind::Script(ScriptKind::Post)),
    ("%pack", SectionKind::Script(ScriptKind::Pack)),
    ("%traceback", SectionKind::Script(ScriptKind::Traceback)),
    ("%onerror", SectionKind::Script(ScriptKind::OnError)),
    ("%attachment", SectionKind::Attachment),
];

/// The section headers, for messages.
pub fn known_headers() -> impl Iterator<Item = &'static str> {
    SECTIONS.iter().map(|(name, _)| *name)
}

/// The section a `%name` header opens, or `None` for `%end`/`%include` and the like.
pub fn section_kind(header: &str) -> Option<SectionKind> {
    if matches!(header, "%end" | "%include" | "%ksappend") {
        return None;
    }
    let known = SECTIONS.iter().find(|(name, _)| *name == header);
    Some(known.map_or_else(|| SectionKind::Unknown(header.to_owned()), |(_, kind)| kind.clone()))
}

/// Whether a line inside a section starts a new known section (closing the current one).
pub fn is_known_header(first_word: &str) -> bool {
    matches!(section_kind(first_word), Some(kind) if !matches!(kind, SectionKind::Unknown(_)))
}

const PACKAGES: &[OptSpec] = &[
    flag(&["excludedocs"]),
    flag(&["ignoremissing"]),
    flag(&["nobase"]),
    flag(&["nocore"]),
    flag(&["excludeWeakdeps", "exclude-weakdeps"]),
    flag(&["multilib"]),
    value(&["instLangs", "inst-langs"]),
    flag(&["default"]),
    flag(&["ignoredeps"]),
    flag(&["resolvedeps"]),
    value(&["retries"]),
    value(&["timeout"]),
];

pub fn packages_options(words: &[Word]) -> (PackagesOptions, Vec<Problem>) {
    let m = match_options("%packages", words, PACKAGES, false);
    let mut problems = m.problems.clone();
    extra_positionals("%packages", &m.positionals, &mut problems);
    let opts = PackagesOptions {
        excludedocs: m.flag("excludedocs"),
        ignoremissing: m.flag("ignoremissing"),
        nobase: m.flag("nobase"),
        nocore: m.flag("nocore"),
        exclude_weakdeps: m.flag("excludeWeakdeps"),
        multilib: m.flag("multilib"),
        inst_langs: m.string("instLangs"),
    };
    (opts, problems)
}

const SCRIPT: &[OptSpec] =
    &[flag(&["nochroot"]), flag(&["erroronfail"]), value(&["interpreter"]), value(&["log", "logfile"])];

pub fn script_options(header: &str, words: &[Word]) -> (ScriptOptions, Vec<Problem>) {
    let m = match_options(header, words, SCRIPT, false);
    let mut problems = m.problems.clone();
    extra_positionals(header, &m.positionals, &mut problems);
    let defaults = ScriptOptions::default();
    let opts = ScriptOptions {
        nochroot: m.flag("nochroot"),
        interpreter: m.string("interpreter").unwrap_or(defaults.interpreter),
        erroronfail: m.flag("erroronfail"),
        log: m.string("log"),
    };
    (opts, problems)
}

/// Header options of sections that take none.
pub fn no_options(header: &str, words: &[Word]) -> Vec<Problem> {
    words
        .iter()
        .map(|w| Problem {
            column: w.column,
            message: format!("unknown option {} for {header}, ignored", w.text),
            is_error: false,
        })
        .collect()
}

fn extra_positionals(header: &str, words: &[Word], problems: &mut Vec<Problem>) {
    for w in words {
        let message = format!("unexpected argument `{}` to {header} ignored", w.text);
        problems.push(Problem { column: w.column, message, is_error: false });
    }
}

/// The meaning of one `%packages` line, as pykickstart reads it: `#` starts a comment,
/// `@^env`, `@group [--optional|--nodefaults]`, `-@group`, `-package`, `package`.
pub fn package_entry(line: &str) -> Entry {
    let text = line.split('#').next().unwrap_or("").trim();
    if text.is_empty() {
        return Entry::Text;
    }
    // A bare `@`, `-` or `-@` names nothing: Text, which the parser reports.
    let named = |name: String, entry: fn(String) -> Entry| if name.is_empty() { Entry::Text } else { entry(name) };
    if let Some(env) = text.strip_prefix("@^") {
        return named(env.trim().to_owned(), Entry::Environment);
    }
    if let Some(group) = text.strip_prefix('@') {
        return named(group_name(group), Entry::Group);
    }
    if let Some(group) = text.strip_prefix("-@") {
        return named(group_name(group), Entry::ExcludeGroup);
    }
    if let Some(pkg) = text.strip_prefix('-') {
        return named(pkg.trim().to_owned(), Entry::Exclude);
    }
    Entry::Package(text.to_owned())
}

/// A group name without its `--optional`/`--nodefaults` options; names may have spaces.
fn group_name(text: &str) -> String {
    text.split_whitespace().filter(|w| !w.starts_with("--")).collect::<Vec<_>>().join(" ")
}

/// A `%attachment` line: a path (or glob) per line; comments and blanks mean nothing.
pub fn attachment_entry(line: &str) -> Entry {
    let text = line.trim();
    if text.is_empty() || text.starts_with('#') {
        Entry::Text
    } else {
        Entry::Attachment(text.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_package_lines() {
        assert_eq!(package_entry("  gcc # compiler"), Entry::Package("gcc".into()));
        assert_eq!(package_entry("@Base System --optional"), Entry::Group("Base System".into()));
        assert_eq!(package_entry("@^minimal-environment"), Entry::Environment("minimal-environment".into()));
        assert_eq!(package_entry("-@games"), Entry::ExcludeGroup("games".into()));
        assert_eq!(package_entry("-dracut"), Entry::Exclude("dracut".into()));
        for empty in ["@", "-", "-@", "@^", "@ --optional"] {
            assert_eq!(package_entry(empty), Entry::Text, "{empty}");
        }
        assert_eq!(package_entry("# only a comment"), Entry::Text);
    }
}
