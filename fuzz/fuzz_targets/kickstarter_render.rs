//! Kickstarter YAML → kickstart on arbitrary input, through `MemoryFiles`: the input is
//! `configurations.yaml` up to the first NUL byte and `repos.yaml` after it. Loading and
//! rendering every image (with an overlay) must never panic.
#![no_main]

use img_core::kickstarter::{load, render, Input, RenderRequest, Select};
use img_core::source::MemoryFiles;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (conf, repos) = text.split_once('\0').unwrap_or((text, ""));
    let files = MemoryFiles::new().with("configurations.yaml", conf).with("repos.yaml", repos);
    let repos_input = (!repos.is_empty()).then_some(Input { text: repos, file: "repos.yaml" });
    let loaded = load(Input { text: conf, file: "configurations.yaml" }, repos_input, &files);
    let Some(config) = loaded.config else { return };
    let overlay = img_core::overlay::parse("gcc,@Desktop,-chrome").expect("fixed overlay");
    for select in [Select::All, Select::Platform("NETBOOK".into())] {
        let req = RenderRequest { select, overlay: Some(&overlay), extra_repos: &[] };
        let _ = render(&config, &req, &files);
    }
});
