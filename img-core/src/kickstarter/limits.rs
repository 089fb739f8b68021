//! Bounds checked before any YAML parser sees the text. A configuration comes from a web
//! form or a repository we do not control, so a YAML bomb (nested aliases), a deeply
//! nested document or a huge upload must fail quickly with a clear message, never by
//! exhausting memory or the stack.

use crate::diag::Diagnostic;

/// Largest configuration accepted; real kickstarter files are a few kilobytes.
pub const MAX_YAML_BYTES: usize = 4 * 1024 * 1024;
/// Deepest nesting accepted (block indentation levels plus flow brackets); real files use 3.
pub const MAX_DEPTH: usize = 64;
/// Most `*alias` uses accepted. Real kickstarter files use none; a handful is harmless,
/// and the node budget below catches any expansion the count lets through.
pub const MAX_ALIASES: usize = 64;
/// Most YAML nodes built after alias expansion; bounds memory whatever the aliases do.
pub const MAX_NODES: usize = 1_000_000;

/// The cheap pre-scan: size, alias count and nesting depth, line by line.
pub fn prescan(text: &str, file: &str) -> Result<(), Diagnostic> {
    if text.len() > MAX_YAML_BYTES {
        return Err(Diagnostic::error(
            file,
            0,
            0,
            format!("YAML input is {} bytes, over the limit of {MAX_YAML_BYTES}", text.len()),
        ));
    }
    let mut aliases = 0usize;
    // Indentations of the open block levels, so depth is the number of distinct levels.
    let mut indents: Vec<usize> = Vec::new();
    let mut flow_depth = 0usize;
    for (index, line) in text.lines().enumerate() {
        let line_no = index + 1;
        let content = line.trim_start_matches(' ');
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        let indent = line.len() - content.len();
        if flow_depth == 0 {
            while indents.last().is_some_and(|&i| i > indent) {
                indents.pop();
            }
            if indents.last() != Some(&indent) {
                indents.push(indent);
            }
        }
        // `- - - x` opens one sequence level per dash without any indentation.
        let mut dashes = 0usize;
        let mut rest = content;
        while let Some(r) = rest.strip_prefix("- ") {
            dashes += 1;
            rest = r.trim_start_matches(' ');
        }
        let (line_aliases, max_flow, end_flow) = scan_line(content, flow_depth);
        aliases += line_aliases;
        flow_depth = end_flow;
        let depth = indents.len() + dashes + max_flow;
        if depth > MAX_DEPTH {
            return Err(Diagnostic::error(
                file,
                line_no,
                1,
                format!("YAML nesting is deeper than {MAX_DEPTH} levels; a kickstarter configuration needs 3"),
            ));
        }
        if aliases > MAX_ALIASES {
            return Err(Diagnostic::error(
                file,
                line_no,
                1,
                format!("YAML uses more than {MAX_ALIASES} aliases (`*name`); refusing a possible alias bomb"),
            ));
        }
    }
    Ok(())
}

/// Counts aliases and tracks flow-bracket depth on one line, skipping quoted text and
/// comments. Returns (aliases, deepest flow depth on the line, flow depth at its end).
fn scan_line(content: &str, mut flow: usize) -> (usize, usize, usize) {
    let mut aliases = 0;
    let mut max_flow = flow;
    let mut quote: Option<char> = None;
    let mut prev = ' ';
    for c in content.chars() {
        match quote {
            Some(q) => {
                if c == q {
                    quote = None;
                }
            }
            None => match c {
                '"' | '\'' if matches!(prev, ' ' | '[' | '{' | ',' | ':') => quote = Some(c),
                '#' if prev == ' ' => break,
                '*' if matches!(prev, ' ' | '[' | '{' | ',' | ':') => aliases += 1,
                '[' | '{' => {
                    flow += 1;
                    max_flow = max_flow.max(flow);
                }
                ']' | '}' => flow = flow.saturating_sub(1),
                _ => {}
            },
        }
        prev = c;
    }
    (aliases, max_flow, flow)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_config() {
        assert!(prescan("Default:\n    Groups:\n        - A\n", "c.yaml").is_ok());
    }

    #[test]
    fn rejects_deep_flow_and_block_nesting() {
        let deep = "[".repeat(10_000);
        let e = prescan(&deep, "c.yaml").unwrap_err();
        assert!(e.message.contains("nesting"), "{e}");
        let mut block = String::new();
        for i in 0..100 {
            block.push_str(&" ".repeat(i));
            block.push_str("a:\n");
        }
        assert!(prescan(&block, "c.yaml").unwrap_err().message.contains("nesting"));
        assert!(prescan(&"- ".repeat(100), "c.yaml").is_err());
    }

    #[test]
    fn rejects_many_aliases_but_not_stars_in_text() {
        let bomb: String = (0..100).map(|i| format!("k{i}: *a\n")).collect();
        assert!(prescan(&bomb, "c.yaml").unwrap_err().message.contains("alias"));
        assert!(prescan("Schedule: \"* * * * 3\"\nx: a*b\n", "c.yaml").is_ok());
    }
}
