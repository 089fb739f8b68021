//! An ordered YAML tree that keeps duplicate keys. Real kickstarter files repeat keys
//! (MeeGo's NETBOOK section has `PostScripts` twice; PyYAML kept the last), which
//! serde_yaml_ng's own `Mapping` rejects, and overlays must write sections back with
//! their keys in the original order. Built through a counting seed so alias expansion
//! and nesting stay bounded even past the pre-scan.

use super::limits::{prescan, MAX_DEPTH, MAX_NODES};
use crate::diag::Diagnostic;
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use std::cell::Cell;
use std::fmt;

/// A YAML node. Numbers keep their text so `Baseline: 1.0` stays `1.0`.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Null,
    Bool(bool),
    Num(String),
    Str(String),
    Seq(Vec<Node>),
    /// Keys in document order, duplicates kept.
    Map(Vec<(String, Node)>),
}

impl Node {
    /// The last value of `key` (PyYAML semantics for duplicates).
    pub fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Node::Map(entries) => entries.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn entries(&self) -> &[(String, Node)] {
        match self {
            Node::Map(entries) => entries,
            _ => &[],
        }
    }

    /// The entries of a mapping, by value (empty for anything else).
    pub fn into_entries(self) -> Vec<(String, Node)> {
        match self {
            Node::Map(entries) => entries,
            _ => Vec::new(),
        }
    }

    pub fn is_map(&self) -> bool {
        matches!(self, Node::Map(_))
    }

    /// A scalar as the text a template would print; None for null and collections.
    pub fn scalar(&self) -> Option<String> {
        match self {
            Node::Bool(true) => Some("True".into()),
            Node::Bool(false) => Some("False".into()),
            Node::Num(s) | Node::Str(s) => Some(s.clone()),
            _ => None,
        }
    }

    /// Python-like truthiness with YAML's boolean words for strings.
    pub fn truthy(&self) -> bool {
        match self {
            Node::Null => false,
            Node::Bool(b) => *b,
            Node::Num(n) => n.parse::<f64>().map(|v| v != 0.0).unwrap_or(true),
            Node::Str(s) => !matches!(s.trim().to_ascii_lowercase().as_str(), "" | "false" | "no" | "off" | "0"),
            Node::Seq(v) => !v.is_empty(),
            Node::Map(v) => !v.is_empty(),
        }
    }

    /// A list's items as strings; a lone scalar counts as a one-item list, null as empty.
    pub fn string_items(&self) -> Vec<String> {
        match self {
            Node::Seq(items) => items.iter().filter_map(Node::scalar).collect(),
            Node::Null => Vec::new(),
            other => other.scalar().into_iter().collect(),
        }
    }
}

/// Parses one YAML document after the bounds pre-scan. Errors carry line and column.
pub fn parse(text: &str, file: &str) -> Result<Node, Diagnostic> {
    prescan(text, file)?;
    let budget = Cell::new(0usize);
    let seed = NodeSeed { budget: &budget, depth: 0 };
    seed.deserialize(serde_yaml_ng::Deserializer::from_str(text)).map_err(|e| {
        let (line, column) = e.location().map(|l| (l.line(), l.column())).unwrap_or((0, 0));
        let msg = e.to_string();
        // serde_yaml_ng appends " at line L column C"; the diagnostic already says where.
        let msg = msg.split(" at line ").next().unwrap_or(&msg).to_owned();
        Diagnostic::error(file, line, column, format!("invalid YAML: {msg}"))
    })
}

#[derive(Clone, Copy)]
struct NodeSeed<'a> {
    budget: &'a Cell<usize>,
    depth: usize,
}

impl NodeSeed<'_> {
    fn count<E: serde::de::Error>(&self) -> Result<(), E> {
        let n = self.budget.get() + 1;
        self.budget.set(n);
        if n > MAX_NODES {
            return Err(E::custom(format!("document expands to more than {MAX_NODES} nodes (alias bomb?)")));
        }
        Ok(())
    }

    fn deeper<E: serde::de::Error>(&self) -> Result<Self, E> {
        if self.depth >= MAX_DEPTH {
            return Err(E::custom(format!("nesting deeper than {MAX_DEPTH} levels")));
        }
        Ok(NodeSeed { budget: self.budget, depth: self.depth + 1 })
    }
}

impl<'de> DeserializeSeed<'de> for NodeSeed<'_> {
    type Value = Node;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        d.deserialize_any(self)
    }
}

/// Python prints floats with at least one decimal (`1.0`), which `Baseline` relies on.
fn float_text(v: f64) -> String {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e16 {
        format!("{v:.1}")
    } else {
        v.to_string()
    }
}

impl<'de> Visitor<'de> for NodeSeed<'_> {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Node, E> {
        self.count()?;
        Ok(Node::Null)
    }
    fn visit_none<E: serde::de::Error>(self) -> Result<Node, E> {
        self.visit_unit()
    }
    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Node, E> {
        self.count()?;
        Ok(Node::Bool(v))
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Node, E> {
        self.count()?;
        Ok(Node::Num(v.to_string()))
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Node, E> {
        self.count()?;
        Ok(Node::Num(v.to_string()))
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Node, E> {
        self.count()?;
        Ok(Node::Num(float_text(v)))
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Node, E> {
        self.count()?;
        Ok(Node::Str(v.to_owned()))
    }
    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Node, E> {
        self.count()?;
        Ok(Node::Str(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        self.count()?;
        let inner = self.deeper()?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(inner)? {
            items.push(item);
        }
        Ok(Node::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        self.count()?;
        let inner = self.deeper()?;
        let mut entries = Vec::new();
        while let Some(key) = map.next_key_seed(inner)? {
            let value = map.next_value_seed(inner)?;
            let key = match key {
                Node::Null => String::new(),
                other => other.scalar().unwrap_or_else(|| "<complex key>".into()),
            };
            entries.push((key, value));
        }
        Ok(Node::Map(entries))
    }
}

/// Writes a node as block YAML with 4-space indentation, the style of kickstarter files.
pub fn emit(node: &Node) -> String {
    let mut out = String::new();
    match node {
        Node::Map(_) | Node::Seq(_) => emit_block(node, 0, &mut out),
        other => {
            out.push_str(&scalar_text(other));
            out.push('\n');
        }
    }
    out
}

fn emit_block(node: &Node, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match node {
        Node::Map(entries) => {
            for (k, v) in entries {
                out.push_str(&pad);
                out.push_str(&quote_if_needed(k));
                out.push(':');
                emit_value(v, indent, out);
            }
        }
        Node::Seq(items) => {
            for item in items {
                out.push_str(&pad);
                out.push('-');
                match item {
                    Node::Map(entries) if !entries.is_empty() => {
                        // `- Key: v` then the other keys aligned under the first.
                        let mut first = String::new();
                        emit_block(item, indent + 2, &mut first);
                        out.push(' ');
                        out.push_str(first.trim_start_matches(' '));
                    }
                    Node::Seq(inner) if !inner.is_empty() => {
                        out.push('\n');
                        emit_block(item, indent + 4, out);
                    }
                    other => {
                        out.push(' ');
                        out.push_str(&scalar_text(other));
                        out.push('\n');
                    }
                }
            }
        }
        other => {
            out.push_str(&pad);
            out.push_str(&scalar_text(other));
            out.push('\n');
        }
    }
}

fn emit_value(v: &Node, indent: usize, out: &mut String) {
    match v {
        Node::Map(e) if !e.is_empty() => {
            out.push('\n');
            emit_block(v, indent + 4, out);
        }
        Node::Seq(s) if !s.is_empty() => {
            out.push('\n');
            emit_block(v, indent + 4, out);
        }
        Node::Null => out.push('\n'),
        other => {
            out.push(' ');
            out.push_str(&scalar_text(other));
            out.push('\n');
        }
    }
}

fn scalar_text(node: &Node) -> String {
    match node {
        Node::Null => "~".into(),
        Node::Bool(b) => if *b { "True" } else { "False" }.into(),
        Node::Num(n) => n.clone(),
        Node::Str(s) => quote_if_needed(s),
        Node::Seq(_) => "[]".into(),
        Node::Map(_) => "{}".into(),
    }
}

/// Plain when the text reads back as the same string; otherwise double-quoted.
fn quote_if_needed(s: &str) -> String {
    let lower = s.to_ascii_lowercase();
    let reserved =
        matches!(lower.as_str(), "" | "~" | "null" | "true" | "false" | "yes" | "no" | "on" | "off" | "y" | "n");
    let numeric = s.parse::<f64>().is_ok() || s.starts_with("0x") || s.starts_with("0o");
    let first_ok = match s.chars().next() {
        Some('-') => s.chars().nth(1).is_some_and(|c| c.is_ascii_alphanumeric()),
        Some(c) => c.is_alphanumeric() || matches!(c, '/' | '.' | '_' | '('),
        None => false,
    };
    let body_ok =
        s.chars().all(|c| c.is_alphanumeric() || " _./@+()=,-".contains(c)) && !s.ends_with(' ') && !s.contains(" #");
    if !reserved && !numeric && first_ok && body_ok {
        return s.to_owned();
    }
    let mut q = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            '\n' => q.push_str("\\n"),
            '\t' => q.push_str("\\t"),
            c if c.is_control() => q.push_str(&format!("\\u{:04x}", c as u32)),
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

/// Maps names in a YAML text back to lines, for diagnostics about meaning (an unknown
/// platform, a missing script) that the parser cannot place. Heuristic but cheap: it
/// reads the block structure from indentation, which every kickstarter file uses.
#[derive(Debug, Clone, Default)]
pub struct LineIndex {
    /// The file's text and each line's byte range in it: one allocation, not one per line.
    text: String,
    lines: Vec<(usize, usize)>,
    /// First line of each `Name: x`, so finding an entry is not a scan per entry.
    names: std::collections::HashMap<String, usize>,
    /// First line of each top-level `key:`, for the same reason.
    top: std::collections::HashMap<String, usize>,
    /// `ends[i]`: end (exclusive, 1-based) of the block starting on line i+1, computed once
    /// because resolving asks for it per key.
    ends: Vec<usize>,
}

impl LineIndex {
    pub fn new(text: &str) -> Self {
        let mut lines = Vec::new();
        let mut at = 0;
        for l in text.split_inclusive('\n') {
            let body = l.strip_suffix('\n').map(|b| b.strip_suffix('\r').unwrap_or(b)).unwrap_or(l);
            lines.push((at, at + body.len()));
            at += l.len();
        }
        let mut names = std::collections::HashMap::new();
        let mut top = std::collections::HashMap::new();
        for (i, &(a, b)) in lines.iter().enumerate() {
            let l = &text[a..b];
            if Self::indent(l) == 0 {
                if let Some(k) = Self::key_of(l) {
                    top.entry(k.to_owned()).or_insert(i + 1);
                }
            }
            if Self::key_of(l) == Some("Name") {
                if let Some((_, v)) = l.split_once(':') {
                    names.entry(v.trim().trim_matches('"').trim_matches('\'').to_owned()).or_insert(i + 1);
                }
            }
        }
        let mut index = Self { text: text.to_owned(), lines, names, top, ends: Vec::new() };
        index.ends = index.block_ends();
        index
    }

    /// Line `i` (0-based) without its line ending.
    fn line(&self, i: usize) -> Option<&str> {
        self.lines.get(i).and_then(|&(a, b)| self.text.get(a..b))
    }

    fn indent(line: &str) -> usize {
        line.len() - line.trim_start().len()
    }

    fn significant(line: &str) -> bool {
        let t = line.trim();
        !t.is_empty() && !t.starts_with('#')
    }

    fn key_of(line: &str) -> Option<&str> {
        let t = line.trim_start();
        let t = t.strip_prefix("- ").map(str::trim_start).unwrap_or(t);
        let (k, _) = t.split_once(':')?;
        Some(k.trim().trim_matches('"').trim_matches('\''))
    }

    /// 1-based line of a top-level `key:`; 0 when not found.
    pub fn top_key(&self, key: &str) -> usize {
        self.top.get(key).copied().unwrap_or(0)
    }

    /// Line of the Configurations entry whose `Name:` is `name`.
    pub fn entry_named(&self, name: &str) -> usize {
        self.names.get(name).copied().unwrap_or(0)
    }

    /// End (exclusive, 1-based) of the block that starts on `start`.
    fn block_end(&self, start: usize) -> usize {
        start.checked_sub(1).and_then(|i| self.ends.get(i).copied()).unwrap_or(start)
    }

    /// Every line's block end in one pass. A block starting on a line of indent `b` ends at
    /// the first later significant line indented less, or equally when the block is not a
    /// `- ` item or that line is one. Open blocks form a stack in which closing a lower
    /// block always closes the ones above it, so each line is pushed and popped once.
    fn block_ends(&self) -> Vec<usize> {
        let n = self.lines.len();
        let mut ends: Vec<usize> = (2..=n + 1).collect();
        let mut open: Vec<(usize, usize, bool)> = Vec::new(); // (0-based line, indent, is item)
        for i in 0..n {
            let Some(l) = self.line(i) else { continue };
            if !Self::significant(l) {
                continue;
            }
            let (ind, item) = (Self::indent(l), l.trim_start().starts_with("- "));
            while let Some(&(j, base, is_item)) = open.last() {
                if ind < base || (ind == base && (!is_item || item)) {
                    if let Some(e) = ends.get_mut(j) {
                        *e = i + 1;
                    }
                    open.pop();
                } else {
                    break;
                }
            }
            open.push((i, ind, item));
        }
        for (j, _, _) in open {
            if let Some(e) = ends.get_mut(j) {
                *e = n + 1;
            }
        }
        ends
    }

    /// Line of the last `key:` inside the block starting at `start` (the block's own line
    /// when the key is on it); `start` when not found.
    pub fn key_in_block(&self, start: usize, key: &str) -> usize {
        if start == 0 {
            return 0;
        }
        let end = self.block_end(start);
        let mut found = start;
        for line_no in start..end {
            if let Some(l) = self.line(line_no - 1) {
                let own_line = line_no == start;
                let t = l.trim_start();
                let candidate = if own_line { t.strip_prefix("- ").unwrap_or("") } else { t };
                if Self::key_of(candidate) == Some(key) && (!own_line || t.starts_with("- ")) {
                    found = line_no;
                }
            }
        }
        found
    }

    /// Line of list item `item` under the key on `key_line`; `key_line` when not found.
    pub fn item_after(&self, key_line: usize, item: &str) -> usize {
        if key_line == 0 {
            return 0;
        }
        let end = self.block_end(key_line);
        for line_no in key_line + 1..end {
            if let Some(l) = self.line(line_no - 1) {
                if let Some(v) = l.trim_start().strip_prefix("- ") {
                    if v.trim().trim_matches('"').trim_matches('\'') == item {
                        return line_no;
                    }
                }
            }
        }
        key_line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_duplicate_keys_in_order_and_last_wins() {
        let n = parse("A:\n    P:\n        - x\n    K: 1.0\n    P:\n        - y\n", "c.yaml").unwrap();
        let a = n.get("A").unwrap();
        assert_eq!(a.entries().len(), 3);
        assert_eq!(a.get("P").unwrap().string_items(), vec!["y"]);
        assert_eq!(a.get("K").unwrap().scalar().unwrap(), "1.0");
    }

    #[test]
    fn emitted_yaml_reads_back() {
        let src = "S:\n    B: True\n    T: 0\n    N:\n    L:\n        - -google-chrome\n        - X for Y\n        - \"1\"\n        - 'a: b'\n    M:\n        -   Name: n\n            V: 2\n";
        let n = parse(src, "c.yaml").unwrap();
        let out = emit(&n);
        assert_eq!(parse(&out, "o.yaml").unwrap(), n, "{out}");
    }

    #[test]
    fn malformed_yaml_has_position() {
        let e = parse("a: [1, 2\nb: c\n", "c.yaml").unwrap_err();
        assert!(e.line > 0 && e.message.starts_with("invalid YAML"), "{e}");
    }

    #[test]
    fn billion_laughs_is_refused() {
        let mut s = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        let names = ["b", "c", "d", "e", "f"];
        let mut prev = "a";
        for n in names {
            s.push_str(&format!("{n}: &{n} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"));
            prev = n;
        }
        let e = parse(&s, "bomb.yaml").unwrap_err();
        assert!(e.is_error());
    }

    #[test]
    fn line_index_finds_keys_and_items() {
        let t = "X:\n    P:\n        - a\n    Q: 1\n    P:\n        - b\nConfigurations:\n    -   Name: n1\n        Part: p\n";
        let li = LineIndex::new(t);
        assert_eq!(li.top_key("X"), 1);
        assert_eq!(li.key_in_block(1, "P"), 5);
        assert_eq!(li.item_after(5, "b"), 6);
        assert_eq!(li.entry_named("n1"), 8);
        assert_eq!(li.key_in_block(8, "Part"), 9);
        assert_eq!(li.key_in_block(8, "Name"), 8);
    }
}
