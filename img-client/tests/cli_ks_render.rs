//! `img-client ks render` end to end on the example template in `kickstarts/`.
use std::process::Command;

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../kickstarts/configurations.yaml");

fn img(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_img-client")).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn example_renders_every_active_image_cleanly() {
    let (code, out, err) = img(&["ks", "render", "--config", EXAMPLE]);
    assert_eq!(code, 0, "{err}");
    assert!(err.is_empty(), "{err}");
    assert_eq!(out.matches("# ---- ").count(), 3, "{out}");
    assert!(out.contains("repo --name=local-os --baseurl=file:///srv/img/repos/os/x86_64/"));
    // Each kickstart checks clean with img-core's kickstart parser.
    for ks in out.split("# ---- ").filter(|p| !p.trim().is_empty()) {
        let tokens = img_core::kickstart::TokenMap::new();
        let opts = img_core::kickstart::ParseOptions { file: "example.ks", tokens: &tokens, literal_tokens: false };
        let parsed = img_core::kickstart::parse(ks, &opts, &img_core::source::NoFiles);
        let errors: Vec<_> = parsed.diagnostics.iter().filter(|d| d.is_error()).collect();
        assert!(errors.is_empty(), "{errors:?}\n{ks}");
    }
}

#[test]
fn platform_with_overlay_gains_packages() {
    let (code, out, err) =
        img(&["ks", "render", "--config", EXAMPLE, "--platform", "X86VM", "--overlay", "gcc,@Dev,-vim"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\n@Dev\n") && out.contains("\ngcc\n") && out.contains("\n-vim\n"), "{out}");
    assert!(!out.contains("# ---- "), "one kickstart has no separator");
}

#[test]
fn list_shows_platforms_and_inactive_images() {
    let (code, out, _) = img(&["ks", "render", "--config", EXAMPLE, "--list"]);
    assert_eq!(code, 0);
    assert!(out.contains("platform TINY"));
    assert!(out.contains("image IMG tiny rootfs (debug)\tplatform TINY\tinactive"), "{out}");
}

#[test]
fn errors_are_positioned_and_exit_1() {
    let (code, _, err) = img(&["ks", "render", "--config", EXAMPLE, "--platform", "NOPE"]);
    assert_eq!(code, 1);
    assert!(err.contains("configurations.yaml:0:0: error: unknown platform `NOPE`; available: `X86VM`"), "{err}");
    let (code, _, err) = img(&["ks", "render", "--config", EXAMPLE, "--overlay", ",,@"]);
    assert_eq!(code, 1);
    assert!(err.contains("error: overlay item 1 (column 1) is empty"), "{err}");
}
