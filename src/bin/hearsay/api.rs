//! The slice of Alertmanager's HTTP API v2 that hearsay owns, shaped as `amtool` and the
//! Alertmanager UI expect it: silences, status, readiness, metrics.

use std::time::Instant;

use hearsay::core::UnixMillis;
use hearsay::core::state::silences::{MatcherType, Query, Silence, SilenceError, SilenceState};
use hearsay::node::{Node, StateError, States as _, TransportKind};
use serde::Serialize;
use time::OffsetDateTime;

use crate::http::{Request, Response};
use crate::silence_json::{self, ApiMatcher, api_matcher, rfc3339, timestamp_str};

/// What the handlers need.
pub(crate) struct Api<'a> {
    pub(crate) node: &'a Node,
    pub(crate) silences_key: &'a str,
    pub(crate) started: OffsetDateTime,
    pub(crate) ready: &'a dyn Fn() -> bool,
    pub(crate) metrics: &'a dyn Fn() -> String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct GettableSilence {
    id: String,
    status: SilenceStatus,
    updated_at: String,
    matchers: Vec<ApiMatcher>,
    starts_at: String,
    ends_at: String,
    created_by: String,
    comment: String,
}

#[derive(Debug, Serialize)]
struct SilenceStatus {
    state: &'static str,
}

type Reply = Response;

impl Api<'_> {
    /// Answer one request (its body has arrived whole: see `http`).
    pub(crate) fn handle(&self, req: &Request) -> Reply {
        let started = Instant::now();
        let (path, query) = req.target.split_once('?').unwrap_or((&req.target, ""));
        let reply = match (req.method.as_str(), path) {
            ("GET", "/-/ready") if (self.ready)() => text(200, "OK"),
            ("GET", "/-/ready") => text(503, "settling"),
            ("GET", "/-/healthy") => text(200, "OK"),
            ("GET", "/metrics") => Response {
                status: 200,
                content_type: "application/openmetrics-text; version=1.0.0; charset=utf-8",
                body: (self.metrics)().into_bytes(),
            },
            ("GET", "/api/v2/status") => self.status(),
            ("GET", "/api/v2/silences") => self.list(query),
            ("POST", "/api/v2/silences") => self.post(&req.body),
            ("GET", p) if p.starts_with("/api/v2/silence/") => {
                self.get_one(&p["/api/v2/silence/".len()..])
            }
            ("DELETE", p) if p.starts_with("/api/v2/silence/") => {
                self.delete(&p["/api/v2/silence/".len()..])
            }
            _ => text(404, "not found"),
        };
        log::debug!("{} {path} took {:?}", req.method, started.elapsed());
        reply
    }

    fn list(&self, query: &str) -> Reply {
        let filters = match filters(query) {
            Ok(f) => f,
            Err(e) => return text(400, &e),
        };
        let mut list = match self.node.query_silences(self.silences_key, &Query::default(), now()) {
            Ok(list) => list,
            Err(e) => return text(500, &e.to_string()),
        };
        list.retain(|(_, sil)| filters.iter().all(|f| filter_matches(f, sil)));
        sort_like_alertmanager(&mut list);
        let body: Vec<GettableSilence> =
            list.iter().map(|(state, s)| gettable(s, *state)).collect();
        json(200, &body)
    }

    fn get_one(&self, id: &str) -> Reply {
        let query = Query { ids: vec![id.to_owned()], ..Query::default() };
        match self.node.query_silences(self.silences_key, &query, now()) {
            Ok(found) => match found.first() {
                Some((state, sil)) => json(200, &gettable(sil, *state)),
                None => text(404, "silence not found"),
            },
            Err(e) => text(500, &e.to_string()),
        }
    }

    fn post(&self, body: &[u8]) -> Reply {
        let silence = match silence_json::decode(body, now()) {
            Ok(s) => s,
            Err(e) => return text(400, &e),
        };
        match self.node.set_silence(self.silences_key, silence, now()) {
            Ok(id) => json(200, &serde_json::json!({ "silenceID": id.as_str() })),
            Err(StateError::Silence(SilenceError::NotFound)) => text(404, "silence not found"),
            Err(e @ StateError::Silence(_)) => text(400, &e.to_string()),
            Err(e) => text(500, &e.to_string()),
        }
    }

    fn delete(&self, id: &str) -> Reply {
        match self.node.expire_silence(self.silences_key, id, now()) {
            Ok(()) => text(200, ""),
            Err(StateError::Silence(SilenceError::NotFound)) => text(404, "silence not found"),
            Err(e) => text(500, &e.to_string()),
        }
    }

    fn status(&self) -> Reply {
        let peer =
            |name: &str, address: String| serde_json::json!({ "name": name, "address": address });
        // Redis has no gossip members: the live heartbeat keys are the cluster, without an
        // address (Alertmanager's schema wants the field; Grafana's Redis peer has none).
        let mut peers: Vec<serde_json::Value> = match self.node.transport() {
            TransportKind::Gossip => self
                .node
                .members()
                .iter()
                .filter(|m| !m.state.is_gone())
                .map(|m| peer(m.name.as_str(), m.addr.to_string()))
                .collect(),
            TransportKind::Redis => self
                .node
                .visible_members()
                .iter()
                .map(|m| peer(&m.name, m.addr.map(|a| a.to_string()).unwrap_or_default()))
                .collect(),
        };
        peers.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
        let body = serde_json::json!({
            "cluster": {
                "name": self.node.name().as_str(),
                "status": if (self.ready)() { "ready" } else { "settling" },
                "peers": peers,
            },
            "config": { "original": "" },
            "uptime": rfc3339(self.started),
            "versionInfo": {
                "branch": "",
                "buildDate": "",
                "buildUser": "",
                "goVersion": "none (hearsay is written in Rust)",
                "revision": "",
                "version": concat!("hearsay-", env!("CARGO_PKG_VERSION")),
            },
        });
        json(200, &body)
    }
}

fn now() -> UnixMillis {
    let since =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    UnixMillis(i64::try_from(since.as_millis()).unwrap_or(i64::MAX))
}

fn text(code: u16, body: &str) -> Reply {
    Response {
        status: code,
        content_type: "text/plain; charset=utf-8",
        body: body.as_bytes().to_vec(),
    }
}

fn json(code: u16, body: &impl Serialize) -> Reply {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    Response { status: code, content_type: "application/json", body: bytes }
}

fn gettable(s: &Silence, state: SilenceState) -> GettableSilence {
    let matchers = s
        .matcher_sets
        .first()
        .map(|set| set.matchers.iter().map(api_matcher).collect())
        .unwrap_or_default();
    GettableSilence {
        id: s.id.clone(),
        status: SilenceStatus {
            state: match state {
                SilenceState::Active => "active",
                SilenceState::Pending => "pending",
                SilenceState::Expired => "expired",
            },
        },
        updated_at: timestamp_str(s.updated_at),
        matchers,
        starts_at: timestamp_str(s.starts_at),
        ends_at: timestamp_str(s.ends_at),
        created_by: s.created_by.clone(),
        comment: s.comment.clone(),
    }
}

/// A `filter=` query parameter: `name="value"`, `name!="value"`, `name=~"re"`, `name!~"re"`.
#[derive(Debug)]
struct Filter {
    name: String,
    op: MatcherType,
    value: String,
}

fn filters(query: &str) -> Result<Vec<Filter>, String> {
    let mut out = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k != "filter" {
            continue;
        }
        let v = percent_decode(v);
        let (name, op, rest) = ["!=", "=~", "!~", "="]
            .iter()
            .find_map(|op| v.split_once(op).map(|(n, r)| (n, *op, r)))
            .ok_or_else(|| format!("bad filter {v:?}"))?;
        let op = match op {
            "=" => MatcherType::Equal,
            "!=" => MatcherType::NotEqual,
            "=~" => MatcherType::Regexp,
            _ => MatcherType::NotRegexp,
        };
        let value = rest.trim().trim_matches('"').to_owned();
        out.push(Filter { name: name.trim().to_owned(), op, value });
    }
    Ok(out)
}

fn percent_decode(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hex: Vec<u8> = bytes.by_ref().take(2).collect();
                match std::str::from_utf8(&hex).ok().and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(decoded) if hex.len() == 2 => out.push(decoded),
                    _ => {
                        out.push(b'%');
                        out.extend_from_slice(&hex);
                    }
                }
            }
            b => out.push(b),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Alertmanager's API filter: every filter names a matcher of the silence whose pattern text
/// it matches.
fn filter_matches(f: &Filter, s: &Silence) -> bool {
    let Some(set) = s.matcher_sets.first() else { return false };
    let Some(m) = set.matchers.iter().find(|m| m.name == f.name) else { return false };
    let anchored = |re: &str| {
        regex::Regex::new(&format!("^(?:{re})$")).map(|r| r.is_match(&m.pattern)).unwrap_or(false)
    };
    match f.op {
        MatcherType::Equal => m.pattern == f.value,
        MatcherType::NotEqual => m.pattern != f.value,
        MatcherType::Regexp => anchored(&f.value),
        MatcherType::NotRegexp => !anchored(&f.value),
    }
}

/// Active first (soonest end first), then pending (soonest start first), then expired (most
/// recently ended first), as Alertmanager's `SortSilences`.
fn sort_like_alertmanager(list: &mut [(SilenceState, Silence)]) {
    let rank = |s: SilenceState| match s {
        SilenceState::Active => 0,
        SilenceState::Pending => 1,
        SilenceState::Expired => 2,
    };
    list.sort_by(|(sa, a), (sb, b)| {
        rank(*sa).cmp(&rank(*sb)).then_with(|| match sa {
            SilenceState::Active => a.ends_at.cmp(&b.ends_at),
            SilenceState::Pending => a.starts_at.cmp(&b.starts_at),
            SilenceState::Expired => b.ends_at.cmp(&a.ends_at),
        })
    });
}
