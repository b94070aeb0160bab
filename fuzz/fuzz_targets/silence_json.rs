//! Client bytes into the HTTP API's `POST /api/v2/silences`: the JSON body decoded and checked
//! by exactly the binary's code (`src/bin/hearsay/silence_json.rs`, compiled in here), then the
//! silence written into a store as the node writes it (validation, regex compilation and its
//! bounds, limits).
//!
//! Asserts: nothing panics; an accepted silence reads back with the matchers, times (at the
//! API's millisecond precision) and authorship that were posted. Run with
//! `cargo fuzz run silence_json` from this directory.

#![no_main]

#[path = "../../src/bin/hearsay/silence_json.rs"]
#[allow(dead_code)]
mod silence_json;

use hearsay::core::UnixMillis;
use hearsay::core::state::silences::{Silences, SilencesConfig};
use libfuzzer_sys::fuzz_target;
use silence_json::{PostableSilence, api_matcher, parse_time, timestamp_str};

/// 2026-11-23, so the seeds' 2030 silences are in the future.
const NOW: UnixMillis = UnixMillis(1_795_400_000_000);

fuzz_target!(|body: &[u8]| {
    let Ok(silence) = silence_json::decode(body, NOW) else {
        return;
    };
    let posted: PostableSilence = serde_json::from_slice(body).expect("decode parsed it");
    let matchers: Vec<_> = silence.matcher_sets[0].matchers.iter().map(api_matcher).collect();
    assert_eq!(matchers, posted.matchers);
    for (text, t) in [(&posted.starts_at, silence.starts_at), (&posted.ends_at, silence.ends_at)] {
        assert_eq!(parse_time(text).expect("parsed once"), t);
        // Printed at millisecond precision, a time parses back to itself truncated.
        let printed = timestamp_str(t);
        let again = parse_time(&printed).unwrap_or_else(|e| panic!("{printed:?}: {e}"));
        assert_eq!(timestamp_str(again), printed);
    }

    let mut store = Silences::new(SilencesConfig::default(), 1);
    let Ok(outcome) = store.set(silence.clone(), NOW) else {
        return;
    };
    let stored = store.get(outcome.id.as_str()).expect("a written silence is stored");
    assert_eq!(stored.matcher_sets, silence.matcher_sets);
    assert_eq!(stored.created_by, silence.created_by);
    assert_eq!(stored.comment, silence.comment);
    assert_eq!(stored.ends_at, silence.ends_at);
});
