//! The matcher index: which silences can match a label set, without running every regex of
//! every silence.
//!
//! * **Terms.** Each distinct positive matcher (`name`, `=` or `=~`, pattern) is compiled once
//!   and shared by every silence using it (`!=`/`!~` use the positive term and negate). A query
//!   evaluates each term at most once ([`Memo`]).
//! * **Anchors.** Each matcher set is filed under one of its matchers that cannot match the
//!   empty string, so the set can only match alerts that *have* that label: under each of the
//!   anchor's values when it accepts a small finite set (`alertname="X"`, `bbbb=~"ID1|ID2"`;
//!   smallest set wins), else under the label name. Sets with no such matcher (only `!=`/`!~`,
//!   or empty) are scanned on every query. A query visits the postings of the alert's own
//!   `(name, value)` pairs and names, plus the scan list, then evaluates the rest of each
//!   candidate set; the anchor itself is known to match.
//! * **Slots.** Silences live in slots numbered in insertion order; a slot's matchers never
//!   change (a silence whose matchers change moves to a new slot), so postings and the mutes
//!   cache can refer to slots. Removed slots leave stale postings that lookups skip, until
//!   [`Index::compact`] renumbers everything after GC.
//!
//! A silence whose matchers fail to compile (or with an unknown operator, or no sets, as only
//! gossip can deliver) gets no postings: it never matches and costs queries nothing.

use std::collections::{BTreeMap, HashMap};

use regex::bytes::Regex;
use xxhash_rust::xxh3::Xxh3Builder;

use super::matcher::{PatternError, build, contains, split_regex};
use super::proto::{MatcherType, Silence};
use crate::core::state::labels::LabelSet;

/// One distinct positive matcher.
#[derive(Debug)]
struct Term {
    key: TermKey,
    kind: TermKind,
    matches_empty: bool,
    refs: u32,
}

/// (label name, regex?, pattern as written).
type TermKey = (String, bool, String);

#[derive(Debug)]
enum TermKind {
    Equal(String),
    /// The split regex ([`super::matcher::RegexParts`]): exact values, or a shared residual.
    Regex {
        values: Vec<String>,
        residual: Option<u32>,
    },
}

impl TermKind {
    /// The exact values accepted, when there are finitely few.
    fn finite_values(&self) -> Option<&[String]> {
        match self {
            Self::Equal(v) => Some(std::slice::from_ref(v)),
            Self::Regex { values, residual: None } => Some(values),
            Self::Regex { residual: Some(_), .. } => None,
        }
    }
}

/// A compiled residual regex, shared by every term of the same label name whose regex has
/// the same non-finite branches.
#[derive(Debug)]
struct Residual {
    key: (String, String),
    regex: Regex,
    refs: u32,
}

/// One matcher of a compiled set: a term, negated for `!=`/`!~`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Use {
    term: u32,
    negate: bool,
}

/// The compiled sets of one slot, each with its anchor (index into the set).
#[derive(Debug, Default)]
struct Compiled {
    sets: Vec<(Vec<Use>, Option<usize>)>,
}

/// Where a set is filed.
#[derive(Debug, Clone, Copy)]
struct Posting {
    slot: u32,
    set: u32,
}

#[derive(Debug)]
struct NamePostings {
    by_value: HashMap<String, Vec<Posting>, Xxh3Builder>,
    present: Vec<Posting>,
}

/// Per-query cache of term and residual results: 0 unknown, 1 false, 2 true. Only touched
/// marks are reset, so reusing one across queries costs nothing per term.
#[derive(Debug, Default)]
pub(super) struct Memo {
    terms: Marks,
    residuals: Marks,
}

#[derive(Debug, Default)]
struct Marks {
    marks: Vec<u8>,
    touched: Vec<u32>,
}

impl Marks {
    fn start(&mut self, n: usize) {
        for t in self.touched.drain(..) {
            self.marks[t as usize] = 0;
        }
        if self.marks.len() < n {
            self.marks.resize(n, 0);
        }
    }

    fn get_or(&mut self, id: u32, f: impl FnOnce() -> bool) -> bool {
        let mark = self.marks[id as usize];
        if mark != 0 {
            return mark == 2;
        }
        let result = f();
        self.marks[id as usize] = 1 + u8::from(result);
        self.touched.push(id);
        result
    }
}

/// The index over all slots.
#[derive(Debug)]
pub(super) struct Index {
    hash_key: u64,
    terms: Vec<Option<Term>>,
    free_terms: Vec<u32>,
    term_ids: HashMap<TermKey, u32, Xxh3Builder>,
    residuals: Vec<Option<Residual>>,
    free_residuals: Vec<u32>,
    residual_ids: HashMap<(String, String), u32, Xxh3Builder>,
    /// Per slot; `None` for a silence that never matches (or a removed slot).
    slots: Vec<Option<Compiled>>,
    names: BTreeMap<String, NamePostings>,
    scan: Vec<Posting>,
}

impl Default for Index {
    fn default() -> Self {
        Self::new(0)
    }
}

impl Index {
    /// An empty index whose hash maps are keyed with `hash_key` (silence matchers come from
    /// peers; a per-node key keeps their hashing unpredictable, and iteration order never
    /// reaches an output).
    pub(super) fn new(hash_key: u64) -> Self {
        let hasher = Xxh3Builder::new().with_seed(hash_key);
        Self {
            hash_key,
            terms: Vec::new(),
            free_terms: Vec::new(),
            term_ids: HashMap::with_hasher(hasher),
            residuals: Vec::new(),
            free_residuals: Vec::new(),
            residual_ids: HashMap::with_hasher(hasher),
            slots: Vec::new(),
            names: BTreeMap::new(),
            scan: Vec::new(),
        }
    }

    /// Distinct compiled terms (`alertmanager_silences_matcher_index_size`).
    pub(super) fn term_count(&self) -> usize {
        self.terms.len() - self.free_terms.len()
    }

    /// Compile and file the silence in `slot` (the next slot number). On error the slot is
    /// kept as never matching and the error is returned for the caller to count.
    pub(super) fn insert(&mut self, slot: u32, silence: &Silence) -> Result<(), PatternError> {
        debug_assert_eq!(slot as usize, self.slots.len());
        let compiled = self.compile(silence);
        match compiled {
            Ok(c) => {
                self.file(slot, &c);
                self.slots.push(Some(c));
                Ok(())
            }
            Err(e) => {
                self.slots.push(None);
                Err(e)
            }
        }
    }

    /// Forget the slot's terms; its postings go stale and are skipped until compaction.
    pub(super) fn remove(&mut self, slot: u32) {
        if let Some(Some(c)) = self.slots.get_mut(slot as usize).map(Option::take) {
            for (set, _) in &c.sets {
                for u in set {
                    self.release(u.term);
                }
            }
        }
    }

    /// Renumber after slots were dropped: `keep[i]` is the new number of old slot `i`.
    /// Postings are rewritten in place (no recompilation, no reallocation).
    pub(super) fn compact(&mut self, keep: &[Option<u32>]) {
        let renumber = |list: &mut Vec<Posting>| {
            list.retain_mut(|p| match keep.get(p.slot as usize).copied().flatten() {
                Some(new) => {
                    p.slot = new;
                    true
                }
                None => false,
            });
        };
        for np in self.names.values_mut() {
            np.by_value.values_mut().for_each(renumber);
            np.by_value.retain(|_, list| !list.is_empty());
            renumber(&mut np.present);
        }
        self.names.retain(|_, np| !np.by_value.is_empty() || !np.present.is_empty());
        renumber(&mut self.scan);
        let old = std::mem::take(&mut self.slots);
        self.slots = old
            .into_iter()
            .enumerate()
            .filter(|(i, _)| keep.get(*i).copied().flatten().is_some())
            .map(|(_, c)| c)
            .collect();
    }

    fn compile(&mut self, silence: &Silence) -> Result<Compiled, PatternError> {
        let mut acquired = Vec::new();
        let result = self.compile_sets(silence, &mut acquired);
        if result.is_err() {
            for t in acquired {
                self.release(t);
            }
        }
        result
    }

    fn compile_sets(
        &mut self,
        silence: &Silence,
        acquired: &mut Vec<u32>,
    ) -> Result<Compiled, PatternError> {
        if silence.matcher_sets.is_empty() {
            return Err(PatternError("silence has no matchers".into()));
        }
        let mut sets = Vec::with_capacity(silence.matcher_sets.len());
        for set in &silence.matcher_sets {
            let mut uses = Vec::with_capacity(set.matchers.len());
            for m in &set.matchers {
                let (regex, negate) = match m.kind() {
                    Some(MatcherType::Equal) => (false, false),
                    Some(MatcherType::NotEqual) => (false, true),
                    Some(MatcherType::Regexp) => (true, false),
                    Some(MatcherType::NotRegexp) => (true, true),
                    None => return Err(PatternError(format!("unknown matcher type {}", m.r#type))),
                };
                let term = self.acquire(&m.name, regex, &m.pattern)?;
                acquired.push(term);
                uses.push(Use { term, negate });
            }
            let anchor = self.choose_anchor(&uses);
            sets.push((uses, anchor));
        }
        Ok(Compiled { sets })
    }

    /// Prefer the matcher with the fewest exact values; else any that needs the label present.
    fn choose_anchor(&self, uses: &[Use]) -> Option<usize> {
        let mut best: Option<(usize, usize)> = None;
        for (i, u) in uses.iter().enumerate() {
            let t = self.term(u.term);
            if u.negate || t.matches_empty {
                continue;
            }
            let weight = t.kind.finite_values().map_or(usize::MAX, <[String]>::len);
            if best.is_none_or(|(_, w)| weight < w) {
                best = Some((i, weight));
            }
        }
        best.map(|(i, _)| i)
    }

    fn file(&mut self, slot: u32, c: &Compiled) {
        for (set_no, (uses, anchor)) in c.sets.iter().enumerate() {
            let posting = Posting { slot, set: u32::try_from(set_no).unwrap_or(u32::MAX) };
            let Some(a) = *anchor else {
                self.scan.push(posting);
                continue;
            };
            let term = self.terms[uses[a].term as usize].as_ref().expect("live term");
            let name = term.key.0.as_str();
            if !self.names.contains_key(name) {
                let by_value = HashMap::with_hasher(Xxh3Builder::new().with_seed(self.hash_key));
                self.names.insert(name.to_owned(), NamePostings { by_value, present: Vec::new() });
            }
            let names = self.names.get_mut(name).expect("inserted above");
            match term.kind.finite_values() {
                Some(values) => {
                    for v in values {
                        match names.by_value.get_mut(v.as_str()) {
                            Some(list) => list.push(posting),
                            None => {
                                names.by_value.insert(v.clone(), vec![posting]);
                            }
                        }
                    }
                }
                None => names.present.push(posting),
            }
        }
    }

    fn acquire(&mut self, name: &str, regex: bool, pattern: &str) -> Result<u32, PatternError> {
        let key = (name.to_owned(), regex, pattern.to_owned());
        if let Some(&id) = self.term_ids.get(&key) {
            if let Some(t) = self.terms[id as usize].as_mut() {
                t.refs += 1;
            }
            return Ok(id);
        }
        let (kind, matches_empty) = if regex {
            let parts = split_regex(pattern)?;
            let residual = match parts.residual {
                Some(text) => Some(self.acquire_residual(name, text)?),
                None => None,
            };
            let empty = contains(&parts.values, "")
                || residual.is_some_and(|r| self.residual(r).regex.is_match(b""));
            (TermKind::Regex { values: parts.values, residual }, empty)
        } else {
            (TermKind::Equal(pattern.to_owned()), pattern.is_empty())
        };
        let term = Term { key: key.clone(), kind, matches_empty, refs: 1 };
        let id = reuse_or_push(&mut self.terms, &mut self.free_terms, term);
        self.term_ids.insert(key, id);
        Ok(id)
    }

    fn acquire_residual(&mut self, name: &str, text: String) -> Result<u32, PatternError> {
        let key = (name.to_owned(), text);
        if let Some(&id) = self.residual_ids.get(&key) {
            if let Some(r) = self.residuals[id as usize].as_mut() {
                r.refs += 1;
            }
            return Ok(id);
        }
        let regex = build(&key.1)?;
        let residual = Residual { key: key.clone(), regex, refs: 1 };
        let id = reuse_or_push(&mut self.residuals, &mut self.free_residuals, residual);
        self.residual_ids.insert(key, id);
        Ok(id)
    }

    fn release(&mut self, id: u32) {
        let Some(slot) = self.terms.get_mut(id as usize) else { return };
        let Some(t) = slot.as_mut() else { return };
        t.refs -= 1;
        if t.refs > 0 {
            return;
        }
        let Some(t) = slot.take() else { return };
        self.term_ids.remove(&t.key);
        self.free_terms.push(id);
        if let TermKind::Regex { residual: Some(r), .. } = t.kind {
            self.release_residual(r);
        }
    }

    fn release_residual(&mut self, id: u32) {
        let Some(slot) = self.residuals.get_mut(id as usize) else { return };
        let Some(r) = slot.as_mut() else { return };
        r.refs -= 1;
        if r.refs == 0 {
            if let Some(r) = slot.take() {
                self.residual_ids.remove(&r.key);
            }
            self.free_residuals.push(id);
        }
    }

    fn residual(&self, id: u32) -> &Residual {
        // Invariant: a term only names residuals it holds a reference on.
        self.residuals[id as usize].as_ref().expect("referenced residual is live")
    }

    fn term(&self, id: u32) -> &Term {
        // Invariant: a `Use` only names terms it holds a reference on.
        self.terms[id as usize].as_ref().expect("referenced term is live")
    }

    fn eval(&self, id: u32, labels: &LabelSet, memo: &mut Memo) -> bool {
        let Memo { terms, residuals } = memo;
        terms.get_or(id, || {
            let t = self.term(id);
            let value = labels.get(&t.key.0).map_or("", String::as_str);
            match &t.kind {
                TermKind::Equal(v) => v == value,
                TermKind::Regex { values, residual } => {
                    contains(values, value)
                        || residual.is_some_and(|r| {
                            residuals
                                .get_or(r, || self.residual(r).regex.is_match(value.as_bytes()))
                        })
                }
            }
        })
    }

    fn set_matches(
        &self,
        uses: &[Use],
        skip: Option<usize>,
        labels: &LabelSet,
        memo: &mut Memo,
    ) -> bool {
        uses.iter()
            .enumerate()
            .all(|(i, u)| Some(i) == skip || self.eval(u.term, labels, memo) != u.negate)
    }

    /// Whether the silence in `slot` matches (any set); `memo` must have been prepared with
    /// [`Index::begin`] for these labels.
    pub(super) fn slot_matches(&self, slot: u32, labels: &LabelSet, memo: &mut Memo) -> bool {
        let Some(Some(c)) = self.slots.get(slot as usize) else { return false };
        c.sets.iter().any(|(uses, _)| self.set_matches(uses, None, labels, memo))
    }

    /// Prepare `memo` for a query over the current terms.
    pub(super) fn begin(&self, memo: &mut Memo) {
        memo.terms.start(self.terms.len());
        memo.residuals.start(self.residuals.len());
    }

    /// Every slot with a set matching `labels` and accepted by `accept` (checked before any
    /// matcher runs), appended to `out` in ascending order without duplicates. Returns how
    /// many candidate sets were examined.
    pub(super) fn matching(
        &self,
        labels: &LabelSet,
        memo: &mut Memo,
        accept: &mut dyn FnMut(u32) -> bool,
        out: &mut Vec<u32>,
    ) -> usize {
        let base = out.len();
        let mut examined = 0;
        let mut visit = |p: &Posting, anchored: bool, out: &mut Vec<u32>| {
            if !accept(p.slot) {
                return;
            }
            examined += 1;
            let Some(Some(c)) = self.slots.get(p.slot as usize) else { return };
            let Some((uses, anchor)) = c.sets.get(p.set as usize) else { return };
            let skip = if anchored { *anchor } else { None };
            if self.set_matches(uses, skip, labels, memo) {
                out.push(p.slot);
            }
        };
        for (name, value) in labels {
            let Some(np) = self.names.get(name) else { continue };
            if let Some(list) = np.by_value.get(value) {
                list.iter().for_each(|p| visit(p, true, out));
            }
            // Presence anchors are regexes: the label being present is not enough.
            np.present.iter().for_each(|p| visit(p, false, out));
        }
        self.scan.iter().for_each(|p| visit(p, false, out));
        out[base..].sort_unstable();
        let mut w = base;
        for r in base..out.len() {
            if w == base || out[w - 1] != out[r] {
                out[w] = out[r];
                w += 1;
            }
        }
        out.truncate(w);
        examined
    }
}

/// Put `item` in a free slot or a new one; returns its number.
fn reuse_or_push<T>(items: &mut Vec<Option<T>>, free: &mut Vec<u32>, item: T) -> u32 {
    match free.pop() {
        Some(id) => {
            items[id as usize] = Some(item);
            id
        }
        None => {
            items.push(Some(item));
            u32::try_from(items.len() - 1).unwrap_or(u32::MAX)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::state::silences::proto::{Matcher, MatcherSet};

    fn silence(sets: &[&[(MatcherType, &str, &str)]]) -> Silence {
        Silence {
            matcher_sets: sets
                .iter()
                .map(|set| MatcherSet {
                    matchers: set.iter().map(|&(k, n, p)| Matcher::new(k, n, p)).collect(),
                })
                .collect(),
            ..Default::default()
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> LabelSet {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn query(ix: &Index, l: &LabelSet) -> Vec<u32> {
        let mut memo = Memo::default();
        ix.begin(&mut memo);
        let mut out = Vec::new();
        ix.matching(l, &mut memo, &mut |_| true, &mut out);
        out
    }

    use MatcherType::{Equal, NotEqual, NotRegexp, Regexp};

    #[test]
    fn anchors_and_scan_lists_find_exactly_the_matching_slots() {
        let mut ix = Index::default();
        let all: Vec<Silence> = vec![
            silence(&[&[(Equal, "alertname", "A"), (Equal, "instance", "i1")]]),
            silence(&[&[(Regexp, "alertname", "A|B"), (NotEqual, "team", "db")]]),
            silence(&[&[(NotRegexp, "job", "node")]]),
            silence(&[&[(Regexp, "alertname", "A.*")]]),
            silence(&[&[(Equal, "x", "1")], &[(Equal, "alertname", "B")]]),
            silence(&[&[(Regexp, "alertname", "(")]]),
            silence(&[]),
        ];
        for (i, s) in all.iter().enumerate() {
            let r = ix.insert(i as u32, s);
            assert_eq!(r.is_err(), i >= 5, "slot {i}");
        }
        let l = labels(&[("alertname", "A"), ("instance", "i1"), ("job", "node")]);
        assert_eq!(query(&ix, &l), vec![0, 1, 3]);
        let l = labels(&[("alertname", "B"), ("team", "db")]);
        assert_eq!(query(&ix, &l), vec![2, 4]);
        // Brute force agrees.
        let mut memo = Memo::default();
        ix.begin(&mut memo);
        let brute: Vec<u32> = (0..7).filter(|&s| ix.slot_matches(s, &l, &mut memo)).collect();
        assert_eq!(brute, vec![2, 4]);
    }

    #[test]
    fn terms_are_shared_and_released() {
        let mut ix = Index::default();
        let s = silence(&[&[(Equal, "a", "1"), (Regexp, "b", "x.*")]]);
        ix.insert(0, &s).expect("valid");
        ix.insert(1, &s).expect("valid");
        assert_eq!(ix.term_count(), 2);
        ix.remove(0);
        assert_eq!(ix.term_count(), 2);
        ix.remove(1);
        assert_eq!(ix.term_count(), 0);
        // A failed compile releases what it took.
        let bad = silence(&[&[(Equal, "a", "1"), (Regexp, "b", "(")]]);
        assert!(ix.insert(2, &bad).is_err());
        assert_eq!(ix.term_count(), 0);
        ix.compact(&[None, None, None]);
        assert!(query(&ix, &labels(&[("a", "1"), ("b", "xx")])).is_empty());
    }

    #[test]
    fn residual_regexes_are_shared_per_label_name() {
        let mut ix = Index::default();
        for i in 0..3 {
            let s = silence(&[&[(Regexp, "b", &format!("ID{i}|B(B|C)B."))]]);
            ix.insert(i, &s).expect("valid");
        }
        ix.insert(3, &silence(&[&[(Regexp, "c", "B(B|C)B.")]])).expect("valid");
        assert_eq!(ix.term_count(), 4);
        assert_eq!(ix.residual_ids.len(), 2, "one for b, one for c");
        assert_eq!(query(&ix, &labels(&[("b", "BCBx")])), vec![0, 1, 2]);
        assert_eq!(query(&ix, &labels(&[("b", "ID1")])), vec![1]);
        for slot in 0..4 {
            ix.remove(slot);
        }
        assert!(ix.residual_ids.is_empty() && ix.term_ids.is_empty());
    }

    #[test]
    fn compaction_renumbers_postings() {
        let mut ix = Index::default();
        for i in 0..4 {
            ix.insert(i, &silence(&[&[(Equal, "a", "1")]])).expect("valid");
        }
        ix.remove(1);
        ix.remove(2);
        ix.compact(&[Some(0), None, None, Some(1)]);
        assert_eq!(query(&ix, &labels(&[("a", "1")])), vec![0, 1]);
    }
}
