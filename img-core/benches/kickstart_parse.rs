//! Parses the generated 5,000-line mic-dialect kickstart (benches/gen). The same
//! bytes are written to `target/bench-inputs/bench-5000.ks` by
//! `cargo run -p img-core --example gen_bench_inputs`, which `tests/bench/run`
//! hands to pykickstart for the side-by-side figure.

mod gen;

use criterion::{criterion_group, criterion_main, Criterion};
use img_core::kickstart::{parse, ParseOptions, TokenMap};
use img_core::source::NoFiles;
use std::hint::black_box;

fn bench(c: &mut Criterion) {
    let text = gen::kickstart();
    let tokens = TokenMap::new();
    let opts = ParseOptions { file: "bench-5000.ks", tokens: &tokens, literal_tokens: false };
    // Sanity: the input is valid and fully read, so we time real work.
    let parsed = parse(&text, &opts, &NoFiles);
    assert!(
        !img_core::diag::has_errors(&parsed.diagnostics),
        "generated kickstart has errors: {:?}",
        parsed.diagnostics.iter().filter(|d| d.is_error()).take(3).collect::<Vec<_>>()
    );
    c.bench_function("kickstart_parse_5000", |b| b.iter(|| parse(black_box(&text), &opts, &NoFiles)));
}

criterion_group! {
    name = benches;
    config = gen::criterion();
    targets = bench
}
criterion_main!(benches);
