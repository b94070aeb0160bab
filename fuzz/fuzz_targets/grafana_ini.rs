//! Bytes into Grafana's `[unified_alerting]` loader (`hearsay::grafana::UnifiedAlerting`, behind
//! `hearsay --config.file`, `hs_config_load_grafana_ini` and Go's `Config.GrafanaConfigFile`):
//! go-ini's syntax, `GF_UNIFIED_ALERTING_*` overrides, `${VAR}`/`$__env{}` expansion, Grafana's
//! durations, every `ha_*` key, and the node and silence settings made from them.
//!
//! The input is the file, then optionally a NUL and the environment, `NAME=value` a line.
//! `$__file{/…}` reads are skipped (a fuzzer could name a FIFO or a device and block).
//! Asserts: nothing panics; loading is a function of the text and the environment. Run with
//! `cargo fuzz run grafana_ini` from this directory.

#![no_main]

use std::collections::HashMap;

use hearsay::grafana::UnifiedAlerting;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if text.contains("__file{/") {
        return;
    }
    let (ini, env) = text.split_once('\0').unwrap_or((text, ""));
    let env: HashMap<&str, &str> = env.lines().filter_map(|l| l.split_once('=')).collect();
    let lookup = |name: &str| env.get(name).map(|v| (*v).to_owned());
    let loaded = UnifiedAlerting::parse(ini, "fuzz.ini", &lookup);
    if let Ok(settings) = &loaded {
        let _ = settings.node_config();
        let _ = settings.silences_config();
        let again = UnifiedAlerting::parse(ini, "fuzz.ini", &lookup).expect("loaded once");
        assert_eq!(&again, settings, "loading is deterministic");
    }
});
