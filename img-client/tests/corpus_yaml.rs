//! Every kickstarter YAML file of the shared corpus, loaded as kickstarter would load it:
//! configurations with their repos file, fragments (files that lived in an
//! `ExternalConfigs` folder or Mer's /usr/share/kickstarter-configs) given explicitly.
//! The corpus has no script or part files and few ExternalConfigs folders, so:
//! 1. with the real files, every failure must name the missing piece precisely (missing
//!    scripts are warnings, as in both original kickstarters; strict, errors);
//! 2. with script and part files stubbed, the exact number of images renders.
//!    Counts are asserted exactly, so a change in behaviour shows up here.

use img_client::files::FsLoader;
use img_core::kickstarter::{self, Input, RenderRequest, Select, Tree};
use img_core::source::{LoadError, Loaded, SourceLoader};
use std::path::Path;

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/corpus/yaml");

fn corpus_dir() -> &'static Path {
    let p = Path::new(CORPUS);
    assert!(p.is_dir(), "corpus folder {CORPUS} is missing: the test needs shared/corpus/yaml");
    p
}

/// (configuration, repos file, fragments). Names are the corpus' flattened paths.
const JOBS: &[(&str, Option<&str>, &[&str])] = &[
    ("MeeGoIntegration__imager__kickstarter_configurations.yaml", Some("MeeGoIntegration__imager__kickstarter_repos.yaml"), &[]),
    (
        "embedded-webruntime__integration-kickstarter-image-configurations__configs_MeeGo_configurations.yaml",
        Some("embedded-webruntime__integration-kickstarter-image-configurations__configs_MeeGo_repos.yaml"),
        &[],
    ),
    (
        "embedded-webruntime__integration-kickstarter-image-configurations__configs_Nemo_configurations.yaml",
        Some("embedded-webruntime__integration-kickstarter-image-configurations__configs_Nemo_repos.yaml"),
        &[
            "embedded-webruntime__integration-kickstarter-image-configurations__configs_Nemo_handset_handset-armv7hl-n950.yaml",
            "embedded-webruntime__integration-kickstarter-image-configurations__configs_Nemo_handset_handset-i586-vm.yaml",
        ],
    ),
    (
        "embedded-webruntime__integration-kickstarter-image-configurations__configs_ewrt_configurations.yaml",
        Some("embedded-webruntime__integration-kickstarter-image-configurations__repos.yaml"),
        &[],
    ),
    (
        "embedded-webruntime__integration-kickstarter-image-configurations__configurations.yaml",
        Some("embedded-webruntime__integration-kickstarter-image-configurations__repos.yaml"),
        &[
            "embedded-webruntime__integration-kickstarter-image-configurations__configs_1.2_handset_handset-armv7nhl-n900-ce-stable.yaml",
            "embedded-webruntime__integration-kickstarter-image-configurations__configs_Mer_handset_handset-ia32-ce.yaml",
        ],
    ),
    (
        "maui-pss__maui-kickstarter-configs__base.yaml",
        Some("maui-pss__maui-kickstarter-configs__generic_repos.yaml"),
        &[
            "maui-pss__maui-kickstarter-configs__generic_targets.yaml",
            "maui-pss__maui-kickstarter-configs__generic_maui-core.yaml",
            "maui-pss__maui-kickstarter-configs__adaptations_x86-vm_x86-vm.yaml",
            "maui-pss__maui-kickstarter-configs__releases_maui-latest-devel.yaml",
        ],
    ),
    ("nashif__kickstarter__demo_configurations.yaml", Some("nashif__kickstarter__demo_repos.yaml"), &[]),
    (
        "nemomobile__nemo-kickstarter-configs__base_nemo-base.yaml",
        Some("nemomobile__nemo-kickstarter-configs__repos.yaml"),
        &[
            "sailfishos__mer-kickstarter-configs__00base.yaml",
            "nemomobile__nemo-kickstarter-configs__adaptations_n950-n9.yaml",
            "nemomobile__nemo-kickstarter-configs__adaptations_x86-vm.yaml",
        ],
    ),
    ("sailfishos__mer-kickstarter-configs__00reference.yaml", None, &["sailfishos__mer-kickstarter-configs__00base.yaml"]),
    (
        "tizenorg__platform.upstream.image-configurations__image-configurations-37_configurations.yaml",
        Some("tizenorg__platform.upstream.image-configurations__image-configurations-37_repos.yaml"),
        &["tizenorg__platform.upstream.image-configurations__ivi_ivi-main-min-pc.yaml"],
    ),
    (
        "tizenorg__tools.image-configurations__configurations.yaml",
        Some("tizenorg__tools.image-configurations__repos.yaml"),
        &[
            "tizenorg__tools.image-configurations__EMULATOR-2.0A_EMULATOR-2.0A.yaml",
            "tizenorg__tools.image-configurations__handset_handset-pinetrail.yaml",
        ],
    ),
];

/// FsLoader, but any script or part file "exists" with a stub body.
struct StubScripts(FsLoader);

impl SourceLoader for StubScripts {
    fn load(&self, including_file: &str, name: &str) -> Result<Loaded, LoadError> {
        match self.0.load(including_file, name) {
            Err(LoadError::NotFound(p)) if p.starts_with("custom/") => {
                let text = if p.starts_with("custom/part/") {
                    "part / --size 1000 --ondisk sda --fstype=ext4\n".to_owned()
                } else {
                    format!("# stub for {p}\ntrue\n")
                };
                Ok(Loaded { path: p, text })
            }
            other => other,
        }
    }

    fn list(&self, including_file: &str, dir: &str) -> Result<Vec<String>, LoadError> {
        self.0.list(including_file, dir)
    }
}

struct JobResult {
    rendered: usize,
    active: usize,
    errors: Vec<String>,
    warnings: Vec<String>,
}

fn run(loader: &dyn SourceLoader, fs: &FsLoader, job: &(&str, Option<&str>, &[&str]), strict: bool) -> JobResult {
    let read = |n: &str| fs.read_top(n).unwrap_or_else(|e| panic!("{n}: {e}")).text;
    let (config, repos, frags) = job;
    let text = read(config);
    let repos_text = repos.map(|r| (r, read(r)));
    let frag_texts: Vec<(&str, String)> = frags.iter().map(|f| (*f, read(f))).collect();
    let frag_inputs: Vec<Input<'_>> = frag_texts.iter().map(|(f, t)| Input { text: t, file: f }).collect();
    let loaded = kickstarter::load_tree(
        Input { text: &text, file: config },
        &frag_inputs,
        repos_text.as_ref().map(|(f, t)| Input { text: t, file: f }),
        loader,
        &Tree { work_dir: None, strict },
    );
    let mut diags = loaded.diagnostics.clone();
    let cfg = loaded.config.unwrap_or_else(|| panic!("{config}: main file must parse: {diags:?}"));
    let active = cfg.images().iter().filter(|i| i.active).count();
    let req = RenderRequest { select: Select::All, overlay: None, extra_repos: &[] };
    let out = kickstarter::render(&cfg, &req, loader);
    diags.extend(out.diagnostics);
    for ks in &out.kickstarts {
        let tokens = img_core::kickstart::TokenMap::new();
        let opts = img_core::kickstart::ParseOptions { file: &ks.file_name, tokens: &tokens, literal_tokens: true };
        let parsed = img_core::kickstart::parse(&ks.text, &opts, &img_core::source::NoFiles);
        let errors: Vec<String> = parsed.diagnostics.iter().filter(|d| d.is_error()).map(|d| d.to_string()).collect();
        assert!(errors.is_empty(), "{config}: {} does not parse:\n{}\n{}", ks.file_name, errors.join("\n"), ks.text);
    }
    // Every diagnostic points at a real line of a real file.
    for d in &diags {
        assert!(d.line > 0, "{config}: diagnostic without a line: {d}");
    }
    let fmt = |e: &img_core::Diagnostic| e.to_string();
    JobResult {
        rendered: out.kickstarts.len(),
        active,
        errors: diags.iter().filter(|d| d.is_error()).map(fmt).collect(),
        warnings: diags.iter().filter(|d| !d.is_error()).map(fmt).collect(),
    }
}

#[test]
fn every_corpus_file_is_used() {
    let mut names: Vec<String> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    names.sort();
    assert_eq!(names.len(), 34);
    for n in &names {
        let used = JOBS.iter().any(|(c, r, f)| c == n || *r == Some(n.as_str()) || f.contains(&n.as_str()));
        assert!(used, "{n} is not used by any job");
    }
}

/// Expected per job: (active images, rendered with real files, rendered with real files
/// and strict, rendered with stubs, load/render errors with real files, errors strict).
const EXPECTED: &[(usize, usize, usize, usize, usize, usize)] = &[
    (1, 1, 0, 1, 0, 3),
    (0, 0, 0, 0, 3, 3),
    (2, 2, 0, 2, 2, 16),
    (0, 0, 0, 0, 2, 2),
    (1, 0, 0, 0, 4, 4),
    (12, 0, 0, 0, 25, 25),
    (8, 6, 0, 8, 3, 45),
    (6, 0, 0, 0, 9, 23),
    (25, 25, 0, 25, 0, 60),
    (1, 0, 0, 1, 3, 5),
    (1, 0, 0, 1, 3, 4),
];

#[test]
fn corpus_renders_or_fails_precisely() {
    let fs = FsLoader::new(corpus_dir());
    let stub = StubScripts(FsLoader::new(corpus_dir()));
    let mut table = Vec::new();
    let mut unknown_keys = Vec::new();
    for job in JOBS {
        let real = run(&fs, &fs, job, false);
        let strict = run(&fs, &fs, job, true);
        let stubbed = run(&stub, &fs, job, false);
        for w in real.warnings.iter().filter(|w| w.contains("Scripts: script")) {
            assert!(w.contains("not found (looked for") && w.contains("skipped"), "{}: imprecise warning: {w}", job.0);
        }
        for e in real.errors.iter().chain(&strict.errors) {
            let precise = e.contains("not found (looked for")
                || e.contains("ExternalConfigs folder")
                || e.contains("unknown section")
                || e.contains("has no `Url`");
            assert!(precise, "{}: imprecise error: {e}", job.0);
        }
        for w in real.warnings.iter().filter(|w| w.contains("unknown key")) {
            unknown_keys.push(w.clone());
        }
        table.push((
            real.active,
            real.rendered,
            strict.rendered,
            stubbed.rendered,
            real.errors.len(),
            strict.errors.len(),
        ));
        eprintln!(
            "{}: active {} real {} stubbed {} errors {}",
            job.0,
            real.active,
            real.rendered,
            stubbed.rendered,
            real.errors.len()
        );
        for e in stubbed.errors.iter().take(5) {
            eprintln!("    stubbed: {e}");
        }
    }
    assert_eq!(table, EXPECTED);
    // Every corpus key is handled except one typo, which gets a warning naming it.
    assert_eq!(unknown_keys.len(), 1, "{unknown_keys:#?}");
    assert!(unknown_keys[0].contains("unknown key `Group`") && unknown_keys[0].contains("did you mean `Groups`"));
}
