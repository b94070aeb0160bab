//! Alertmanager's snapshot files (`nflog`, `silences` in the storage directory) into the loaders
//! a starting node runs on them, then the maintenance a loaded state goes through.
//!
//! Asserts: a file that loads marshals to bytes that load again and marshal to the same bytes
//! (what a node writes back is what it read, in its own format); garbage collection keeps that
//! true. The gossip and push/pull paths of the same codec are the `state` target's. Run with
//! `cargo fuzz run snapshot` from this directory.

#![no_main]

use std::time::Duration;

use hearsay::core::UnixMillis;
use hearsay::core::state::nflog::Nflog;
use hearsay::core::state::silences::{Silences, SilencesConfig};
use libfuzzer_sys::fuzz_target;

const NOW: UnixMillis = UnixMillis(1_795_400_000_000);
const RETENTION: Duration = Duration::from_secs(3600);

fuzz_target!(|data: &[u8]| {
    if let Ok(mut log) = Nflog::load(data, RETENTION) {
        let bytes = log.marshal();
        let again = Nflog::load(&bytes, RETENTION).expect("our own nflog file loads");
        assert_eq!(again.marshal(), bytes, "nflog file round trip");
        let _ = log.gc(NOW);
        let bytes = log.marshal();
        let again = Nflog::load(&bytes, RETENTION).expect("a collected nflog loads");
        assert_eq!(again.marshal(), bytes, "nflog file round trip after GC");
    }
    let config = SilencesConfig::default();
    if let Ok(mut silences) = Silences::load(data, config.clone(), 1) {
        let bytes = silences.marshal();
        let again = Silences::load(&bytes, config.clone(), 1).expect("our own silences file loads");
        assert_eq!(again.marshal(), bytes, "silences file round trip");
        assert_eq!(again.len(), silences.len());
        let _ = silences.gc(NOW);
        let bytes = silences.marshal();
        let again = Silences::load(&bytes, config, 1).expect("collected silences load");
        assert_eq!(again.marshal(), bytes, "silences file round trip after GC");
    }
});
