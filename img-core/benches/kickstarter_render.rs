//! Renders the generated MeeGo-dialect kickstarter template (benches/gen: `Default` +
//! 50 platforms + 60 `Configurations` entries + a separate repos.yaml) with an overlay.
//!
//! `kickstarter_render_50`: what one IMG job does — load the configuration and its
//! repos (YAML parse + merge), parse the overlay, render the images of one platform with
//! the overlay applied. `kickstarter_render_50_all`: the same, rendering all 60 images
//! (informational). `kickstarter_load_50` and `kickstarter_render_only_50` split the
//! job path into its load and render halves.

mod gen;

use criterion::{criterion_group, criterion_main, Criterion};
use img_core::kickstarter::{load, render, Input, RenderRequest, Select};
use img_core::source::MemoryFiles;
use std::hint::black_box;

fn run(conf: &str, repos: &str, files: &MemoryFiles, select: Select) -> usize {
    let loaded =
        load(Input { text: conf, file: "configurations.yaml" }, Some(Input { text: repos, file: "repos.yaml" }), files);
    let config = loaded.config.expect("generated template loads");
    let overlay = img_core::overlay::parse(gen::OVERLAY).expect("overlay parses");
    let req = RenderRequest { select, overlay: Some(&overlay), extra_repos: &[] };
    let out = render(&config, &req, files);
    out.kickstarts.len()
}

fn bench(c: &mut Criterion) {
    let (conf, repos) = gen::kickstarter();
    let files = MemoryFiles::new().with("configurations.yaml", &conf).with("repos.yaml", &repos);

    // Sanity: no errors, and the overlay really lands in the output.
    let loaded = load(
        Input { text: &conf, file: "configurations.yaml" },
        Some(Input { text: &repos, file: "repos.yaml" }),
        &files,
    );
    assert!(!img_core::diag::has_errors(&loaded.diagnostics), "load: {:?}", loaded.diagnostics);
    let config = loaded.config.expect("config");
    let overlay = img_core::overlay::parse(gen::OVERLAY).unwrap();
    let one = render(
        &config,
        &RenderRequest { select: Select::Platform("PLATFORM7".into()), overlay: Some(&overlay), extra_repos: &[] },
        &files,
    );
    assert!(!img_core::diag::has_errors(&one.diagnostics), "render: {:?}", one.diagnostics);
    assert!(!one.kickstarts.is_empty(), "PLATFORM7 renders images");
    for ks in &one.kickstarts {
        assert!(ks.text.contains("strace") && ks.text.contains("-google-chrome"), "overlay applied:\n{}", ks.text);
    }
    let all =
        render(&config, &RenderRequest { select: Select::All, overlay: Some(&overlay), extra_repos: &[] }, &files);
    assert_eq!(all.kickstarts.len(), 60, "all images render: {:?}", all.diagnostics.first());

    c.bench_function("kickstarter_render_50", |b| {
        b.iter(|| run(black_box(&conf), &repos, &files, Select::Platform("PLATFORM7".into())))
    });
    // Where the time goes: loading (YAML parse + merge) vs rendering an already loaded config.
    c.bench_function("kickstarter_load_50", |b| {
        b.iter(|| {
            load(
                Input { text: black_box(&conf), file: "configurations.yaml" },
                Some(Input { text: &repos, file: "repos.yaml" }),
                &files,
            )
        })
    });
    let req = RenderRequest { select: Select::Platform("PLATFORM7".into()), overlay: Some(&overlay), extra_repos: &[] };
    c.bench_function("kickstarter_render_only_50", |b| b.iter(|| render(black_box(&config), &req, &files)));
    c.bench_function("kickstarter_render_50_all", |b| b.iter(|| run(black_box(&conf), &repos, &files, Select::All)));
}

criterion_group! {
    name = benches;
    config = gen::criterion();
    targets = bench
}
criterion_main!(benches);
