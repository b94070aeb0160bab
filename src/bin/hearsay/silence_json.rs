//! The silence JSON of Alertmanager's API v2 (`postableSilence`, the matchers of
//! `gettableSilence`) and its times, apart from the server so the fuzz target
//! `fuzz/fuzz_targets/silence_json.rs` compiles exactly this file.

use hearsay::core::UnixMillis;
use hearsay::core::state::Timestamp;
use hearsay::core::state::silences::{Matcher, MatcherSet, MatcherType, Silence};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// One matcher as the API writes it.
#[derive(Debug, Serialize, Deserialize, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ApiMatcher {
    pub(crate) name: String,
    pub(crate) value: String,
    pub(crate) is_regex: bool,
    /// Absent in clients older than Alertmanager 0.22: `true`.
    #[serde(default = "yes")]
    pub(crate) is_equal: bool,
}

fn yes() -> bool {
    true
}

/// The body of `POST /api/v2/silences`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PostableSilence {
    #[serde(default)]
    pub(crate) id: Option<String>,
    pub(crate) matchers: Vec<ApiMatcher>,
    pub(crate) starts_at: String,
    pub(crate) ends_at: String,
    #[serde(default)]
    pub(crate) created_by: String,
    #[serde(default)]
    pub(crate) comment: String,
}

/// A request body into the silence to write, or the message of a 400.
pub(crate) fn decode(body: &[u8], now: UnixMillis) -> Result<Silence, String> {
    let posted: PostableSilence =
        serde_json::from_slice(body).map_err(|e| format!("invalid silence: {e}"))?;
    from_postable(posted, now)
}

/// A time as the API prints it.
pub(crate) fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// A timestamp as the API prints it (RFC 3339, milliseconds).
pub(crate) fn timestamp_str(t: Timestamp) -> String {
    let nanos = i128::from(t.seconds) * 1_000_000_000 + i128::from(t.nanos);
    // Millisecond precision, as Go's strfmt.DateTime prints.
    let millis = nanos.div_euclid(1_000_000) * 1_000_000;
    OffsetDateTime::from_unix_timestamp_nanos(millis).map(rfc3339).unwrap_or_default()
}

/// An RFC 3339 time from a request.
pub(crate) fn parse_time(s: &str) -> Result<Timestamp, String> {
    let t = OffsetDateTime::parse(s, &Rfc3339).map_err(|e| format!("invalid time {s:?}: {e}"))?;
    let nanos = t.unix_timestamp_nanos();
    Ok(Timestamp {
        seconds: i64::try_from(nanos.div_euclid(1_000_000_000))
            .map_err(|_| "time out of range".to_owned())?,
        nanos: i32::try_from(nanos.rem_euclid(1_000_000_000)).unwrap_or(0),
    })
}

/// A stored matcher as the API prints it.
pub(crate) fn api_matcher(m: &Matcher) -> ApiMatcher {
    let (is_regex, is_equal) = match m.kind() {
        Some(MatcherType::Regexp) => (true, true),
        Some(MatcherType::NotRegexp) => (true, false),
        Some(MatcherType::NotEqual) => (false, false),
        Some(MatcherType::Equal) | None => (false, true),
    };
    ApiMatcher { name: m.name.clone(), value: m.pattern.clone(), is_regex, is_equal }
}

/// The API's checks (Alertmanager `postSilencesHandler`), then the protobuf silence.
pub(crate) fn from_postable(p: PostableSilence, now: UnixMillis) -> Result<Silence, String> {
    let starts_at = parse_time(&p.starts_at)?;
    let ends_at = parse_time(&p.ends_at)?;
    if starts_at >= ends_at {
        return Err("start time must be before end time".into());
    }
    if ends_at < Timestamp::from(now) {
        return Err("end time can't be in the past".into());
    }
    if p.matchers.is_empty() {
        return Err("silence must have at least one matcher".into());
    }
    let matchers = p
        .matchers
        .iter()
        .map(|m| {
            let kind = match (m.is_regex, m.is_equal) {
                (false, true) => MatcherType::Equal,
                (false, false) => MatcherType::NotEqual,
                (true, true) => MatcherType::Regexp,
                (true, false) => MatcherType::NotRegexp,
            };
            Matcher::new(kind, m.name.clone(), m.value.clone())
        })
        .collect();
    Ok(Silence {
        id: p.id.unwrap_or_default(),
        starts_at,
        ends_at,
        created_by: p.created_by,
        comment: p.comment,
        matcher_sets: vec![MatcherSet { matchers }],
        ..Silence::default()
    })
}
