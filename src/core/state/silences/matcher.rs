//! Compiled matchers: what a silence's `name op pattern` accepts, with Go's semantics.
//!
//! A regex matcher compiles `^(?:pattern)$` exactly as Alertmanager builds it (the wrapper is
//! part of the text Go parses, so even odd patterns such as `a)|(b` behave as in Go), after
//! translating Go's syntax (`re2.rs`). An absent label matches as the empty string.
//!
//! When the anchored regex accepts a small finite set of strings (`A{4}|ID123`,
//! `(?i)foo`, `db1|db2`), it is kept as that sorted set instead of a regex: matching is a
//! binary search, and the silence index can look the silence up by value.

use regex::bytes::{Regex, RegexBuilder};
use regex_syntax::hir::literal::Extractor;
use regex_syntax::hir::{Hir, HirKind, Look};

use super::re2;

/// Rust-side nesting limit: the translator keeps Go's tree height (≤ 1000); Rust counts a
/// group and its repetition as two levels.
const NEST_LIMIT: u32 = 2 * re2::MAX_HEIGHT + 10;
/// Longest regex pattern of a matcher, in bytes. Parsing and compiling cost memory in
/// proportion to the text before the compiled-size limit can apply (a 900 KB pattern raised
/// resident memory by about 95 MB; at this bound an alternation of names peaks near 5 MB
/// while compiling, in a debug build), so the text is bounded first. Alertmanager has no bound;
/// a silence over it is refused when written here and never matches when a peer or a snapshot
/// delivers it. 16 KiB holds an alternation of several hundred alert names.
pub const MAX_PATTERN_BYTES: usize = 16 << 10;
/// Compiled-program size limit per regex (`RegexBuilder::size_limit`; Rust's default is
/// 10 MiB): what one matcher's automaton may cost, however short its text (`\pL{1000}`).
pub const MAX_COMPILED_BYTES: usize = 4 << 20;
/// Lazy-DFA cache per regex and searching thread (`RegexBuilder::dfa_size_limit`; Rust's
/// default is 2 MiB). Past it the cache is cleared and refilled, or the search falls back to
/// a slower engine: matching stays correct, memory stays bounded.
const DFA_CACHE_BYTES: usize = 1 << 20;
/// Largest finite language kept as a set rather than a regex.
const MAX_SET: usize = 64;

/// Why a pattern does not compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PatternError(pub String);

/// A pattern longer than [`MAX_PATTERN_BYTES`], refused before it is parsed.
fn check_len(pattern: &str) -> Result<(), PatternError> {
    if pattern.len() > MAX_PATTERN_BYTES {
        return Err(PatternError(format!(
            "regular expression is {} bytes long, over the limit of {MAX_PATTERN_BYTES} bytes",
            pattern.len()
        )));
    }
    Ok(())
}

/// The positive form of a matcher (`=` / `=~`); `!=` / `!~` negate its result.
#[derive(Debug, Clone)]
pub enum Pattern {
    /// Exact value.
    Equal(String),
    /// A regex whose language is exactly these strings (sorted, deduplicated).
    Set(Vec<String>),
    /// A regex with no finite part worth separating, anchored.
    Regex(Regex),
    /// A regex `a|b|rest`: these exact strings, or the anchored rest.
    Mixed(Vec<String>, Regex),
}

impl Pattern {
    /// Compile an `=` value or an `=~` regex.
    pub fn compile(regex: bool, pattern: &str) -> Result<Self, PatternError> {
        if !regex {
            return Ok(Self::Equal(pattern.to_owned()));
        }
        let parts = split_regex(pattern)?;
        Ok(match parts.residual {
            None => Self::Set(parts.values),
            Some(rest) if parts.values.is_empty() => Self::Regex(build(&rest)?),
            Some(rest) => Self::Mixed(parts.values, build(&rest)?),
        })
    }

    /// Whether `value` is accepted.
    pub fn matches(&self, value: &str) -> bool {
        match self {
            Self::Equal(v) => v == value,
            Self::Set(values) => contains(values, value),
            Self::Regex(re) => re.is_match(value.as_bytes()),
            Self::Mixed(values, re) => contains(values, value) || re.is_match(value.as_bytes()),
        }
    }

    /// The exact values accepted, when there are finitely few.
    pub fn finite_values(&self) -> Option<&[String]> {
        match self {
            Self::Equal(v) => Some(std::slice::from_ref(v)),
            Self::Set(values) => Some(values),
            Self::Regex(_) | Self::Mixed(..) => None,
        }
    }
}

/// Membership in a sorted list.
pub(super) fn contains(values: &[String], value: &str) -> bool {
    values.binary_search_by(|v| v.as_str().cmp(value)).is_ok()
}

/// A regex matcher taken apart: `^(?:b1|b2|…)$` accepts a value iff it is one of `values`
/// (the branches with a small finite language) or the anchored `residual` (the other
/// branches) matches it. Splitting lets the index file the finite part by value and share one
/// compiled residual between silences whose patterns differ only in literal branches
/// (`ID1|x.*`, `ID2|x.*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct RegexParts {
    /// Sorted, deduplicated.
    pub(super) values: Vec<String>,
    /// A Rust pattern, anchored, for `bytes::Regex`.
    pub(super) residual: Option<String>,
}

/// Translate and split the regex of an `=~` / `!~` matcher (see [`RegexParts`]).
pub(super) fn split_regex(pattern: &str) -> Result<RegexParts, PatternError> {
    check_len(pattern)?;
    let rust = translate(&format!("^(?:{pattern})$"))?;
    let hir = parse(&rust)?;
    Ok(split(&hir, &rust).unwrap_or(RegexParts { values: Vec::new(), residual: Some(rust) }))
}

/// Compile an anchored Rust pattern produced by [`split_regex`].
pub(super) fn build(rust: &str) -> Result<Regex, PatternError> {
    RegexBuilder::new(rust)
        .nest_limit(NEST_LIMIT)
        .size_limit(MAX_COMPILED_BYTES)
        .dfa_size_limit(DFA_CACHE_BYTES)
        .build()
        .map_err(|e| match e {
            regex::Error::CompiledTooBig(limit) => PatternError(format!(
                "regular expression compiles to more than the limit of {limit} bytes"
            )),
            e => PatternError(e.to_string()),
        })
}

/// Whether Go's `regexp.Compile(pattern)` (unwrapped, as validation calls it) would succeed.
pub fn check_regex(pattern: &str) -> Result<(), PatternError> {
    check_len(pattern)?;
    let rust = translate(pattern)?;
    parse(&rust)?;
    Ok(())
}

fn translate(go: &str) -> Result<String, PatternError> {
    re2::translate(go).map_err(|e| PatternError(format!("error parsing regexp: {e}")))
}

fn parse(rust: &str) -> Result<Hir, PatternError> {
    regex_syntax::ParserBuilder::new()
        .utf8(false)
        .nest_limit(NEST_LIMIT)
        .build()
        .parse(rust)
        .map_err(|e| PatternError(e.to_string()))
}

/// Split `^(?:x)$` by the top-level branches of `x`. `None` when the regex is not of that
/// shape (the wrapper quirk `a)|(b` makes the anchors part of branches).
fn split(hir: &Hir, whole: &str) -> Option<RegexParts> {
    let HirKind::Concat(parts) = hir.kind() else { return None };
    let [first, middle @ .., last] = parts.as_slice() else { return None };
    if !matches!(first.kind(), HirKind::Look(Look::Start))
        || !matches!(last.kind(), HirKind::Look(Look::End))
    {
        return None;
    }
    let inner = Hir::concat(middle.to_vec());
    let branches = match inner.kind() {
        HirKind::Alternation(branches) => branches.clone(),
        _ => vec![inner],
    };
    let mut values = Vec::new();
    let mut rest = Vec::new();
    for branch in &branches {
        match finite_language(branch) {
            Some(v) if values.len() + v.len() <= MAX_SET => values.extend(v),
            _ => rest.push(branch.clone()),
        }
    }
    values.sort_unstable();
    values.dedup();
    let residual = match rest.len() {
        0 => None,
        n if n == branches.len() => Some(whole.to_owned()),
        _ => Some(format!("^(?:{})$", Hir::alternation(rest))),
    };
    Some(RegexParts { values, residual })
}

/// The strings a branch accepts, when it has no assertions (literal extraction treats them
/// as always true) and denotes a small finite set.
fn finite_language(branch: &Hir) -> Option<Vec<String>> {
    if !branch.properties().look_set().is_empty() {
        return None;
    }
    let seq = Extractor::new().limit_total(MAX_SET).extract(branch);
    if !seq.is_exact() {
        return None;
    }
    seq.literals()?.iter().map(|lit| String::from_utf8(lit.as_bytes().to_vec()).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn re(p: &str) -> Pattern {
        Pattern::compile(true, p).unwrap_or_else(|e| panic!("{p}: {e}"))
    }

    /// Outcomes below were produced by Go 1.26's `regexp` on `^(?:p)$` (Alertmanager HEAD's
    /// toolchain): `Some(bool)` is the match result, `None` a compile error.
    const GO: &[(&str, &str, Option<bool>)] = &[
        // Perl classes are ASCII in Go.
        (r"\d", "٣", Some(false)),
        (r"\d", "7", Some(true)),
        (r"\w", "é", Some(false)),
        (r"\w", "\u{212a}", Some(false)),
        (r"(?i)\w", "\u{212a}", Some(true)),
        (r"(?i)\W", "\u{212a}", Some(false)),
        (r"\s", "\x0b", Some(false)),
        (r"\s", "\u{a0}", Some(false)),
        (r"\s", "\u{85}", Some(false)),
        (r"\s", "\x0c", Some(true)),
        (r"\S", "\x0b", Some(true)),
        (r"[\s]", "\x0b", Some(false)),
        (r"[^\s]", "\x0b", Some(true)),
        (r"[\d-z]", "-", Some(true)),
        // Word boundaries are ASCII in Go.
        (r"a\bé", "aé", Some(true)),
        (r"é\Bé", "éé", Some(true)),
        // Case folding.
        ("(?i)k", "\u{212a}", Some(true)),
        ("(?i)ſ", "S", Some(true)),
        ("(?i)Σ", "ς", Some(true)),
        ("(?i)[^k]", "\u{212a}", Some(false)),
        ("(?i:a)b", "Ab", Some(true)),
        ("(?i:a)b", "AB", Some(false)),
        // Escapes and assertions.
        (r"\Z", "", None),
        (r"a\z", "a", Some(true)),
        (r"\e", "\x1b", None),
        (r"\C", "a", None),
        (r"\a", "\x07", Some(true)),
        (r"\v", "\x0b", Some(true)),
        (r"\<a\>", "<a>", Some(true)),
        (r"\_", "_", Some(true)),
        (r"\101", "A", Some(true)),
        (r"\0", "\0", Some(true)),
        (r"\12", "\n", Some(true)),
        (r"\1", "\x01", None),
        (r"\8", "8", None),
        (r"\x41", "A", Some(true)),
        (r"\x{41}", "A", Some(true)),
        (r"\x4", "A", None),
        (r"\Qa.b\E", "a.b", Some(true)),
        (r"\Qa.b\E", "axb", Some(false)),
        (r"\b{start}", "{start}", Some(false)),
        (r"a\b{2}", "a", Some(true)),
        // Look-around and flags Go does not have.
        ("(?=a)a", "a", None),
        ("(?x) a", "a", None),
        ("(?u)a", "a", None),
        ("(?R)a", "a", None),
        ("(?)a", "a", Some(true)),
        ("(?i-)a", "A", None),
        // Classes: `[` and set operators are literals in Go.
        ("[a[bc]]", "a]", Some(true)),
        ("[a[bc]]", "[]", Some(true)),
        ("[a[bc]]", "b", Some(false)),
        ("[a-z&&[^aeiou]]", "&]", Some(true)),
        ("[a-z&&[^aeiou]]", "b", Some(false)),
        ("[a~~b]", "~", Some(true)),
        ("[a--b]", "-", None),
        ("[]a]", "]", Some(true)),
        ("[^]a]", "b", Some(true)),
        ("[a-]", "-", Some(true)),
        ("[]", "", None),
        ("[[:alpha:]]", "é", Some(false)),
        ("[[:^alpha:]]", "1", Some(true)),
        ("[:alpha:]", "a", Some(true)),
        ("[[:foo:]]", "a", None),
        (r"[^\x00-\x{10FFFF}]", "a", Some(false)),
        // Repetition.
        ("a{,2}", "a{,2}", Some(true)),
        ("a{", "a{", Some(true)),
        ("x{01}", "x", Some(false)),
        ("x{0}", "", Some(true)),
        ("a{1001}", "", None),
        ("(a{2}){500}", "", Some(false)),
        ("(a{500}){3}", "", None),
        ("a**", "a", None),
        ("a*??", "a", None),
        ("a{2}{3}", "aaaaaa", None),
        ("^*a", "a", Some(true)),
        ("*a", "a", None),
        // Groups, names, alternation.
        ("(?P<n>a)(?P<n>b)", "ab", Some(true)),
        ("(?<n>a)", "a", Some(true)),
        ("(?P<é>a)", "a", None),
        ("a|", "", Some(true)),
        ("()", "", Some(true)),
        // `.` and newlines.
        ("a.b", "a\nb", Some(false)),
        ("(?s)a.b", "a\nb", Some(true)),
        ("[^a]", "\n", Some(true)),
        // Unicode classes.
        (r"\p{Greek}", "α", Some(true)),
        (r"\p{^Greek}", "a", Some(true)),
        (r"\P{^Greek}", "α", Some(true)),
        (r"\pL", "α", Some(true)),
        (r"\p{Any}", "x", Some(true)),
        // The wrapper is part of what Go parses.
        ("a)|(b", "axx", Some(true)),
        ("a)|(b", "xxb", Some(true)),
        ("a)|(b", "x", Some(false)),
    ];

    #[test]
    fn agrees_with_go_regexp() {
        for &(p, s, want) in GO {
            let got = Pattern::compile(true, p).ok().map(|c| c.matches(s));
            assert_eq!(got, want, "pattern {p:?} on {s:?}");
        }
    }

    #[test]
    fn rust_default_would_differ_where_we_translate() {
        // The cases above are real differences: Rust's own dialect disagrees on each.
        for (p, s) in [(r"\d", "٣"), (r"\w", "é"), (r"\s", "\u{a0}"), (r"[a[bc]]", "b")] {
            let rust = Regex::new(&format!("^(?:{p})$")).expect("valid in Rust");
            let ours = re(p);
            assert_ne!(rust.is_match(s.as_bytes()), ours.matches(s), "{p} on {s:?}");
        }
    }

    #[test]
    fn finite_languages_become_sets() {
        assert!(matches!(re("A{4}|ID123"), Pattern::Set(ref v) if v == &["AAAA", "ID123"]));
        assert!(matches!(re("(?i)ab"), Pattern::Set(ref v) if v.len() == 4));
        assert!(matches!(re("foo(bar)?"), Pattern::Set(ref v) if v == &["foo", "foobar"]));
        assert!(matches!(re("a|ab"), Pattern::Set(ref v) if v == &["a", "ab"]));
        assert!(matches!(re(""), Pattern::Set(ref v) if v == &[""]));
        assert!(matches!(re("B(B|C)B.|x"), Pattern::Mixed(ref v, _) if v == &["x"]));
        assert!(re("B(B|C)B.|x").matches("BCBz") && re("B(B|C)B.|x").matches("x"));
        assert!(!re("B(B|C)B.|x").matches("xx"));
        assert!(matches!(re("B(B|C)B."), Pattern::Regex(_)));
        assert!(matches!(re("a.*"), Pattern::Regex(_)));
        // An inner assertion keeps the regex: "ab" does not match `a\bb`.
        assert!(matches!(re(r"a\bb"), Pattern::Regex(_)));
        assert!(!re(r"a\bb").matches("ab"));
        assert!(matches!(re("a)|(b"), Pattern::Regex(_)));
        assert!(re("(?i)db1|DB2").matches("Db2"));
    }

    #[test]
    fn splitting_shares_residuals_and_keeps_semantics() {
        let a = split_regex("ID1|B(B|C)B.").expect("valid");
        let b = split_regex("ID2|B(B|C)B.").expect("valid");
        assert_eq!(a.values, ["ID1"]);
        assert_eq!(b.values, ["ID2"]);
        assert_eq!(a.residual, b.residual, "one compiled residual serves both");
        // Flags apply across branches; assertions stay in the residual.
        let c = split_regex(r"(?i)ab|x\by|c.*").expect("valid");
        assert_eq!(c.values.len(), 4);
        let p = re(r"(?i)ab|x\by|c.*");
        for (v, want) in [("aB", true), ("Cz", true), ("xy", false), ("x", false)] {
            assert_eq!(p.matches(v), want, "{v}");
        }
    }

    #[test]
    fn validation_compiles_the_unwrapped_pattern() {
        assert!(check_regex("a)|(b").is_err());
        assert!(check_regex("High.*|Low.*").is_ok());
        assert!(check_regex("(").is_err());
    }

    #[test]
    fn deep_nesting_go_accepts_compiles_without_overflow() {
        // Just under Go's height limit (see re2's tests), in a test thread's small stack.
        let deep = format!("{}a{}", "(".repeat(499), ")*".repeat(499));
        let p = Pattern::compile(true, &deep).expect("Go accepts this");
        assert!(p.matches("aaa") && p.matches(""));
        let deep = format!("{}a|b{}", "(x|".repeat(498), ")".repeat(498));
        let p = Pattern::compile(true, &deep).expect("Go accepts this");
        assert!(p.matches("b") && !p.matches("xb"));
        let deep = format!("{}a{}", "(".repeat(998), ")".repeat(998));
        assert!(Pattern::compile(true, &deep).expect("Go accepts this").matches("a"));
        assert!(
            Pattern::compile(true, &format!("{}a{}", "(".repeat(999), ")".repeat(999))).is_err()
        );
    }

    /// An alternation of `host-NNNNNN` names, `len` bytes long.
    fn names(len: usize) -> String {
        let mut p: String = (0..len / 12).map(|i| format!("host-{i:06}|")).collect();
        p.push_str(&"x".repeat(len - p.len()));
        p
    }

    #[test]
    fn patterns_are_bounded_in_text_and_in_compiled_size() {
        // Text: at the bound it compiles and matches; one byte over, nothing parses it.
        let at_bound = names(MAX_PATTERN_BYTES);
        assert_eq!(at_bound.len(), MAX_PATTERN_BYTES);
        assert!(re(&at_bound).matches("host-000100"));
        let over = names(MAX_PATTERN_BYTES + 1);
        let limit = format!("limit of {MAX_PATTERN_BYTES} bytes");
        for e in [
            Pattern::compile(true, &over).unwrap_err(),
            check_regex(&over).unwrap_err(),
            split_regex(&over).unwrap_err(),
        ] {
            assert!(e.0.contains(&limit), "{e}");
        }
        // An `=` value is text, not a program: no bound here (the silence size limit applies).
        assert!(Pattern::compile(false, &over).is_ok());
        // Short text, large program: Go accepts it, the compiled-size limit refuses it.
        let heavy = r"\pL{1000}";
        assert!(check_regex(heavy).is_ok(), "valid Go syntax");
        let e = Pattern::compile(true, heavy).unwrap_err();
        assert!(e.0.contains(&format!("limit of {MAX_COMPILED_BYTES} bytes")), "{e}");
        assert!(re(r"\pL{10}").matches(&"é".repeat(10)), "a hundredth of it fits");
    }

    #[test]
    fn equal_is_literal() {
        let p = Pattern::compile(false, "a.b").expect("always");
        assert!(p.matches("a.b") && !p.matches("axb"));
        assert_eq!(p.finite_values(), Some(&["a.b".to_owned()][..]));
    }
}
