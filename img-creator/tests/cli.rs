//! img-creator's command line: image types come from img-core, vendor types are refused up front.

use std::process::Command;

fn create(format: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_img-creator")).args(["create", format, "x.ks"]).output().unwrap()
}

#[test]
fn vendor_nand_types_are_refused_before_any_work() {
    for t in ["nand", "mrstnand"] {
        let out = create(t);
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&format!("image type `{t}` needs vendor tools")), "{err}");
    }
}

#[test]
fn unknown_types_list_the_supported_ones() {
    let err = String::from_utf8_lossy(&create("floppy").stderr).into_owned();
    assert!(err.contains("unknown image type `floppy`") && err.contains("liveusb"), "{err}");
}
