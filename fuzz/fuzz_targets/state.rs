//! Peer and file bytes into the replicated-state decoders: nflog and silences payloads (gossip
//! updates, push/pull full states and snapshot files share the format) and the cluster layer's
//! `Part`/`FullState` envelopes. None may panic; a rejected payload must leave state as it was.
//! Run with `cargo fuzz run state` from this directory.

#![no_main]

use std::time::Duration;

use hearsay::core::cluster::Cluster;
use hearsay::core::state::nflog::Nflog;
use hearsay::core::state::silences::{Silences, SilencesConfig};
use hearsay::core::swim::Delegate;
use hearsay::core::{Millis, UnixMillis};
use libfuzzer_sys::fuzz_target;

const NOW: UnixMillis = UnixMillis(1_795_400_000_000);

fuzz_target!(|data: &[u8]| {
    let retention = Duration::from_secs(3600);

    let mut log = Nflog::new(retention);
    match log.merge(data, NOW) {
        Ok(_) => {
            // What merged must marshal and load back to the same bytes.
            let bytes = log.marshal();
            let again = Nflog::load(&bytes, retention).expect("our own output loads");
            assert_eq!(again.marshal(), bytes);
        }
        Err(_) => assert!(log.is_empty(), "a rejected payload changed the log"),
    }
    let _ = Nflog::load(data, retention);

    let mut silences = Silences::new(SilencesConfig::default(), 1);
    match silences.merge(data, NOW) {
        Ok(_) => {
            let bytes = silences.marshal();
            let again =
                Silences::load(&bytes, SilencesConfig::default(), 1).expect("our own output loads");
            assert_eq!(again.marshal(), bytes);
        }
        Err(_) => assert!(silences.is_empty(), "a rejected payload changed the silences"),
    }
    let _ = Silences::load(data, SilencesConfig::default(), 1);

    let mut cluster = Cluster::new();
    cluster.register("nfl", Nflog::new(retention));
    cluster.register("sil", Silences::new(SilencesConfig::default(), 1));
    cluster.set_wall_clock(Millis(0), NOW);
    cluster.notify_msg(Millis(0), data);
    cluster.merge_remote_state(Millis(0), data, true);
});
