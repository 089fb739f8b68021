//! Writes the benchmark inputs to `target/bench-inputs/` (or the folder given as the
//! first argument): `bench-5000.ks`, `configurations.yaml`, `repos.yaml`, `overlay.txt`.
//! Run by `tests/bench/run` so pykickstart parses the very bytes img-core does.

#[path = "../benches/gen/mod.rs"]
mod gen;

fn main() -> std::io::Result<()> {
    let dir = std::env::args()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-inputs"));
    std::fs::create_dir_all(&dir)?;
    let ks = gen::kickstart();
    assert_eq!(ks.lines().count(), gen::KS_LINES);
    std::fs::write(dir.join("bench-5000.ks"), &ks)?;
    let (conf, repos) = gen::kickstarter();
    std::fs::write(dir.join("configurations.yaml"), conf)?;
    std::fs::write(dir.join("repos.yaml"), repos)?;
    std::fs::write(dir.join("overlay.txt"), gen::OVERLAY)?;
    println!("{}", dir.display());
    Ok(())
}
