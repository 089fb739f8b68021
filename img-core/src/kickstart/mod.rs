//! Kickstart parser and writer, in mic's dialect: pykickstart's commands and sections plus
//! mic's extensions (`%pack`, `%attachment`, `btrfs`, `repo --save`, `part --align`, ...).
//! mic was lenient, so unknown commands and options are warnings; bad values are errors.
//! No I/O: `%include` goes through a [`SourceLoader`].

pub mod commands;
mod edit;
pub mod headers;
pub mod lexer;
pub mod model;
pub mod options;
pub mod package_entries;
mod parser;
mod rules;
pub mod sections;
pub mod summary;
pub mod tokens;
mod writer;

pub use edit::{append_extra_repos, BadRepoUrl};
pub use model::{Entry, Item, Kickstart, Section, SectionKind};
pub use package_entries::{PackageEntry, PackageKind};
pub use parser::{MAX_DIAGNOSTICS, MAX_INCLUDE_DEPTH, MAX_INPUT, MAX_LINE};
pub use summary::Summary;
pub use tokens::{is_token_name, parse_token_map, substitute, TokenMapError, BUILDER_TOKENS};

use crate::diag::Diagnostic;
use crate::source::SourceLoader;

/// `@TOKEN@` name → value.
pub type TokenMap = std::collections::BTreeMap<String, String>;

pub struct ParseOptions<'a> {
    /// Name used in diagnostics and as the base for `%include`.
    pub file: &'a str,
    pub tokens: &'a TokenMap,
    /// `@TOKEN@`s with no value stay as written; otherwise each is an error (except
    /// [`BUILDER_TOKENS`], which the builder always fills).
    pub literal_tokens: bool,
}

/// The model and every problem found (not just the first).
#[derive(Debug, Clone)]
pub struct Parsed {
    pub kickstart: Kickstart,
    pub diagnostics: Vec<Diagnostic>,
}

/// Parses kickstart `text`; never fails and never panics: problems are diagnostics.
pub fn parse(text: &str, opts: &ParseOptions, loader: &dyn SourceLoader) -> Parsed {
    parser::parse(text, opts, loader)
}

impl Kickstart {
    /// The kickstart as text: byte-identical to the (token-substituted) input when unchanged.
    pub fn to_text(&self) -> String {
        writer::write(&self.items)
    }

    pub fn summary(&self) -> Summary {
        Summary::of(self)
    }

    /// The image type the kickstart asks for: the magic line's `-f`/`--format`, else the
    /// kickstarter header `# SuggestedImageType:`.
    pub fn suggested_imagetype(&self) -> Option<&str> {
        let o = &self.mic_options;
        o.get("f").or_else(|| o.get("format")).or_else(|| self.headers.get("SuggestedImageType")).map(String::as_str)
    }

    /// The arch the magic line's `--arch` gives.
    pub fn suggested_arch(&self) -> Option<&str> {
        self.mic_options.get("arch").map(String::as_str)
    }
}
