//! Command-line arguments into the `hearsay` binary's Alertmanager flag parser (exactly
//! `src/bin/hearsay/flags.rs`, compiled in here) and its secret-key file parser.
//!
//! The input is the argument list, one argument a line. `--config.file` is left out: it reads
//! a file (the `grafana_ini` target fuzzes that loader). Asserts: nothing panics, parsing is a
//! function of the arguments alone, and a key file's keys are each a valid AES key length.
//! Run with `cargo fuzz run flags` from this directory.

#![no_main]

#[path = "../../src/bin/hearsay/flags.rs"]
#[allow(dead_code)]
mod flags;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let args: Vec<String> =
        text.split('\n').filter(|a| !a.contains("config.file")).map(str::to_owned).collect();
    let parsed = flags::parse(args.clone());
    assert_eq!(parsed, flags::parse(args), "parsing is deterministic");
    if let Ok(keys) = flags::secret_keys(text) {
        for k in &keys {
            assert!(
                matches!(k.as_bytes().len(), 16 | 24 | 32),
                "key of {} bytes",
                k.as_bytes().len()
            );
        }
    }
});
