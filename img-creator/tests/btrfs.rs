//! btrfs subvolumes on the host: refused before anything is installed (they need a loop
//! mount, made only inside the build VM; img-worker/tests/vm_btrfs.rs builds and boots one
//! there), and `btrfs` lines that cannot be placed fail naming their kickstart line.

mod support;

use support::*;

const SAILFISH: &str = "part /boot --size=48 --fstype=ext4 --label=boot
part / --size=256 --fstype=btrfs --label=sailfish
btrfs / --label=root --subvol --name=@ --parent=sailfish --quota /
btrfs /home --label=/home --subvol --name=@home --parent=sailfish /
btrfs --parent=sailfish --snapshot --name=factory-@ --base=@
bootloader --timeout=0
repo --name=fixture --baseurl=file://@FIXTURE_REPO@
%packages
@core
kernel
%end
";

fn result_json(s: &Scratch) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(s.file("result.json")).expect("result.json")).expect("json")
}

fn create(s: &Scratch, image_type: &str, ks: &str) -> std::process::Output {
    let path = s.dir.join("t.ks");
    std::fs::write(&path, ks).expect("kickstart");
    let out = s.command(image_type, &path, &[]).env_remove(img_creator::disk::IN_BUILD_VM).output().expect("runs");
    eprintln!("--- img-creator stderr ---\n{}", stderr(&out));
    out
}

#[test]
fn subvolumes_on_the_host_are_refused_naming_the_build_vm_before_the_install() {
    for image_type in ["raw", "loop"] {
        let s = Scratch::new(&format!("btrfs-host-{image_type}"));
        let o = create(&s, image_type, SAILFISH);
        assert!(!o.status.success());
        let e = error_line(&o);
        assert!(e.contains("line 3: the btrfs subvolumes of part / need a loop mount"), "{e}");
        assert!(e.contains("only inside the build VM") && e.contains("worker.executor = \"vm\""), "{e}");
        let r = result_json(&s);
        assert_eq!(r["status"], "failed");
        assert_eq!(r["phases"].as_array().map(Vec::len), Some(0), "nothing ran: {r}");
        s.assert_clean();
    }
}

#[test]
fn btrfs_lines_that_cannot_be_placed_fail_naming_the_line() {
    let s = Scratch::new("btrfs-bad-parent");
    let o = create(&s, "raw", &SAILFISH.replace("--name=@home --parent=sailfish", "--name=@home --parent=jolla"));
    let e = error_line(&o);
    assert!(
        e.starts_with("img-creator: error: ")
            && e.ends_with("t.ks:4:1: btrfs @home: --parent=jolla: no `part` has --label=jolla"),
        "{e}"
    );
    let o = create(&s, "raw", &SAILFISH.replace("--base=@", "--base=@data"));
    assert!(error_line(&o).contains("t.ks:5:1: btrfs snapshot factory-@: --base=@data is not a subvolume"), "{o:?}");
    let o = create(&s, "raw", &SAILFISH.replace("btrfs /home", "btrfs /boot"));
    assert!(error_line(&o).contains("t.ks:4:1: btrfs /boot: mount point given twice"), "{o:?}");
    s.assert_clean();
}
