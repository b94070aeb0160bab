//! Grafana's ini files, read as Grafana reads them (go-ini's `ini.Load` with its default
//! options), through the `rust-ini` crate.
//!
//! `rust-ini` parses sections and `key = value` lines; it is told to leave quotes and
//! backslashes alone, because go-ini's rules for them differ, and those rules are applied here
//! to each value hearsay reads ([`go_value`]). Before parsing, one pass over the lines records
//! where every key is (the crate keeps no positions, and an error must name the line), blanks
//! whole-line comments (`;` or `#`, indented or not, as go-ini allows) and refuses what go-ini
//! refuses: a line that is neither a section, a comment nor `key = value`/`key: value`.
//! Blanking keeps every line where it was, so the crate's own errors name the right line too.

use std::collections::HashMap;

/// Largest configuration file read: Grafana's own `defaults.ini` is under 100 KiB.
pub const MAX_FILE_BYTES: usize = 4 << 20;

/// A parsed file, with the line of each key's last occurrence (the one that counts).
#[derive(Debug)]
pub(super) struct IniFile {
    ini: ini::Ini,
    /// `(section, key)` → line (1-based). The section before any header is `None`.
    lines: HashMap<(Option<String>, String), usize>,
}

/// A syntax error: the line (1-based) and what is wrong.
pub(super) type SyntaxError = (usize, String);

impl IniFile {
    /// Parse `text`; a UTF-8 byte-order mark and `\r\n` line ends are accepted.
    pub(super) fn parse(text: &str) -> Result<Self, SyntaxError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut clean = String::with_capacity(text.len());
        let mut lines = HashMap::new();
        let mut section: Option<String> = None;
        let mut continued = false;
        for (i, raw) in text.split('\n').enumerate() {
            let n = i + 1;
            // go-ini trims every line; trailing blanks would also hide a continuation `\`.
            let line = raw.strip_suffix('\r').unwrap_or(raw).trim_end();
            let trimmed = line.trim_start();
            let was_continued = std::mem::replace(&mut continued, false);
            if was_continued {
                continued = line.ends_with('\\');
                clean.push_str(line);
            } else if trimmed.is_empty() || trimmed.starts_with([';', '#']) {
                // A comment: blanked, so the crate never sees it.
            } else if let Some(header) = trimmed.strip_prefix('[') {
                let name = header
                    .rfind(']')
                    .map(|end| header[..end].trim())
                    .ok_or_else(|| (n, format!("section header {trimmed:?} has no closing ]")))?;
                section =
                    Some(name.to_owned()).filter(|s| !s.is_empty() && s.as_str() != "DEFAULT");
                // What follows `]` is a comment to go-ini; the crate gets the bare header.
                clean.push('[');
                clean.push_str(name);
                clean.push(']');
            } else {
                let at = trimmed.find(['=', ':']).ok_or_else(|| {
                    (n, format!("{trimmed:?} is not `key = value` (no = or :), nor a comment"))
                })?;
                let key = trimmed[..at].trim();
                if key.is_empty() {
                    return Err((
                        n,
                        format!("{trimmed:?} has no key before the {}", &trimmed[at..at + 1]),
                    ));
                }
                lines.insert((section.clone(), key.to_owned()), n);
                continued = line.ends_with('\\');
                clean.push_str(line);
            }
            clean.push('\n');
        }
        let options = ini::ParseOption {
            // go-ini's quoting (whole-value quotes, `"""`, backticks) and its lack of escapes
            // are applied by `go_value`.
            enabled_quote: false,
            enabled_escape: false,
            enabled_indented_mutiline_value: false,
            enabled_preserve_key_leading_whitespace: false,
        };
        let ini = ini::Ini::load_from_str_opt(&clean, options)
            .map_err(|e| (e.line, e.msg.to_string()))?;
        Ok(Self { ini, lines })
    }

    /// The value of `key` in `section` (`None`: before any header, or `[DEFAULT]`), its last
    /// occurrence, as go-ini returns it, with its line.
    pub(super) fn get(&self, section: Option<&str>, key: &str) -> Option<(String, usize)> {
        let mut found = None;
        for name in sections(section) {
            for props in self.ini.section_all(name) {
                if let Some(v) = props.get_all(key).last() {
                    found = Some(v);
                }
            }
        }
        let line = self.lines.get(&(section.map(str::to_owned), key.to_owned())).copied();
        Some((go_value(found?), line.unwrap_or(0)))
    }

    /// Every key of `section`, with its line, in no particular order.
    pub(super) fn keys(&self, section: &str) -> Vec<(&str, usize)> {
        self.lines
            .iter()
            .filter(|((s, _), _)| s.as_deref() == Some(section))
            .map(|((_, k), n)| (k.as_str(), *n))
            .collect()
    }
}

/// The crate's names for a go-ini section: the unnamed one is also `[DEFAULT]`.
fn sections(section: Option<&str>) -> Vec<Option<&str>> {
    match section {
        Some(s) => vec![Some(s)],
        None => vec![None, Some("DEFAULT")],
    }
}

/// go-ini's value rules (`readValue`, default options): a value opening with `"""` or a
/// backtick runs to the last matching quote, verbatim; any other value ends at the first `#`
/// or `;` (an inline comment, even without a space before it: Grafana's documentation asks
/// for `"""…"""` around passwords holding either), and then loses one pair of surrounding
/// `"` or `'` when those are its only quotes of that kind.
pub(super) fn go_value(raw: &str) -> String {
    let raw = raw.trim();
    for quote in ["\"\"\"", "`"] {
        if raw.len() > quote.len()
            && raw.starts_with(quote)
            && let Some(end) = raw[quote.len()..].rfind(quote)
        {
            return raw[quote.len()..quote.len() + end].to_owned();
        }
    }
    let value = match raw.find(['#', ';']) {
        Some(at) => raw[..at].trim_end(),
        None => raw,
    };
    for quote in ['"', '\''] {
        if value.len() >= 2
            && value.starts_with(quote)
            && value.ends_with(quote)
            && value.matches(quote).count() == 2
        {
            return value[1..value.len() - 1].to_owned();
        }
    }
    value.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_as_go_ini_reads_them() {
        assert_eq!(go_value(r#""${POD_IP}:9094""#), "${POD_IP}:9094");
        assert_eq!(go_value("'quoted'"), "quoted");
        assert_eq!(go_value(r##""""#pass;word""""##), "#pass;word");
        assert_eq!(go_value("`a;b#c`"), "a;b#c");
        assert_eq!(go_value("15s ; wait this long"), "15s");
        assert_eq!(go_value("pa#ss"), "pa");
        assert_eq!(go_value(r#""a"b""#), r#""a"b""#);
        assert_eq!(go_value(r#""abc"#), r#""abc"#);
        assert_eq!(go_value("  plain value  "), "plain value");
        assert_eq!(go_value(r#""""#), "");
        assert_eq!(go_value(""), "");
    }

    #[test]
    fn sections_keys_lines_and_last_wins() {
        let text = "\u{feff}app_mode = production\r\n; comment\r\n  # indented comment\n\
                    [server] ; trailing\nhttp_port = 3000\n\n[unified_alerting]\n\
                    ha_peers = a:1\nha_peers: b:2\n[server]\nhttp_port = 3001\n";
        let f = IniFile::parse(text).expect("parses");
        assert_eq!(f.get(None, "app_mode"), Some(("production".into(), 1)));
        assert_eq!(f.get(Some("server"), "http_port"), Some(("3001".into(), 11)));
        assert_eq!(f.get(Some("unified_alerting"), "ha_peers"), Some(("b:2".into(), 9)));
        assert_eq!(f.get(Some("unified_alerting"), "nope"), None);
        assert_eq!(f.keys("unified_alerting"), vec![("ha_peers", 9)]);
    }

    #[test]
    fn continuation_lines_join() {
        let f = IniFile::parse("[s]\nk = a,\\\n  b\nnext = 1\n").expect("parses");
        assert_eq!(f.get(Some("s"), "next"), Some(("1".into(), 4)));
        let (v, line) = f.get(Some("s"), "k").expect("k");
        assert_eq!((v.replace(' ', ""), line), ("a,b".into(), 2));
    }

    #[test]
    fn what_go_ini_refuses_names_the_line() {
        assert_eq!(IniFile::parse("[s]\nok = 1\njust words\n").unwrap_err().0, 3);
        assert_eq!(IniFile::parse("[s\n").unwrap_err().0, 1);
        assert_eq!(IniFile::parse("[s]\n = 1\n").unwrap_err().0, 2);
    }
}
