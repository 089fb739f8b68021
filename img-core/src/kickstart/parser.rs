//! The line loop: commands, sections, `%include`, with every problem as a diagnostic.

use super::commands::interpret;
use super::lexer::{split_words, Word};
use super::model::{BodyLine, Command, Include, Item, Kickstart, Section, SectionKind};
use super::options::Problem;
use super::sections::{
    attachment_entry, is_known_header, no_options, package_entry, packages_options, script_options, section_kind,
};
use super::{headers, tokens, ParseOptions, Parsed, TokenMap};
use crate::diag::Diagnostic;
use crate::source::SourceLoader;

/// Largest kickstart text accepted (top-level or included).
pub const MAX_INPUT: usize = 16 * 1024 * 1024;
/// Longest single line accepted.
pub const MAX_LINE: usize = 1024 * 1024;
/// Deepest `%include` nesting.
pub const MAX_INCLUDE_DEPTH: usize = 16;
/// Diagnostics kept before the rest are summarised, so binary junk cannot flood the output.
pub const MAX_DIAGNOSTICS: usize = 1000;

struct Ctx<'a> {
    tokens: TokenMap,
    loader: &'a dyn SourceLoader,
    diags: Vec<Diagnostic>,
    dropped: usize,
    unresolved: Vec<String>,
    literal_tokens: bool,
    /// Files being parsed, outermost first, for cycle detection.
    stack: Vec<String>,
}

impl Ctx<'_> {
    fn push(&mut self, d: Diagnostic) {
        if self.diags.len() < MAX_DIAGNOSTICS {
            self.diags.push(d);
        } else {
            self.dropped += 1;
        }
    }

    fn error(&mut self, file: &str, line: usize, column: usize, message: impl Into<String>) {
        self.push(Diagnostic::error(file, line, column, message));
    }

    fn warning(&mut self, file: &str, line: usize, column: usize, message: impl Into<String>) {
        self.push(Diagnostic::warning(file, line, column, message));
    }

    fn problems(&mut self, file: &str, line: usize, problems: Vec<Problem>) {
        for p in problems {
            if p.is_error {
                self.error(file, line, p.column, p.message);
            } else {
                self.warning(file, line, p.column, p.message);
            }
        }
    }
}

pub fn parse(text: &str, opts: &ParseOptions, loader: &dyn SourceLoader) -> Parsed {
    let file = opts.file;
    let mut ctx = Ctx {
        tokens: TokenMap::new(),
        loader,
        diags: Vec::new(),
        dropped: 0,
        unresolved: Vec::new(),
        literal_tokens: opts.literal_tokens,
        stack: vec![file.to_owned()],
    };
    for (name, value) in opts.tokens {
        if value.contains(['\n', '\r']) {
            // A multi-line value would shift every following line number.
            ctx.error(file, 0, 0, format!("token {name} has a value with a newline; not substituted"));
        } else {
            ctx.tokens.insert(name.clone(), value.clone());
        }
    }
    let mut ks = Kickstart { file: file.to_owned(), ..Kickstart::default() };
    if text.len() > MAX_INPUT {
        ctx.error(file, 0, 0, format!("kickstart is {} bytes, over the limit of {MAX_INPUT}", text.len()));
    } else {
        let text = prepare(&mut ctx, file, text);
        ks.items = parse_text(&mut ctx, file, &text, 0);
    }
    collect_comment_headers(&mut ks);
    if ctx.dropped > 0 {
        let message = format!("{} more diagnostics not shown", ctx.dropped);
        ctx.diags.push(Diagnostic::error(file, 0, 0, message));
    }
    ks.unresolved_tokens = ctx.unresolved;
    ks.diagnostics = ctx.diags.clone();
    Parsed { kickstart: ks, diagnostics: ctx.diags }
}

/// Token substitution, then notes which `@TOKEN@`s are left and, unless they are meant
/// literally, reports each where it stands (a build with one would fail much later).
fn prepare(ctx: &mut Ctx, file: &str, text: &str) -> String {
    let text = tokens::substitute(text, &ctx.tokens);
    tokens::unresolved(&text, &mut ctx.unresolved);
    if !ctx.literal_tokens {
        report_unresolved(ctx, file, &text);
    }
    text
}

fn report_unresolved(ctx: &mut Ctx, file: &str, text: &str) {
    for (index, line) in text.lines().enumerate() {
        // Comments are never substituted into anything the build reads (mic's `--pack-to`
        // header has its own `@NAME@`).
        if line.trim_start().starts_with('#') {
            continue;
        }
        for (offset, name) in tokens::token_spans(line) {
            if tokens::BUILDER_TOKENS.contains(&name) {
                continue;
            }
            let column = line[..offset].chars().count() + 1;
            let message =
                format!("unresolved token @{name}@: give it a value (tokenmap {name}:VALUE) or mark tokens as literal");
            ctx.error(file, index + 1, column, message);
        }
    }
}

fn collect_comment_headers(ks: &mut Kickstart) {
    for item in &ks.items {
        let Item::Text { raw } = item else { continue };
        if let Some(opts) = headers::mic_options(raw) {
            ks.mic_options.extend(opts);
        } else if let Some((key, value)) = headers::header(raw) {
            ks.headers.entry(key).or_insert(value);
        }
    }
}

fn parse_text(ctx: &mut Ctx, file: &str, text: &str, depth: usize) -> Vec<Item> {
    let mut items = Vec::new();
    let mut open: Option<Section> = None;
    for (index, raw) in text.split_inclusive('\n').enumerate() {
        let line_no = index + 1;
        let line = raw.trim_end_matches(['\n', '\r']);
        if let Some(problem) = unreadable(line) {
            ctx.error(file, line_no, 1, problem);
            let text_line = BodyLine { raw: Some(raw.to_owned()), entry: super::model::Entry::Text };
            match open.as_mut() {
                Some(section) => section.body.push(text_line),
                None => items.push(Item::Text { raw: raw.to_owned() }),
            }
            continue;
        }
        let first = line.split_whitespace().next().unwrap_or("");
        if let Some(mut section) = open.take() {
            if first == "%end" {
                section.has_end = true;
                section.end_raw = Some(raw.to_owned());
                items.push(Item::Section(section));
                continue;
            }
            if !is_known_header(first) {
                let mut body = body_line(&section.kind, raw, line);
                if first == "%include" {
                    body.entry = super::model::Entry::Text;
                    // pykickstart would read the file here, mid-section; we do not guess at that.
                    let message = format!(
                        "%include inside {} is not followed; put it outside the section",
                        section.header_name()
                    );
                    ctx.warning(file, line_no, column_of(line), message);
                } else if body.entry == super::model::Entry::Text && is_nameless_item(&section.kind, line) {
                    ctx.warning(file, line_no, column_of(line), "package line names no package or group; ignored");
                }
                section.body.push(body);
                open = Some(section);
                continue;
            }
            warn_no_end(ctx, file, &section);
            items.push(Item::Section(section));
        }
        if first.starts_with('%') {
            match first {
                "%end" => {
                    ctx.warning(file, line_no, column_of(line), "%end outside any section, ignored");
                    items.push(Item::Text { raw: raw.to_owned() });
                }
                "%include" => items.push(Item::Include(include(ctx, file, line_no, raw, line, depth))),
                "%ksappend" => {
                    ctx.warning(file, line_no, column_of(line), "%ksappend is not supported, ignored");
                    items.push(Item::Text { raw: raw.to_owned() });
                }
                _ => open = Some(open_section(ctx, file, line_no, raw, line)),
            }
            continue;
        }
        if first.is_empty() || first.starts_with('#') {
            items.push(Item::Text { raw: raw.to_owned() });
            continue;
        }
        items.push(command(ctx, file, line_no, raw, line));
    }
    if let Some(section) = open {
        warn_no_end(ctx, file, &section);
        items.push(Item::Section(section));
    }
    items
}

/// A `%packages` line that is not blank or a comment yet gave no entry (`@`, `-`, `-@`).
fn is_nameless_item(kind: &SectionKind, line: &str) -> bool {
    matches!(kind, SectionKind::Packages | SectionKind::Prepackages)
        && !line.split('#').next().unwrap_or("").trim().is_empty()
}

/// Lines no kickstart has: over-long ones and binary data.
fn unreadable(line: &str) -> Option<String> {
    if line.len() > MAX_LINE {
        return Some(format!("line is {} bytes, over the limit of {MAX_LINE}; ignored", line.len()));
    }
    // Tabs, form feeds, stray CRs and terminal escapes do occur in real scripts.
    if line.chars().any(|c| c < ' ' && !matches!(c, '\t' | '\u{b}' | '\u{c}' | '\r' | '\u{1b}')) {
        return Some("line contains control characters (binary data?); ignored".to_owned());
    }
    None
}

fn column_of(line: &str) -> usize {
    line.chars().take_while(|c| c.is_whitespace()).count() + 1
}

fn warn_no_end(ctx: &mut Ctx, file: &str, section: &Section) {
    let message = format!("{} at line {} has no %end", section.header_name(), section.line);
    ctx.warning(file, section.line, 1, message);
}

/// Words of a header or command line; an unbalanced quote is an error and yields none.
fn words(ctx: &mut Ctx, file: &str, line_no: usize, line: &str) -> Option<Vec<Word>> {
    match split_words(line) {
        Ok(words) => Some(words),
        Err(e) => {
            ctx.error(file, line_no, e.column, e.message);
            None
        }
    }
}

fn body_line(kind: &SectionKind, raw: &str, line: &str) -> BodyLine {
    let entry = match kind {
        SectionKind::Packages | SectionKind::Prepackages => package_entry(line),
        SectionKind::Attachment => attachment_entry(line),
        SectionKind::Script(_) | SectionKind::Unknown(_) => super::model::Entry::Text,
    };
    BodyLine { raw: Some(raw.to_owned()), entry }
}

fn open_section(ctx: &mut Ctx, file: &str, line_no: usize, raw: &str, line: &str) -> Section {
    let header = line.split_whitespace().next().unwrap_or("");
    let kind = section_kind(header).unwrap_or_else(|| SectionKind::Unknown(header.to_owned()));
    let mut section = Section::new(kind);
    section.line = line_no;
    section.header_raw = Some(raw.to_owned());
    section.has_end = false;
    let words = words(ctx, file, line_no, line).unwrap_or_default();
    let args: &[Word] = words.get(1..).unwrap_or(&[]);
    section.args = args.iter().map(|w| w.text.clone()).collect();
    let problems = match &section.kind {
        SectionKind::Packages => {
            let (opts, problems) = packages_options(args);
            section.packages_options = Some(opts);
            problems
        }
        SectionKind::Script(_) => {
            let (opts, problems) = script_options(header, args);
            section.script = Some(opts);
            problems
        }
        SectionKind::Prepackages | SectionKind::Attachment => no_options(header, args),
        SectionKind::Unknown(name) => {
            // pykickstart and mic refuse it; skipping it would drop the user's script unseen.
            let message = format!(
                "unknown section {name}; known: {}",
                super::sections::known_headers().collect::<Vec<_>>().join(", ")
            );
            vec![Problem { column: column_of(line), message, is_error: true }]
        }
    };
    ctx.problems(file, line_no, problems);
    section
}

fn command(ctx: &mut Ctx, file: &str, line_no: usize, raw: &str, line: &str) -> Item {
    let Some(words) = words(ctx, file, line_no, line) else {
        return Item::Text { raw: raw.to_owned() };
    };
    let Some((name, args)) = words.split_first() else {
        return Item::Text { raw: raw.to_owned() };
    };
    let interpreted = interpret(&name.text, args, name.column);
    ctx.problems(file, line_no, interpreted.problems);
    Item::Command(Command {
        name: name.text.clone(),
        args: args.iter().map(|w| w.text.clone()).collect(),
        line: line_no,
        kind: interpreted.kind,
        raw: Some(raw.to_owned()),
    })
}

fn include(ctx: &mut Ctx, file: &str, line_no: usize, raw: &str, line: &str, depth: usize) -> Include {
    let mut inc = Include {
        path: String::new(),
        file: String::new(),
        line: line_no,
        raw: Some(raw.to_owned()),
        items: Vec::new(),
    };
    let Some(words) = words(ctx, file, line_no, line) else { return inc };
    let Some(target) = words.get(1) else {
        ctx.error(file, line_no, column_of(line), "%include requires a file name");
        return inc;
    };
    if let Some(extra) = words.get(2) {
        ctx.warning(file, line_no, extra.column, "extra words after the %include file name ignored");
    }
    inc.path = target.text.clone();
    let (path, column) = (&target.text, target.column);
    if depth + 1 > MAX_INCLUDE_DEPTH {
        let message = format!("cannot include \"{path}\": includes nested more than {MAX_INCLUDE_DEPTH} deep");
        ctx.error(file, line_no, column, message);
        return inc;
    }
    let loaded = match ctx.loader.load(file, path) {
        Ok(loaded) => loaded,
        Err(e) => {
            ctx.error(file, line_no, column, format!("cannot include \"{path}\": {e}"));
            return inc;
        }
    };
    if ctx.stack.contains(&loaded.path) {
        let chain = ctx.stack.iter().chain(std::iter::once(&loaded.path)).cloned().collect::<Vec<_>>().join(" -> ");
        ctx.error(file, line_no, column, format!("cannot include \"{path}\": include cycle {chain}"));
        return inc;
    }
    if loaded.text.len() > MAX_INPUT {
        let message = format!("cannot include \"{path}\": {} bytes, over the limit of {MAX_INPUT}", loaded.text.len());
        ctx.error(file, line_no, column, message);
        return inc;
    }
    let text = prepare(ctx, &loaded.path, &loaded.text);
    inc.file = loaded.path.clone();
    ctx.stack.push(loaded.path.clone());
    inc.items = parse_text(ctx, &loaded.path, &text, depth + 1);
    ctx.stack.pop();
    inc
}
