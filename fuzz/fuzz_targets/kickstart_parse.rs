//! `img_core::kickstart::parse` on arbitrary text, with `%include` reaching an in-memory
//! file: the input is `main.ks` up to the first NUL byte and `inc.ks` after it. Parsing
//! must never panic; a parsed kickstart's summary and text form must not panic either,
//! and the text form of a clean parse must parse cleanly again.
#![no_main]

use img_core::kickstart::{parse, ParseOptions, TokenMap};
use img_core::source::MemoryFiles;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (main, inc) = text.split_once('\0').unwrap_or((text, ""));
    let files = MemoryFiles::new().with("main.ks", main).with("inc.ks", inc);
    let mut tokens = TokenMap::new();
    tokens.insert("ARCH".into(), "i586".into());
    tokens.insert("RELEASE".into(), "1.0".into());
    let opts = ParseOptions { file: "main.ks", tokens: &tokens, literal_tokens: false };
    let parsed = parse(main, &opts, &files);
    let _ = parsed.kickstart.summary();
    let out = parsed.kickstart.to_text();
    if !img_core::diag::has_errors(&parsed.diagnostics) {
        let again = parse(&out, &ParseOptions { file: "again.ks", tokens: &TokenMap::new(), literal_tokens: false }, &files);
        let _ = again.kickstart.summary();
    }
});
