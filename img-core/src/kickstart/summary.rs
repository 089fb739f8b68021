//! The normalised view of a kickstart printed by `img-client ks check --json`; its shape is
//! a contract (a pykickstart differential test compares against it).

use super::commands::{Bootloader, Btrfs, CommandKind, Partition, Repo, SECRET};
use super::model::{walk, Entry, Item, Kickstart, PackagesOptions, SectionKind};
use crate::diag::Diagnostic;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub file: String,
    pub mic_options: BTreeMap<String, String>,
    pub headers: BTreeMap<String, String>,
    pub repos: Vec<Repo>,
    pub packages: Vec<String>,
    pub groups: Vec<String>,
    pub exclusions: Vec<String>,
    pub excluded_groups: Vec<String>,
    pub environment: Option<String>,
    pub packages_options: PackagesOptions,
    pub prepackages: Vec<String>,
    pub partitions: Vec<Partition>,
    pub btrfs: Vec<Btrfs>,
    pub bootloader: Option<Bootloader>,
    pub scripts: Vec<ScriptSummary>,
    pub attachments: Vec<String>,
    pub tokens: Vec<String>,
    pub diagnostics: Vec<Diagnostic>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScriptSummary {
    pub kind: String,
    pub nochroot: bool,
    pub interpreter: String,
    pub erroronfail: bool,
    pub log: Option<String>,
    pub body: String,
}

/// An insertion-ordered set with O(1) removal (tombstones), so long package lists with
/// many `-x` lines stay linear.
#[derive(Default)]
struct OrderedSet {
    slots: Vec<Option<String>>,
    index: HashMap<String, usize>,
}

impl OrderedSet {
    fn insert(&mut self, name: &str) {
        if !self.index.contains_key(name) {
            self.index.insert(name.to_owned(), self.slots.len());
            self.slots.push(Some(name.to_owned()));
        }
    }

    fn remove(&mut self, name: &str) {
        if let Some(slot) = self.index.remove(name).and_then(|i| self.slots.get_mut(i)) {
            *slot = None;
        }
    }

    fn into_vec(self) -> Vec<String> {
        self.slots.into_iter().flatten().collect()
    }
}

fn secret(value: &Option<String>) -> Option<String> {
    value.as_ref().map(|_| SECRET.to_owned())
}

impl Summary {
    pub fn of(ks: &Kickstart) -> Self {
        let mut all = Vec::new();
        walk(&ks.items, &mut all);
        let (mut packages, mut groups, mut exclusions, mut excluded_groups) =
            (OrderedSet::default(), OrderedSet::default(), OrderedSet::default(), OrderedSet::default());
        let mut prepackages = OrderedSet::default();
        let mut attachments = OrderedSet::default();
        let mut s = Summary {
            file: ks.file.clone(),
            mic_options: ks.mic_options.clone(),
            headers: ks.headers.clone(),
            repos: Vec::new(),
            packages: Vec::new(),
            groups: Vec::new(),
            exclusions: Vec::new(),
            excluded_groups: Vec::new(),
            environment: None,
            packages_options: PackagesOptions::default(),
            prepackages: Vec::new(),
            partitions: Vec::new(),
            btrfs: Vec::new(),
            bootloader: None,
            scripts: Vec::new(),
            attachments: Vec::new(),
            tokens: ks.unresolved_tokens.clone(),
            diagnostics: ks.diagnostics.clone(),
        };
        for item in all {
            match item {
                Item::Command(c) => match &c.kind {
                    CommandKind::Repo(r) => s.repos.push(repo(r)),
                    CommandKind::Partition(p) => s.partitions.push(p.clone()),
                    CommandKind::Btrfs(b) => s.btrfs.push(b.clone()),
                    // Single commands: the last one wins, as in pykickstart.
                    CommandKind::Bootloader(b) => s.bootloader = Some(b.clone()),
                    _ => {}
                },
                Item::Section(sec) => {
                    match &sec.kind {
                        SectionKind::Packages => {
                            // Each %packages header sets all options, as pykickstart does.
                            s.packages_options = sec.packages_options.clone().unwrap_or_default();
                        }
                        SectionKind::Script(kind) => {
                            let opts = sec.script.clone().unwrap_or_default();
                            s.scripts.push(ScriptSummary {
                                kind: kind.name().to_owned(),
                                nochroot: opts.nochroot,
                                interpreter: opts.interpreter,
                                erroronfail: opts.erroronfail,
                                log: opts.log,
                                body: sec.body.iter().filter_map(|b| b.raw.as_deref()).collect(),
                            });
                        }
                        _ => {}
                    }
                    let is_prepackages = sec.kind == SectionKind::Prepackages;
                    for line in &sec.body {
                        match &line.entry {
                            Entry::Package(p) if is_prepackages => prepackages.insert(p),
                            Entry::Package(p) => {
                                packages.insert(p);
                                exclusions.remove(p);
                            }
                            Entry::Exclude(p) if !is_prepackages => {
                                exclusions.insert(p);
                                packages.remove(p);
                            }
                            Entry::Group(g) if !is_prepackages => {
                                groups.insert(g);
                                excluded_groups.remove(g);
                            }
                            Entry::ExcludeGroup(g) if !is_prepackages => {
                                excluded_groups.insert(g);
                                groups.remove(g);
                            }
                            Entry::Environment(e) if !is_prepackages => s.environment = Some(e.clone()),
                            Entry::Attachment(a) => attachments.insert(a),
                            _ => {}
                        }
                    }
                }
                Item::Text { .. } | Item::Include(_) => {}
            }
        }
        s.packages = packages.into_vec();
        s.groups = groups.into_vec();
        s.exclusions = exclusions.into_vec();
        s.excluded_groups = excluded_groups.into_vec();
        s.prepackages = prepackages.into_vec();
        s.attachments = attachments.into_vec();
        s
    }
}

/// The repo with its passwords masked.
fn repo(r: &Repo) -> Repo {
    Repo { passwd: secret(&r.passwd), proxypasswd: secret(&r.proxypasswd), ..r.clone() }
}
