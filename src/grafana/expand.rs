//! Grafana's variable expansion (`$__env{VAR}`, `$__file{path}`, the `${VAR}` shorthand)
//! and go-ini's `%(key)s` interpolation, each bounded.
//!
//! Expansion is one left-to-right pass: what a variable or file holds is inserted as it is,
//! never expanded again, so a value cannot grow by feeding on itself. An unset variable is
//! empty, as in Grafana; an empty `HOSTNAME` is the host's name, as Grafana does for its
//! default `instance_name = ${HOSTNAME}`. `$__vault{…}` needs Grafana Enterprise and any other
//! provider is unknown: both are errors rather than a value Grafana would not have used.

use std::io::Read;

use super::MAX_VALUE_BYTES;

/// How many rounds of `%(key)s` replacement go-ini makes (`depthValues`).
const MAX_INTERPOLATION_DEPTH: usize = 99;

/// Expand `$__env{…}`, `$__file{…}` and `${…}` in `value`.
pub(super) fn expand(value: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        let (replacement, used) = match variable(tail) {
            Some(Var::Provider { name, arg, len }) => (provider(name, arg, env)?, len),
            Some(Var::Shorthand { name, len }) => (shorthand(name, env), len),
            None => ("$".to_owned(), 1),
        };
        out.push_str(&replacement);
        if out.len() > MAX_VALUE_BYTES {
            return Err(format!("longer than {MAX_VALUE_BYTES} bytes once expanded"));
        }
        rest = &tail[used..];
    }
    out.push_str(rest);
    if out.len() > MAX_VALUE_BYTES {
        return Err(format!("longer than {MAX_VALUE_BYTES} bytes"));
    }
    Ok(out)
}

enum Var<'a> {
    /// `$__name{arg}` (Grafana's pattern `\$__(\w+){(.*?)}`: up to the first `}`).
    Provider { name: &'a str, arg: &'a str, len: usize },
    /// `${NAME}` (`\${(\w+)}`).
    Shorthand { name: &'a str, len: usize },
}

fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The variable `s` (which starts with `$`) opens, if any.
fn variable(s: &str) -> Option<Var<'_>> {
    if let Some(body) = s.strip_prefix("$__") {
        let name_len = body.find(|c: char| !is_word(c)).unwrap_or(body.len());
        let (name, after) = body.split_at(name_len);
        let inner = after.strip_prefix('{')?;
        let end = inner.find('}')?;
        if name.is_empty() {
            return None;
        }
        return Some(Var::Provider { name, arg: &inner[..end], len: 3 + name_len + 1 + end + 1 });
    }
    let inner = s.strip_prefix("${")?;
    let end = inner.find('}')?;
    let name = &inner[..end];
    (!name.is_empty() && name.chars().all(is_word))
        .then_some(Var::Shorthand { name, len: 2 + end + 1 })
}

fn shorthand(name: &str, env: &dyn Fn(&str) -> Option<String>) -> String {
    let value = env(name).unwrap_or_default();
    if name == "HOSTNAME" && value.is_empty() {
        return hostname();
    }
    value
}

fn provider(name: &str, arg: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    match name {
        "env" => Ok(env(arg).unwrap_or_default()),
        "file" => read_file(arg),
        "vault" => Err(format!(
            "$__vault{{{arg}}} needs Grafana Enterprise's Vault integration, which hearsay \
             does not have"
        )),
        other => Err(format!("unknown variable provider $__{other}{{…}} (want env or file)")),
    }
}

/// `$__file{path}`: the file's contents with surrounding whitespace trimmed, as Grafana does.
fn read_file(path: &str) -> Result<String, String> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_VALUE_BYTES as u64 + 1).read_to_end(&mut bytes))
        .map_err(|e| format!("$__file{{{path}}}: {e}"))?;
    if bytes.len() > MAX_VALUE_BYTES {
        return Err(format!("$__file{{{path}}} is larger than {MAX_VALUE_BYTES} bytes"));
    }
    let text = String::from_utf8(bytes).map_err(|_| format!("$__file{{{path}}} is not UTF-8"))?;
    Ok(text.trim().to_owned())
}

/// The kernel's host name (what Go's `os.Hostname` reads on Linux); empty when unknown.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// go-ini's `%(name)s` interpolation: each round replaces every occurrence of the first
/// reference with `lookup(name)`, for at most 99 rounds; a name with no value ends it and
/// leaves the rest as written.
pub(super) fn interpolate(
    value: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let mut value = value.to_owned();
    for _ in 0..MAX_INTERPOLATION_DEPTH {
        let Some(start) = value.find("%(") else { break };
        let Some(len) = value[start + 2..].find(")s") else { break };
        let name = value[start + 2..start + 2 + len].to_owned();
        if name.is_empty() || name.contains(')') {
            break;
        }
        let Some(replacement) = lookup(&name) else { break };
        value = value.replace(&format!("%({name})s"), &replacement);
        if value.len() > MAX_VALUE_BYTES {
            return Err(format!("longer than {MAX_VALUE_BYTES} bytes once interpolated"));
        }
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "POD_IP" => Some("10.1.2.3".into()),
            "EMPTY" => Some(String::new()),
            "LOOP" => Some("${LOOP}".into()),
            _ => None,
        }
    }

    #[test]
    fn grafana_expansions() {
        assert_eq!(expand("${POD_IP}:9094", &env).unwrap(), "10.1.2.3:9094");
        assert_eq!(expand("$__env{POD_IP}:9094", &env).unwrap(), "10.1.2.3:9094");
        assert_eq!(expand("${UNSET}x", &env).unwrap(), "x");
        assert_eq!(expand("${EMPTY}", &env).unwrap(), "");
        // Inserted text is not expanded again.
        assert_eq!(expand("${LOOP}", &env).unwrap(), "${LOOP}");
        // Not variables: left as written.
        for literal in ["$", "a$b", "${not-a-word}", "${", "$__env", "$__{x}", "cost: $5"] {
            assert_eq!(expand(literal, &env).unwrap(), literal);
        }
        assert!(!expand("${HOSTNAME}", &env).unwrap().contains('$'));
    }

    #[test]
    fn providers_hearsay_lacks_are_errors() {
        assert!(expand("$__vault{kv:secret:pw}", &env).unwrap_err().contains("Enterprise"));
        assert!(expand("$__nope{x}", &env).unwrap_err().contains("unknown variable provider"));
    }

    #[test]
    fn file_provider_trims_and_is_bounded() {
        let dir = std::env::temp_dir().join(format!("hearsay-expand-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let small = dir.join("secret");
        std::fs::write(&small, "  s3cret\n").unwrap();
        let value = format!("$__file{{{}}}", small.display());
        assert_eq!(expand(&value, &env).unwrap(), "s3cret");
        let big = dir.join("big");
        std::fs::write(&big, vec![b'x'; MAX_VALUE_BYTES + 1]).unwrap();
        assert!(
            expand(&format!("$__file{{{}}}", big.display()), &env).unwrap_err().contains("larger")
        );
        assert!(expand("$__file{/nonexistent/hearsay}", &env).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn expansion_is_bounded() {
        let long = |_: &str| Some("x".repeat(MAX_VALUE_BYTES / 2 + 1));
        assert!(expand("${A}${B}", &long).unwrap_err().contains("longer"));
    }

    #[test]
    fn interpolation_as_go_ini() {
        let keys = |name: &str| match name {
            "protocol" => Some("http".to_owned()),
            "domain" => Some("localhost".to_owned()),
            "http_port" => Some("3000".to_owned()),
            "self" => Some("%(self)s".to_owned()),
            "double" => Some("%(double)s%(double)s".to_owned()),
            _ => None,
        };
        assert_eq!(
            interpolate("%(protocol)s://%(domain)s:%(http_port)s/", &keys).unwrap(),
            "http://localhost:3000/"
        );
        assert_eq!(interpolate("%(missing)s-%(domain)s", &keys).unwrap(), "%(missing)s-%(domain)s");
        assert_eq!(interpolate("100%", &keys).unwrap(), "100%");
        // A self-reference stops after 99 rounds; a doubling one hits the size bound.
        assert_eq!(interpolate("%(self)s", &keys).unwrap(), "%(self)s");
        assert!(interpolate("%(double)s", &keys).unwrap_err().contains("longer"));
    }
}
