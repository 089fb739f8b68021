//! `img_core::overlay::parse` on arbitrary text: must return Ok or Err, never panic,
//! and what it accepts must round-trip through the YAML entry form.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(overlay) = img_core::overlay::parse(text) {
        for item in &overlay.items {
            let _ = item.yaml_entry();
        }
        let _ = (overlay.packages().count(), overlay.groups().count(), overlay.exclusions().count());
    }
});
