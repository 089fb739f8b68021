//! Each `%packages`/`%prepackages` entry with the file, line and column it was written at,
//! so whatever acts on the package set (the build's resolve phase, `ks check --resolve`)
//! can name the line of each name it cannot satisfy.

use super::model::{Entry, Item, Kickstart, SectionKind};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PackageKind {
    Package,
    Group,
    Environment,
    Exclude,
    ExcludeGroup,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PackageEntry {
    pub name: String,
    pub kind: PackageKind,
    /// From `%prepackages` (installed first) rather than `%packages`.
    pub prepackage: bool,
    /// The file the entry is written in: an included file's own name for its entries.
    pub file: String,
    pub line: usize,
    pub column: usize,
}

impl Kickstart {
    /// Every package entry in document order (includes followed), duplicates kept: each
    /// line that names a package is its own entry.
    pub fn package_entries(&self) -> Vec<PackageEntry> {
        let mut out = Vec::new();
        collect(&self.items, &self.file, &mut out);
        out
    }
}

fn collect(items: &[Item], file: &str, out: &mut Vec<PackageEntry>) {
    for item in items {
        match item {
            Item::Include(inc) => collect(&inc.items, &inc.file, out),
            Item::Section(sec) if matches!(sec.kind, SectionKind::Packages | SectionKind::Prepackages) => {
                let prepackage = sec.kind == SectionKind::Prepackages;
                // The parser keeps one body line per text line, right after the header.
                for (index, body) in sec.body.iter().enumerate() {
                    let Some((name, kind)) = kind_of(&body.entry) else { continue };
                    let raw = body.raw.as_deref().unwrap_or("");
                    let column = raw.chars().take_while(|c| c.is_whitespace()).count() + 1;
                    let line = if sec.line == 0 { 0 } else { sec.line + index + 1 };
                    out.push(PackageEntry {
                        name: name.to_owned(),
                        kind,
                        prepackage,
                        file: file.to_owned(),
                        line,
                        column,
                    });
                }
            }
            _ => {}
        }
    }
}

fn kind_of(entry: &Entry) -> Option<(&str, PackageKind)> {
    Some(match entry {
        Entry::Package(n) => (n, PackageKind::Package),
        Entry::Group(n) => (n, PackageKind::Group),
        Entry::Environment(n) => (n, PackageKind::Environment),
        Entry::Exclude(n) => (n, PackageKind::Exclude),
        Entry::ExcludeGroup(n) => (n, PackageKind::ExcludeGroup),
        Entry::Text | Entry::Attachment(_) => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kickstart::{parse, ParseOptions, TokenMap};
    use crate::source::MemoryFiles;

    fn entries(text: &str, files: &MemoryFiles) -> Vec<(String, PackageKind, bool, String, usize, usize)> {
        let opts = ParseOptions { file: "top.ks", tokens: &TokenMap::new(), literal_tokens: false };
        let parsed = parse(text, &opts, files);
        parsed
            .kickstart
            .package_entries()
            .into_iter()
            .map(|e| (e.name, e.kind, e.prepackage, e.file, e.line, e.column))
            .collect()
    }

    fn e(
        name: &str,
        kind: PackageKind,
        file: &str,
        line: usize,
        column: usize,
    ) -> (String, PackageKind, bool, String, usize, usize) {
        (name.to_owned(), kind, false, file.to_owned(), line, column)
    }

    #[test]
    fn each_entry_has_its_line_and_column() {
        use PackageKind::*;
        let got = entries(
            "lang C\n%packages --ignoremissing\n# a comment\n\n  busybox\n@core --optional\n@^desktop\n-bloat\n-@boot\nbusybox\n%end\n",
            &MemoryFiles::new(),
        );
        assert_eq!(
            got,
            [
                e("busybox", Package, "top.ks", 5, 3),
                e("core", Group, "top.ks", 6, 1),
                e("desktop", Environment, "top.ks", 7, 1),
                e("bloat", Exclude, "top.ks", 8, 1),
                e("boot", ExcludeGroup, "top.ks", 9, 1),
                e("busybox", Package, "top.ks", 10, 1),
            ]
        );
    }

    #[test]
    fn included_entries_name_the_included_file() {
        use PackageKind::*;
        let files = MemoryFiles::new().with("parts/pkgs.ks", "# shared\n%packages\nkernel\n%end\n");
        let got = entries("%prepackages\nfilesystem\n%end\n%include parts/pkgs.ks\n%packages\nextra\n%end\n", &files);
        assert_eq!(
            got,
            [
                ("filesystem".to_owned(), Package, true, "top.ks".to_owned(), 2, 1),
                e("kernel", Package, "parts/pkgs.ks", 3, 1),
                e("extra", Package, "top.ks", 6, 1),
            ]
        );
    }

    #[test]
    fn sections_without_end_and_other_sections() {
        // %post bodies and %attachment paths are not package entries; a section left open
        // still counts lines from its header.
        let got = entries("%post\nbusybox\n%end\n%attachment\n/etc/x\n%end\n%packages\na\nb", &MemoryFiles::new());
        assert_eq!(got, [e("a", PackageKind::Package, "top.ks", 8, 1), e("b", PackageKind::Package, "top.ks", 9, 1)]);
    }
}
