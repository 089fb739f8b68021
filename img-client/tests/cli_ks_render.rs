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
    assert!(err.contains("configurations.yaml:30:1: error: unknown platform `NOPE`; available: `X86VM`"), "{err}");
    let (code, _, err) = img(&["ks", "render", "--config", EXAMPLE, "--overlay", ",,@"]);
    assert_eq!(code, 1);
    assert!(err.contains("error: overlay item 1 (column 1) is empty"), "{err}");
}

/// A MeeGo-era image-configurations tree in its real layout: configs under `configs/Mer/`,
/// ExternalConfigs named from the repository root (where its Makefile ran kickstarter),
/// scripts in the root's `custom/scripts/`. Beside it, `outside/` holds what must never be read.
fn mer_tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let files: &[(&str, &str)] = &[
        (
            "root/configs/Mer/configurations.yaml",
            "ExternalConfigs:\n    - configs/Mer/handset/\n\nDefault:\n    Active: True\n    Language: en_US.UTF-8\n    \
             PartSize: 2000\n    Baseline: 1.0\n    PostScripts:\n        - rpm\n\nMER-CE-HANDSET:\n    \
             ExtraPackages:\n        - mer-ce-configs\n",
        ),
        (
            "root/configs/Mer/repos.yaml",
            "Repositories:\n    - Name: mer-core\n      Url: http://repo.example.org/mer/@RELEASE@/@ARCH@/core/\n",
        ),
        (
            "root/configs/Mer/handset/handset-ia32-ce.yaml",
            "Name: Mer Handset IA32 CE\nPlatform: MER-CE-HANDSET\nFileName: mer-handset-ia32-ce\nArchitecture: i586\n\
             Repos:\n    - mer-core\nPostScripts:\n    - handset-ce\nExtraPackages:\n    - bash\n",
        ),
        ("root/custom/scripts/rpm.post", "rpm --rebuilddb\n"),
        ("root/custom/scripts/handset-ce.post", "echo handset-ce-script\n"),
        ("outside/secret/leak.yaml", "Name: Leaked\nActive: True\nExtraPackages:\n    - leaked-package\n"),
        ("outside/secret.post", "echo leaked-script\n"),
    ];
    for (path, text) in files {
        let p = dir.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    dir
}

fn img_in(cwd: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_img-client")).current_dir(cwd).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn mer_tree_renders_from_its_root() {
    let tree = mer_tree();
    let root = tree.path().join("root");
    let (code, out, err) = img_in(&root, &["ks", "render", "--config", "configs/Mer/configurations.yaml"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.is_empty(), "{err}");
    assert!(out.contains("# DisplayName: Mer Handset IA32 CE"), "{out}");
    assert!(out.contains("rpm --rebuilddb") && out.contains("echo handset-ce-script"), "{out}");
    assert!(out.contains("--baseurl=http://repo.example.org/mer/1.0/i586/core/"), "{out}");
    // The same from elsewhere with --root.
    let config = root.join("configs/Mer/configurations.yaml");
    let (code, again, err) =
        img(&["ks", "render", "--root", root.to_str().unwrap(), "--config", config.to_str().unwrap()]);
    assert_eq!((code, again.as_str()), (0, out.as_str()), "{err}");
}

#[test]
fn tree_lookup_failure_names_every_base_tried() {
    let tree = mer_tree();
    let configs = tree.path().join("root/configs");
    let (code, _, err) = img_in(&configs, &["ks", "render", "--config", "Mer/configurations.yaml"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(
            "Mer/configurations.yaml:2:1: error: ExternalConfigs folder `configs/Mer/handset/` not found \
             (looked for `Mer/configs/Mer/handset`, `configs/Mer/handset`: beside the YAML file, then in the working folder)"
        ),
        "{err}"
    );
}

#[test]
fn missing_script_warns_and_strict_refuses() {
    let tree = mer_tree();
    let root = tree.path().join("root");
    std::fs::remove_file(root.join("custom/scripts/handset-ce.post")).unwrap();
    let args = ["ks", "render", "--config", "configs/Mer/handset/../configurations.yaml"];
    let (code, out, err) = img_in(&root, &args);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(
            "configs/Mer/handset/handset-ia32-ce.yaml:8:1: warning: PostScripts: script `handset-ce` not found"
        ),
        "{err}"
    );
    assert!(out.contains("rpm --rebuilddb") && !out.contains("handset-ce-script"), "{out}");
    let (code, out, err) = img_in(&root, &[&args[..], &["--strict"]].concat());
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("error: PostScripts: script `handset-ce` not found"), "{err}");
    assert!(out.is_empty(), "{out}");
}

#[test]
fn tree_never_reads_outside_its_root() {
    let tree = mer_tree();
    let root = tree.path().join("root");
    let config = root.join("configs/Mer/configurations.yaml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::os::unix::fs::symlink(tree.path().join("outside/secret"), root.join("linked")).unwrap();
    std::os::unix::fs::symlink(tree.path().join("outside/secret.post"), root.join("custom/scripts/sneaky.post"))
        .unwrap();
    let hostile = text
        .replace(
            "    - configs/Mer/handset/\n",
            "    - configs/Mer/handset/\n    - ../../../outside/secret\n    - linked\n",
        )
        .replace("        - rpm\n", "        - rpm\n        - sneaky\n");
    std::fs::write(&config, hostile).unwrap();
    let (code, out, err) = img_in(&root, &["ks", "render", "--config", "configs/Mer/configurations.yaml"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("configurations.yaml:3:1: error: ExternalConfigs folder `../../../outside/secret` is outside the configuration's tree; refused"),
        "{err}"
    );
    assert!(err.contains("configurations.yaml:4:1: error: ExternalConfigs folder `linked` is outside the configuration's tree; refused"), "{err}");
    assert!(
        err.contains("script `sneaky` not found") && err.contains("sneaky.post` (outside the tree, refused)"),
        "{err}"
    );
    assert!(!out.contains("leaked") && !err.contains("leaked"), "{out}{err}");
    // A config outside the root given is refused before anything is read.
    let (code, _, err) =
        img(&["ks", "render", "--root", root.join("custom").to_str().unwrap(), "--config", config.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(err.contains("is not inside --root"), "{err}");
}
