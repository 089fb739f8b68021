//! The parsed kickstart: every line of the top-level file in document order, so the
//! writer can give it back unchanged, plus the typed meaning of each line.

use super::commands::CommandKind;
use crate::diag::Diagnostic;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Kickstart {
    /// Name used in diagnostics and as the base for `%include`.
    pub file: String,
    pub items: Vec<Item>,
    /// Options from mic's magic first line, name without dashes → value ("" for flags).
    pub mic_options: BTreeMap<String, String>,
    /// `# DisplayName: ...` style header comments.
    pub headers: BTreeMap<String, String>,
    /// `@NAME@` tokens left after substitution, first-seen order.
    pub unresolved_tokens: Vec<String>,
    /// Everything the parser found, kept so the summary can show it.
    pub diagnostics: Vec<Diagnostic>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// Blank line, comment, or a line that could not be understood; written back as is.
    Text {
        raw: String,
    },
    Command(Command),
    Section(Section),
    Include(Include),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    pub name: String,
    /// Arguments after the command name, unquoted.
    pub args: Vec<String>,
    pub line: usize,
    pub kind: CommandKind,
    /// Original line (with its line end); `None` once changed, then regenerated.
    pub raw: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Include {
    /// The path as written after `%include`.
    pub path: String,
    /// The path the included items' diagnostics name (the loader's); empty when not loaded.
    pub file: String,
    pub line: usize,
    pub raw: Option<String>,
    /// Items of the included file; empty when it could not be loaded.
    pub items: Vec<Item>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SectionKind {
    Packages,
    Prepackages,
    Script(ScriptKind),
    Attachment,
    /// A `%name` section IMG does not know; kept verbatim.
    Unknown(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScriptKind {
    Pre,
    PreInstall,
    Post,
    Pack,
    Traceback,
    OnError,
}

impl ScriptKind {
    pub fn name(self) -> &'static str {
        match self {
            ScriptKind::Pre => "pre",
            ScriptKind::PreInstall => "pre-install",
            ScriptKind::Post => "post",
            ScriptKind::Pack => "pack",
            ScriptKind::Traceback => "traceback",
            ScriptKind::OnError => "onerror",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    pub kind: SectionKind,
    /// Header words after `%name`.
    pub args: Vec<String>,
    pub line: usize,
    pub header_raw: Option<String>,
    pub body: Vec<BodyLine>,
    pub packages_options: Option<PackagesOptions>,
    pub script: Option<ScriptOptions>,
    /// Whether the section has an `%end` (mic accepted sections without one).
    pub has_end: bool,
    pub end_raw: Option<String>,
}

impl Section {
    /// A new section as the API creates it: regenerated on write, closed with `%end`.
    pub fn new(kind: SectionKind) -> Self {
        let packages_options = matches!(kind, SectionKind::Packages).then(PackagesOptions::default);
        Self {
            kind,
            args: Vec::new(),
            line: 0,
            header_raw: None,
            body: Vec::new(),
            packages_options,
            script: None,
            has_end: true,
            end_raw: None,
        }
    }

    /// Header keyword with its `%`.
    pub fn header_name(&self) -> String {
        match &self.kind {
            SectionKind::Packages => "%packages".into(),
            SectionKind::Prepackages => "%prepackages".into(),
            SectionKind::Script(k) => format!("%{}", k.name()),
            SectionKind::Attachment => "%attachment".into(),
            SectionKind::Unknown(name) => name.clone(),
        }
    }
}

/// One body line: its original text (None when added by the API) and its meaning.
#[derive(Debug, Clone, PartialEq)]
pub struct BodyLine {
    pub raw: Option<String>,
    pub entry: Entry,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// Script text, comment, blank line, or anything without a package meaning.
    Text,
    Package(String),
    Group(String),
    Environment(String),
    Exclude(String),
    ExcludeGroup(String),
    /// A `%attachment` path.
    Attachment(String),
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PackagesOptions {
    pub excludedocs: bool,
    pub ignoremissing: bool,
    pub nobase: bool,
    pub nocore: bool,
    pub exclude_weakdeps: bool,
    pub multilib: bool,
    pub inst_langs: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptOptions {
    pub nochroot: bool,
    pub interpreter: String,
    pub erroronfail: bool,
    pub log: Option<String>,
}

impl Default for ScriptOptions {
    fn default() -> Self {
        Self { nochroot: false, interpreter: "/bin/sh".into(), erroronfail: false, log: None }
    }
}

/// Every item of the document, included files' items in place of their `%include`.
pub fn walk<'a>(items: &'a [Item], out: &mut Vec<&'a Item>) {
    for item in items {
        match item {
            Item::Include(inc) => walk(&inc.items, out),
            other => out.push(other),
        }
    }
}
