//! Go's regular-expression syntax (RE2, `regexp.Compile` = Perl flags) rewritten into the
//! syntax of Rust's `regex` crate, so that a silence's regex accepts exactly the label values a
//! Go Alertmanager's would.
//!
//! The two engines share RE2's semantics (leftmost-first, no backtracking, no look-around), but
//! their surface syntax and a few class definitions differ. The translator parses the Go
//! pattern with Go's grammar and emits an equivalent Rust pattern in a canonical form
//! (every literal escaped, every group non-capturing, every repeated operand wrapped). What it
//! fixes, checked against Go 1.26's `regexp` (the toolchain of Alertmanager HEAD):
//!
//! | Go | Rust `regex` by default | emitted |
//! |---|---|---|
//! | `\d` `\w` `\s` are ASCII; `\s` is `[\t\n\f\r ]` (no `\v`) | Unicode classes | explicit ASCII classes |
//! | `\b` `\B` are ASCII word boundaries | Unicode | `(?-u:\b)`, `(?-u:\B)` (hence a bytes regex) |
//! | `[` inside a class is a literal; `&&` `--` `~~` are literals | nested classes, set operations | every class member escaped |
//! | `\Q…\E` quotes literally | unsupported | escaped literals |
//! | octal `\0`, `\012`, `\101` | disabled | escaped literals |
//! | `{` not forming a repeat (`a{,2}`, `x{01}`) is a literal | error | `\{` |
//! | `\<` `\>` `\_` are escaped punctuation | `\<` `\>` are word assertions | escaped literals |
//! | rejects `\Z`, `\e`, `\C`, `(?x)`, `(?u)`, `(?R)`, look-around | accepts the flags | rejected |
//! | rejects `a**`, `a{2}{3}`, counts > 1000, nested counts multiplying past 1000 | accepts | rejected |
//! | `(?)`, `(?ii)`, `(?i-i)` accepted | error on empty/duplicate flags | canonical flag groups |
//! | expression tree height ≤ 1000 | nesting ≤ 250 by default | Rust limit raised; Go's height approximated here |
//!
//! Known remaining differences (pathological, documented rather than handled): Go's tree height
//! is computed after its simplifications (literal runs become one node, `a|b` a class), which
//! are not reproduced, so within a few levels of the 1000 limit a pattern Go accepts can be
//! rejected here (never the reverse: heights here are at least Go's); Rust accepts
//! Unicode property names Go does not (`\p{Alphabetic}`, `\p{Emoji}`), the two Unicode table
//! versions may disagree on newly assigned characters, Go's program-size limit ("expression
//! too large") is not reproduced (Rust's own size limit applies instead), and a flag-only group
//! directly before a repetition operator (`a(?i)*`) is rejected here while Go repeats `a`.

use std::fmt::Write as _;

/// Go's limit on `{n,m}` counts and on nested counts multiplied together (`regexp/syntax`).
const MAX_REPEAT: u32 = 1000;
/// Go's limit on the height of the parsed expression tree (`maxHeight`).
pub(super) const MAX_HEIGHT: u32 = 1000;

/// Why a pattern is not a valid Go regular expression; the text follows Go's messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(super) struct SyntaxError(pub(super) String);

fn err<T>(msg: impl Into<String>) -> Result<T, SyntaxError> {
    Err(SyntaxError(msg.into()))
}

/// Translate a Go regular expression into an equivalent Rust `regex` pattern (to be compiled
/// as a `regex::bytes::Regex` with Unicode on).
pub(super) fn translate(go: &str) -> Result<String, SyntaxError> {
    let mut t = Translator { s: go.chars().collect(), at: 0, out: String::new(), frames: vec![] };
    t.frames.push(Frame::new(0, false));
    t.run()?;
    Ok(t.out)
}

/// One open group: where its operand tracking stands.
#[derive(Debug, Clone, Copy)]
struct Frame {
    /// Output position where the group's text began (its opening token).
    start: usize,
    /// Whether Go makes a node of it (a capture) or not (`(?:`, `(?i:`).
    capture: bool,
    /// Output position of the last complete operand, if the next repetition has one.
    last: Option<usize>,
    /// Whether the last operand is already a repetition (Go rejects `a**`).
    repeated: bool,
    /// Largest product of nested `{n,m}` counts along any path of the last operand.
    last_factor: u32,
    /// Largest such product anywhere in the group so far.
    max_factor: u32,
    /// Go tree height of the last operand, of the other operands of this branch, the number
    /// of operands in this branch, the highest finished branch, and the branch count.
    last_height: u32,
    items_height: u32,
    items: u32,
    branches_height: u32,
    branches: u32,
}

impl Frame {
    fn new(start: usize, capture: bool) -> Self {
        Self {
            start,
            capture,
            last: None,
            repeated: false,
            last_factor: 1,
            max_factor: 1,
            last_height: 0,
            items_height: 0,
            items: 0,
            branches_height: 0,
            branches: 0,
        }
    }

    /// Close the current branch (at `|` or the end of the group).
    fn end_branch(&mut self) {
        let top = self.items_height.max(self.last_height);
        // An empty branch is Go's empty-match node; a concatenation adds a level.
        let h = match self.items {
            0 => 1,
            1 => top,
            _ => top + 1,
        };
        self.branches_height = self.branches_height.max(h);
        self.branches += 1;
        self.items = 0;
        self.items_height = 0;
        self.last_height = 0;
        self.last = None;
        self.repeated = false;
    }

    /// Height of the finished group's content, plus its own node if it is a capture.
    fn height(&self) -> u32 {
        let alternation = u32::from(self.branches > 1);
        self.branches_height + alternation + u32::from(self.capture)
    }
}

struct Translator {
    s: Vec<char>,
    at: usize,
    out: String,
    frames: Vec<Frame>,
}

impl Translator {
    fn peek(&self) -> Option<char> {
        self.s.get(self.at).copied()
    }

    fn peek_at(&self, k: usize) -> Option<char> {
        self.s.get(self.at + k).copied()
    }

    fn frame(&mut self) -> &mut Frame {
        // Invariant: the outermost frame is pushed in `translate` and never popped.
        self.frames.last_mut().expect("outer frame")
    }

    /// Record that an operand starting at output position `start` is complete.
    fn operand(&mut self, start: usize, factor: u32, height: u32) {
        let f = self.frame();
        f.items_height = f.items_height.max(f.last_height);
        f.items += 1;
        f.last_height = height;
        f.last = Some(start);
        f.repeated = false;
        f.last_factor = factor;
        f.max_factor = f.max_factor.max(factor);
    }

    fn run(&mut self) -> Result<(), SyntaxError> {
        while let Some(c) = self.peek() {
            self.at += 1;
            match c {
                '(' => self.open_group()?,
                ')' => self.close_group()?,
                '|' => {
                    self.out.push('|');
                    self.frame().end_branch();
                }
                '*' | '+' | '?' => self.simple_repeat(c)?,
                '{' => self.brace()?,
                '^' | '$' | '.' => {
                    let start = self.out.len();
                    self.out.push(c);
                    self.operand(start, 1, 1);
                }
                '[' => {
                    let start = self.out.len();
                    self.class()?;
                    self.operand(start, 1, 1);
                }
                '\\' => self.escape()?,
                _ => {
                    let start = self.out.len();
                    push_literal(&mut self.out, u32::from(c));
                    self.operand(start, 1, 1);
                }
            }
        }
        if self.frames.len() > 1 {
            return err("missing closing )");
        }
        let f = self.frame();
        f.end_branch();
        if f.height() > MAX_HEIGHT {
            return err("expression nests too deeply");
        }
        Ok(())
    }

    fn open_group(&mut self) -> Result<(), SyntaxError> {
        if self.peek() != Some('?') {
            return self.push_group("(?:", true);
        }
        self.at += 1;
        let named = match (self.peek(), self.peek_at(1)) {
            (Some('P'), Some('<')) => Some(2),
            (Some('<'), Some(c)) if c != '=' && c != '!' => Some(1),
            _ => None,
        };
        if let Some(skip) = named {
            self.at += skip;
            let mut name = String::new();
            loop {
                match self.peek() {
                    None => return err("invalid named capture"),
                    Some('>') => break,
                    Some(c) => name.push(c),
                }
                self.at += 1;
            }
            self.at += 1;
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return err(format!("invalid named capture: `(?P<{name}>`"));
            }
            return self.push_group("(?:", true);
        }
        self.flags()
    }

    /// `(?flags)` or `(?flags:`, Go's letters `i m s U` with at most one `-`.
    fn flags(&mut self) -> Result<(), SyntaxError> {
        let mut on = String::new();
        let mut off = String::new();
        let mut negated = false;
        let mut since_minus = 0;
        loop {
            let Some(c) = self.peek() else { return err("missing closing )") };
            self.at += 1;
            match c {
                'i' | 'm' | 's' | 'U' => {
                    let (add, remove) =
                        if negated { (&mut off, &mut on) } else { (&mut on, &mut off) };
                    remove.retain(|x| x != c);
                    if !add.contains(c) {
                        add.push(c);
                    }
                    since_minus += 1;
                }
                '-' if !negated => {
                    negated = true;
                    since_minus = 0;
                }
                ':' | ')' => {
                    if negated && since_minus == 0 {
                        return err("invalid or unsupported Perl syntax");
                    }
                    let mut text = String::from("(?");
                    text.push_str(&on);
                    if !off.is_empty() {
                        text.push('-');
                        text.push_str(&off);
                    }
                    if c == ':' {
                        text.push(':');
                        return self.push_group(&text, false);
                    }
                    if text.len() > 2 {
                        text.push(')');
                        self.out.push_str(&text);
                    }
                    // A flag group is not an operand: `(?i)*` has nothing to repeat.
                    let f = self.frame();
                    f.last = None;
                    f.repeated = false;
                    return Ok(());
                }
                _ => return err("invalid or unsupported Perl syntax"),
            }
        }
    }

    fn push_group(&mut self, open: &str, capture: bool) -> Result<(), SyntaxError> {
        if self.frames.len() > MAX_HEIGHT as usize {
            return err("expression nests too deeply");
        }
        let start = self.out.len();
        self.out.push_str(open);
        self.frames.push(Frame::new(start, capture));
        Ok(())
    }

    fn close_group(&mut self) -> Result<(), SyntaxError> {
        if self.frames.len() == 1 {
            return err("unexpected )");
        }
        let mut done = self.frames.pop().expect("checked above");
        done.end_branch();
        let height = done.height();
        if height > MAX_HEIGHT {
            return err("expression nests too deeply");
        }
        self.out.push(')');
        self.operand(done.start, done.max_factor, height);
        Ok(())
    }

    /// Append a repetition operator to the last operand, after the checks Go's parser
    /// makes. Every operand this translator emits is a single Rust atom (a character, an
    /// escape, a class, a group), so none needs wrapping.
    fn repeat(&mut self, op: &str, factor: u32) -> Result<(), SyntaxError> {
        let f = *self.frame();
        if f.last.is_none() {
            return err(format!("missing argument to repetition operator: `{op}`"));
        }
        if f.repeated {
            return err(format!("invalid nested repetition operator: `{op}`"));
        }
        self.out.push_str(op);
        if self.peek() == Some('?') {
            self.at += 1;
            self.out.push('?');
        }
        let f = self.frame();
        f.repeated = true;
        f.last_height += 1;
        f.last_factor = factor;
        f.max_factor = f.max_factor.max(factor);
        Ok(())
    }

    fn simple_repeat(&mut self, op: char) -> Result<(), SyntaxError> {
        let inner = self.frame().last_factor;
        self.repeat(&op.to_string(), inner)
    }

    /// `{n}`, `{n,}` or `{n,m}`; anything else is a literal `{`, as in Go.
    fn brace(&mut self) -> Result<(), SyntaxError> {
        let Some((min, max, len)) = parse_repeat(&self.s[self.at..]) else {
            let start = self.out.len();
            self.out.push_str("\\{");
            self.operand(start, 1, 1);
            return Ok(());
        };
        let text: String = self.s[self.at - 1..self.at + len].iter().collect();
        self.at += len;
        if min > MAX_REPEAT || max.is_some_and(|m| m > MAX_REPEAT || m < min) {
            return err(format!("invalid repeat count: `{text}`"));
        }
        let inner = self.frame().last_factor;
        let factor = match max {
            Some(0) => 1,
            Some(m) => m.saturating_mul(inner),
            None if min == 0 => inner,
            None => min.saturating_mul(inner),
        };
        if (min >= 2 || max.is_some_and(|m| m >= 2)) && factor > MAX_REPEAT {
            return err(format!("invalid repeat count: `{text}`"));
        }
        let op = match max {
            Some(m) if m == min => format!("{{{min}}}"),
            Some(m) => format!("{{{min},{m}}}"),
            None => format!("{{{min},}}"),
        };
        self.repeat(&op, factor)
    }

    fn escape(&mut self) -> Result<(), SyntaxError> {
        let Some(c) = self.peek() else { return err("trailing backslash at end of expression") };
        let start = self.out.len();
        match c {
            'A' | 'z' => {
                self.at += 1;
                self.out.push('\\');
                self.out.push(c);
            }
            'b' | 'B' => {
                self.at += 1;
                let _ = write!(self.out, "(?-u:\\{c})");
            }
            'Q' => {
                self.at += 1;
                return self.quoted();
            }
            'p' | 'P' => {
                self.at += 1;
                let class = self.unicode_class(c == 'P')?;
                self.out.push_str(&class);
            }
            'd' | 'D' | 's' | 'S' | 'w' | 'W' => {
                self.at += 1;
                self.out.push_str(&perl_class(c, true));
            }
            _ => {
                let v = self.escaped_char()?;
                push_literal(&mut self.out, v);
            }
        }
        self.operand(start, 1, 1);
        Ok(())
    }

    /// `\Q…\E`: everything up to `\E` (or the end) is literal, one operand per character so a
    /// following repetition applies to the last one, as in Go.
    fn quoted(&mut self) -> Result<(), SyntaxError> {
        while let Some(c) = self.peek() {
            if c == '\\' && self.peek_at(1) == Some('E') {
                self.at += 2;
                return Ok(());
            }
            self.at += 1;
            let start = self.out.len();
            push_literal(&mut self.out, u32::from(c));
            self.operand(start, 1, 1);
        }
        Ok(())
    }

    /// After `\p` / `\P`: a one-letter name or `{Name}` / `{^Name}`.
    fn unicode_class(&mut self, negated: bool) -> Result<String, SyntaxError> {
        let Some(c) = self.peek() else { return err("invalid character class range") };
        self.at += 1;
        let mut name = String::new();
        if c == '{' {
            loop {
                match self.peek() {
                    None => return err("invalid character class range"),
                    Some('}') => break,
                    Some(x) => name.push(x),
                }
                self.at += 1;
            }
            self.at += 1;
        } else {
            name.push(c);
        }
        let mut negated = negated;
        if let Some(rest) = name.strip_prefix('^') {
            negated = !negated;
            name = rest.to_owned();
        }
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return err(format!("invalid character class range: `\\p{{{name}}}`"));
        }
        Ok(format!("\\{}{{{name}}}", if negated { 'P' } else { 'p' }))
    }

    /// A single-character escape (after the backslash), Go's `parseEscape`.
    fn escaped_char(&mut self) -> Result<u32, SyntaxError> {
        let Some(c) = self.peek() else { return err("trailing backslash at end of expression") };
        self.at += 1;
        let invalid = |c: char| err(format!("invalid escape sequence: `\\{c}`"));
        match c {
            '1'..='7' if !matches!(self.peek(), Some('0'..='7')) => invalid(c),
            '0'..='7' => {
                let mut v = c.to_digit(8).unwrap_or(0);
                for _ in 0..2 {
                    match self.peek().and_then(|d| d.to_digit(8)) {
                        Some(d) => {
                            v = v * 8 + d;
                            self.at += 1;
                        }
                        None => break,
                    }
                }
                Ok(v)
            }
            'x' => self.hex(),
            'a' => Ok(7),
            'f' => Ok(0x0c),
            'n' => Ok(0x0a),
            'r' => Ok(0x0d),
            't' => Ok(0x09),
            'v' => Ok(0x0b),
            c if c.is_ascii() && !c.is_ascii_alphanumeric() => Ok(u32::from(c)),
            c => invalid(c),
        }
    }

    fn hex(&mut self) -> Result<u32, SyntaxError> {
        let bad = || err("invalid escape sequence: `\\x`");
        if self.peek() == Some('{') {
            self.at += 1;
            let mut v: u32 = 0;
            let mut digits = 0;
            loop {
                let Some(c) = self.peek() else { return bad() };
                self.at += 1;
                if c == '}' {
                    break;
                }
                let Some(d) = c.to_digit(16) else { return bad() };
                v = v.saturating_mul(16).saturating_add(d);
                digits += 1;
            }
            if digits == 0 || v > 0x10_ffff {
                return bad();
            }
            return Ok(v);
        }
        let hi = self.peek().and_then(|c| c.to_digit(16));
        let lo = self.peek_at(1).and_then(|c| c.to_digit(16));
        match (hi, lo) {
            (Some(h), Some(l)) => {
                self.at += 2;
                Ok(h * 16 + l)
            }
            _ => bad(),
        }
    }

    /// A bracket class (after `[`), with Go's rules: `]` first is literal, `[` is literal unless
    /// it opens `[:name:]`, `-` is a range only between two characters.
    fn class(&mut self) -> Result<(), SyntaxError> {
        let mut items = String::new();
        let negated = self.peek() == Some('^');
        if negated {
            self.at += 1;
        }
        let mut first = true;
        loop {
            let Some(c) = self.peek() else { return err("missing closing ]") };
            if c == ']' && !first {
                self.at += 1;
                break;
            }
            first = false;
            if c == '[' && self.peek_at(1) == Some(':') && self.posix(&mut items)? {
                continue;
            }
            if c == '\\' {
                match self.peek_at(1) {
                    Some(p @ ('p' | 'P')) => {
                        self.at += 2;
                        let class = self.unicode_class(p == 'P')?;
                        items.push_str(&class);
                        continue;
                    }
                    Some(p @ ('d' | 'D' | 's' | 'S' | 'w' | 'W')) => {
                        self.at += 2;
                        items.push_str(&perl_class(p, false));
                        continue;
                    }
                    _ => {}
                }
            }
            let lo = self.class_char()?;
            if self.peek() == Some('-') && self.peek_at(1).is_some_and(|n| n != ']') {
                self.at += 1;
                let hi = self.class_char()?;
                if hi < lo {
                    return err("invalid character class range");
                }
                push_range(&mut items, lo, hi);
            } else {
                push_range(&mut items, lo, lo);
            }
        }
        self.out.push('[');
        if negated {
            self.out.push('^');
        }
        if items.is_empty() {
            // Only surrogate code points were named: a class that matches nothing.
            items.push_str(NOTHING);
        }
        self.out.push_str(&items);
        self.out.push(']');
        Ok(())
    }

    /// `[:name:]` inside a class. Returns false (and consumes nothing) when there is no `:]`,
    /// in which case the `[` is an ordinary member.
    fn posix(&mut self, items: &mut String) -> Result<bool, SyntaxError> {
        let rest = &self.s[self.at + 2..];
        let Some(end) = rest.windows(2).position(|w| w == [':', ']']) else { return Ok(false) };
        let name: String = rest[..end].iter().collect();
        let bare = name.strip_prefix('^').unwrap_or(&name);
        const NAMES: [&str; 14] = [
            "alnum", "alpha", "ascii", "blank", "cntrl", "digit", "graph", "lower", "print",
            "punct", "space", "upper", "word", "xdigit",
        ];
        if !NAMES.contains(&bare) {
            return err(format!("invalid character class range: `[:{name}:]`"));
        }
        let _ = write!(items, "[:{name}:]");
        self.at += 2 + end + 2;
        Ok(true)
    }

    fn class_char(&mut self) -> Result<u32, SyntaxError> {
        let Some(c) = self.peek() else { return err("missing closing ]") };
        if c == '\\' {
            self.at += 1;
            return self.escaped_char();
        }
        self.at += 1;
        Ok(u32::from(c))
    }
}

/// A class that matches no character.
const NOTHING: &str = "[^\\x{0}-\\x{10FFFF}]";

/// Go's Perl classes are ASCII; Go's `\s` omits `\v`. Inside a bracket class a negated one
/// becomes a nested negated class (Rust unions nested classes).
fn perl_class(c: char, standalone: bool) -> String {
    let body = match c.to_ascii_lowercase() {
        'd' => "0-9",
        's' => "\\t\\n\\x{c}\\r ",
        _ => "0-9A-Za-z_",
    };
    match (c.is_ascii_uppercase(), standalone) {
        (false, true) => format!("[{body}]"),
        (false, false) => body.to_owned(),
        (true, _) => format!("[^{body}]"),
    }
}

/// Append one character escaped, or a never-matching class for a surrogate code point (Go
/// accepts `\x{D800}`; no valid UTF-8 label value contains one).
fn push_literal(out: &mut String, v: u32) {
    match char::from_u32(v) {
        Some(c) if c.is_ascii_alphanumeric() => out.push(c),
        Some(_) => {
            let _ = write!(out, "\\x{{{v:X}}}");
        }
        None => out.push_str(NOTHING),
    }
}

/// Append a class range, trimmed of surrogates (which never occur in a `&str`).
fn push_range(items: &mut String, lo: u32, hi: u32) {
    let mut ranges = [(lo, hi.min(0xd7ff)), (lo.max(0xe000), hi)];
    for (a, b) in &mut ranges {
        if a <= b {
            if a == b {
                let _ = write!(items, "\\x{{{a:X}}}");
            } else {
                let _ = write!(items, "\\x{{{a:X}}}-\\x{{{b:X}}}");
            }
        }
    }
}

/// Parse `n}`, `n,}` or `n,m}` (after the `{`) with Go's integer rules: digits only, no
/// leading zero unless the number is `0`. Returns (min, max, characters consumed).
fn parse_repeat(s: &[char]) -> Option<(u32, Option<u32>, usize)> {
    fn int(s: &[char], at: &mut usize) -> Option<u32> {
        let start = *at;
        while s.get(*at).is_some_and(char::is_ascii_digit) {
            *at += 1;
        }
        let digits = &s[start..*at];
        if digits.is_empty() || (digits.len() > 1 && digits[0] == '0') {
            return None;
        }
        if digits.len() > 8 {
            // Go turns absurdly long counts into an invalid count rather than a literal.
            return Some(u32::MAX);
        }
        Some(digits.iter().fold(0, |v, d| v * 10 + d.to_digit(10).unwrap_or(0)))
    }
    let mut at = 0;
    let min = int(s, &mut at)?;
    let max = match s.get(at)? {
        '}' => Some(min),
        ',' => {
            at += 1;
            if s.get(at) == Some(&'}') { None } else { Some(int(s, &mut at)?) }
        }
        _ => return None,
    };
    if s.get(at) != Some(&'}') {
        return None;
    }
    Some((min, max, at + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_forms() {
        assert_eq!(translate("a.b").as_deref(), Ok("a.b"));
        assert_eq!(translate(r"\d+").as_deref(), Ok("[0-9]+"));
        assert_eq!(translate("(a|b)*?").as_deref(), Ok("(?:a|b)*?"));
        assert_eq!(translate("(?ii-s:x)").as_deref(), Ok("(?i-s:x)"));
        assert_eq!(translate("(?)x").as_deref(), Ok("x"));
        assert_eq!(translate("a{,2}").as_deref(), Ok(r"a\{\x{2C}2\x{7D}"));
        assert_eq!(translate("x{2,}").as_deref(), Ok("x{2,}"));
    }

    #[test]
    fn go_rejections() {
        for p in [
            r"\Z",
            r"\e",
            r"\C",
            r"\1",
            r"\8",
            r"\x4",
            "(?x)a",
            "(?u)a",
            "(?R)a",
            "(?=a)",
            "(?!a)",
            "(?<=a)",
            "(?i-)a",
            "(?-)a",
            "a**",
            "a*??",
            "a{2}{3}",
            "a{2}*",
            "*a",
            "(*)",
            "a|*",
            "a{1001}",
            "(a{500}){3}",
            "x{2,1}",
            "[a--b]",
            "[z-a]",
            "[]",
            "[[:foo:]]",
            "[[:alpha:]",
            "(?P<é>a)",
            "(a",
            "a)",
            r"[a-\d]",
            r"\x{110000}",
            "(?P=n)",
        ] {
            assert!(translate(p).is_err(), "{p} should be rejected");
        }
        assert!(translate(&"(".repeat(1001)).is_err());
        assert!(translate(&format!("{}{}", "(".repeat(999), ")".repeat(999))).is_ok());
    }

    /// Go 1.26 on `^(?:p)$`: n nested groups pass up to 998 (plain), 499 when each is also
    /// starred or an alternation.
    #[test]
    fn tree_height_limit_like_go() {
        let wrap = |p: String| translate(&format!("^(?:{p})$"));
        let plain = |n| wrap(format!("{}a{}", "(".repeat(n), ")".repeat(n)));
        let star = |n| wrap(format!("{}a{}", "(".repeat(n), ")*".repeat(n)));
        let alt = |n| wrap(format!("{}a|b{}", "(x|".repeat(n), ")".repeat(n)));
        assert!(plain(998).is_ok() && plain(999).is_err());
        assert!(star(499).is_ok() && star(500).is_err());
        assert!(alt(498).is_ok() && alt(500).is_err());
    }

    #[test]
    fn nested_counts_multiply_like_go() {
        assert!(translate("(a{2}){500}").is_ok());
        assert!(translate("(a{3}){333}").is_ok());
        assert!(translate("(a{3}){334}").is_err());
        assert!(translate("(a{1000}){0}").is_ok());
        assert!(translate("(a{1000})*").is_ok());
        assert!(translate("(a{10}|b){101}").is_err());
    }
}
