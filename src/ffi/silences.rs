//! Reading silences back: a query (by ID, by state, by the alert they would mute) answered
//! with a snapshot list of structs, as Alertmanager's `Query` and its API's listing.

use super::node::node;
use super::state::{hs_label, hs_matcher, label_set};
use super::{FfiResult, boundary, bytes, hs_node, hs_result, hs_str, out_ptr, text, write};
use crate::core::UnixMillis;
use crate::core::state::silences::{Query, Silence, SilenceState};
use crate::node::SILENCES_KEY;
use crate::node::States as _;

/// A silence's state at the query's `now_ms`. The numbers are bits of
/// `hs_silence_query.states` (`1 << HS_SILENCE_STATE_ACTIVE`, ...).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum hs_silence_state {
    /// Ended (`now > ends_at`).
    Expired = 0,
    /// Muting (`starts_at <= now <= ends_at`).
    Active = 1,
    /// Not started yet.
    Pending = 2,
}

impl From<SilenceState> for hs_silence_state {
    fn from(s: SilenceState) -> Self {
        match s {
            SilenceState::Expired => Self::Expired,
            SilenceState::Active => Self::Active,
            SilenceState::Pending => Self::Pending,
        }
    }
}

/// Which silences `hs_node_query_silences` returns: those passing every filter given.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct hs_silence_query {
    /// Only these IDs (`ids_len` of them); none: any ID.
    pub ids: *const hs_str,
    /// How many IDs.
    pub ids_len: usize,
    /// Only these states, as bits `1 << hs_silence_state`; 0: any state.
    pub states: u32,
    /// Only silences that would mute an alert with these labels (`labels_len` of them), when
    /// `match_labels` is true (an empty label set then matches only label-less matchers).
    pub labels: *const hs_label,
    /// How many labels.
    pub labels_len: usize,
    /// Whether `labels` filters.
    pub match_labels: bool,
}

/// One AND-list of matchers; a silence mutes an alert when any of its sets matches.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct hs_matcher_set {
    /// The matchers (`matchers_len` of them).
    pub matchers: *const hs_matcher,
    /// How many.
    pub matchers_len: usize,
}

/// A silence as stored, in an `hs_silences` list: views valid until the list is freed.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct hs_silence_info {
    /// Its ID.
    pub id: hs_str,
    /// Its state at the query's `now_ms`.
    pub state: hs_silence_state,
    /// Its matcher sets (`matcher_sets_len`; one for silences written through this ABI).
    pub matcher_sets: *const hs_matcher_set,
    /// How many matcher sets.
    pub matcher_sets_len: usize,
    /// Start of the muting window, Unix milliseconds.
    pub starts_at_ms: i64,
    /// End of the muting window, Unix milliseconds.
    pub ends_at_ms: i64,
    /// Last change, Unix milliseconds.
    pub updated_at_ms: i64,
    /// Author.
    pub created_by: hs_str,
    /// Free text.
    pub comment: hs_str,
}

/// The answer to a silence query; free it with `hs_silences_free`. Immutable: any thread
/// may read it.
#[derive(Debug)]
pub struct hs_silences {
    /// What C reads; views into the fields below, whose heap buffers never move.
    array: Vec<hs_silence_info>,
    _sets: Vec<Vec<hs_matcher_set>>,
    _matchers: Vec<Vec<Vec<hs_matcher>>>,
    _silences: Vec<Silence>,
}

fn view(s: &str) -> hs_str {
    hs_str { data: s.as_ptr().cast(), len: s.len() }
}

impl hs_silences {
    fn new(found: Vec<(SilenceState, Silence)>) -> Self {
        let (states, silences): (Vec<_>, Vec<_>) = found.into_iter().unzip();
        let matchers: Vec<Vec<Vec<hs_matcher>>> = silences
            .iter()
            .map(|s| {
                s.matcher_sets
                    .iter()
                    .map(|set| {
                        let one = |m: &crate::core::state::silences::Matcher| hs_matcher {
                            name: view(&m.name),
                            value: view(&m.pattern),
                            // The ABI's hs_match_type numbers are the wire numbers.
                            match_type: u32::try_from(m.r#type).unwrap_or(u32::MAX),
                        };
                        set.matchers.iter().map(one).collect()
                    })
                    .collect()
            })
            .collect();
        let sets: Vec<Vec<hs_matcher_set>> = matchers
            .iter()
            .map(|s| {
                s.iter()
                    .map(|m| hs_matcher_set { matchers: m.as_ptr(), matchers_len: m.len() })
                    .collect()
            })
            .collect();
        let array = silences
            .iter()
            .zip(&states)
            .zip(&sets)
            .map(|((s, state), sets)| hs_silence_info {
                id: view(&s.id),
                state: (*state).into(),
                matcher_sets: sets.as_ptr(),
                matcher_sets_len: sets.len(),
                starts_at_ms: s.starts_at.unix_millis().0,
                ends_at_ms: s.ends_at.unix_millis().0,
                updated_at_ms: s.updated_at.unix_millis().0,
                created_by: view(&s.created_by),
                comment: view(&s.comment),
            })
            .collect();
        Self { array, _sets: sets, _matchers: matchers, _silences: silences }
    }
}

/// The silences under `key` that `query` selects (NULL: all), with their state at `now_ms`,
/// written as a new list to `*silences_out` (read it with `hs_silences_array`, free it with
/// `hs_silences_free`). A state bit above `HS_SILENCE_STATE_PENDING` is
/// `HS_RESULT_INVALID_ARGUMENT`. Uses Alertmanager's `sil`; `hs_node_query_silences_in` names
/// the state. Thread-safe; reads only.
#[unsafe(no_mangle)]
pub extern "C" fn hs_node_query_silences(
    node: *const hs_node,
    query: *const hs_silence_query,
    now_ms: i64,
    silences_out: *mut *mut hs_silences,
) -> hs_result {
    boundary(|| query_silences(node, SILENCES_KEY, query, now_ms, silences_out))
}

/// `hs_node_query_silences` in the silences under `key` (Grafana's `silences:<org>`, or
/// `sil`); `HS_RESULT_NO_SUCH_STATE` when there are none.
#[unsafe(no_mangle)]
pub extern "C" fn hs_node_query_silences_in(
    node: *const hs_node,
    key: hs_str,
    query: *const hs_silence_query,
    now_ms: i64,
    silences_out: *mut *mut hs_silences,
) -> hs_result {
    boundary(|| query_silences(node, text(key, "key")?, query, now_ms, silences_out))
}

fn query_silences(
    node: *const hs_node,
    key: &str,
    query: *const hs_silence_query,
    now_ms: i64,
    silences_out: *mut *mut hs_silences,
) -> FfiResult {
    let n = self::node(node)?;
    let out = out_ptr(silences_out, "silences_out")?;
    let labels;
    let mut q = Query::default();
    if !query.is_null() {
        let c = super::borrow(query, "query")?;
        q.ids = bytes(c.ids, c.ids_len, "ids")?
            .iter()
            .map(|id| text(*id, "id").map(str::to_owned))
            .collect::<FfiResult<_>>()?;
        if c.states >> 3 != 0 {
            return Err(super::Failure::new(
                hs_result::InvalidArgument,
                format!("states {:#x} has bits beyond HS_SILENCE_STATE_PENDING", c.states),
            ));
        }
        let all = [SilenceState::Expired, SilenceState::Active, SilenceState::Pending];
        q.states = all
            .into_iter()
            .filter(|s| c.states & (1 << hs_silence_state::from(*s) as u32) != 0)
            .collect();
        if c.match_labels {
            labels = label_set(c.labels, c.labels_len)?;
            q.matches = Some(&labels);
        }
    }
    let found = n.query_silences(key, &q, UnixMillis(now_ms))?;
    write(out, Box::into_raw(Box::new(hs_silences::new(found))));
    Ok(())
}

/// The silences in `silences`: a pointer to the first of `*len_out` contiguous
/// `hs_silence_info` structs in `*array_out` (NULL when there are none), in no particular
/// order. Valid until `hs_silences_free(silences)`. Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn hs_silences_array(
    silences: *const hs_silences,
    array_out: *mut *const hs_silence_info,
    len_out: *mut usize,
) -> hs_result {
    boundary(|| {
        let s = super::borrow(silences, "silences")?;
        let array_out = out_ptr(array_out, "array_out")?;
        let len_out = out_ptr(len_out, "len_out")?;
        write(array_out, if s.array.is_empty() { std::ptr::null() } else { s.array.as_ptr() });
        write(len_out, s.array.len());
        Ok(())
    })
}

/// Free a silence list. NULL is a no-op; the list and its views must not be used afterwards.
#[unsafe(no_mangle)]
pub extern "C" fn hs_silences_free(silences: *mut hs_silences) {
    boundary(|| {
        if !silences.is_null() {
            // SAFETY: a non-NULL list came from `hs_node_query_silences` and is freed once
            // (the documented contract).
            drop(unsafe { Box::from_raw(silences) });
        }
        Ok(())
    });
}
