//! Kickstart text from the model: original lines where they are unchanged (so an unmodified
//! document comes back byte for byte), regenerated lines where the API changed something.

use super::lexer::quote;
use super::model::{BodyLine, Entry, Item, Section};

pub fn write(items: &[Item]) -> String {
    let mut out = String::new();
    for item in items {
        match item {
            Item::Text { raw } => out.push_str(raw),
            Item::Command(c) => match &c.raw {
                Some(raw) => out.push_str(raw),
                None => push_line(&mut out, &join(&c.name, &c.args)),
            },
            // The `%include` line, not the included text: the document stays as written.
            Item::Include(inc) => match &inc.raw {
                Some(raw) => out.push_str(raw),
                None => push_line(&mut out, &format!("%include {}", quote(&inc.path))),
            },
            Item::Section(section) => write_section(&mut out, section),
        }
    }
    out
}

fn write_section(out: &mut String, section: &Section) {
    match &section.header_raw {
        Some(raw) => out.push_str(raw),
        None => push_line(out, &join(&section.header_name(), &section.args)),
    }
    for line in &section.body {
        write_body_line(out, line);
    }
    match &section.end_raw {
        Some(raw) => out.push_str(raw),
        None if section.has_end => push_line(out, "%end"),
        None => {}
    }
}

fn write_body_line(out: &mut String, line: &BodyLine) {
    if let Some(raw) = &line.raw {
        out.push_str(raw);
        return;
    }
    let text = match &line.entry {
        Entry::Text => String::new(),
        Entry::Package(p) | Entry::Attachment(p) => p.clone(),
        Entry::Group(g) => format!("@{g}"),
        Entry::Environment(e) => format!("@^{e}"),
        Entry::Exclude(p) => format!("-{p}"),
        Entry::ExcludeGroup(g) => format!("-@{g}"),
    };
    push_line(out, &text);
}

fn join(name: &str, args: &[String]) -> String {
    std::iter::once(name.to_owned()).chain(args.iter().map(|a| quote(a))).collect::<Vec<_>>().join(" ")
}

/// Appends a generated line, first ending an original last line that had no newline.
fn push_line(out: &mut String, line: &str) {
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(line);
    out.push('\n');
}
