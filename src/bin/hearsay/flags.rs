//! Command-line flags, named as Alertmanager names them so a hearsay node drops into the same
//! deployment manifests (`--flag=value` and `--flag value` both work, as with kingpin).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use hearsay::core::wire::SecretKey;

/// Parsed flags with Alertmanager's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Flags {
    pub(crate) listen: SocketAddr,
    pub(crate) advertise: Option<SocketAddr>,
    pub(crate) peers: Vec<String>,
    pub(crate) peer_name: Option<String>,
    pub(crate) peer_timeout: Duration,
    pub(crate) gossip_interval: Duration,
    pub(crate) pushpull_interval: Duration,
    pub(crate) probe_interval: Duration,
    pub(crate) probe_timeout: Duration,
    pub(crate) tcp_timeout: Duration,
    pub(crate) settle_timeout: Duration,
    pub(crate) reconnect_interval: Duration,
    pub(crate) reconnect_timeout: Duration,
    pub(crate) label: String,
    /// hearsay's own (Alertmanager has no key flag): base64 AES keys, one a line, first the
    /// primary; see [`secret_keys`].
    pub(crate) secret_key_file: Option<PathBuf>,
    /// `--cluster.tls-config`: Alertmanager's TLS transport settings file.
    pub(crate) tls_config: Option<PathBuf>,
    pub(crate) web_listen: SocketAddr,
    /// `--web.max-connections` (as Prometheus names it): HTTP connections held at once.
    pub(crate) web_max_connections: usize,
    pub(crate) storage: PathBuf,
    pub(crate) retention: Duration,
    pub(crate) maintenance_interval: Duration,
}

impl Default for Flags {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:9094".parse().expect("literal"),
            advertise: None,
            peers: Vec::new(),
            peer_name: None,
            peer_timeout: Duration::from_secs(15),
            gossip_interval: Duration::from_millis(200),
            pushpull_interval: Duration::from_secs(60),
            probe_interval: Duration::from_secs(1),
            probe_timeout: Duration::from_millis(500),
            tcp_timeout: Duration::from_secs(10),
            settle_timeout: Duration::from_secs(60),
            reconnect_interval: Duration::from_secs(10),
            reconnect_timeout: Duration::from_secs(6 * 3600),
            label: String::new(),
            secret_key_file: None,
            tls_config: None,
            web_listen: "0.0.0.0:9093".parse().expect("literal"),
            web_max_connections: 256,
            storage: PathBuf::from("data/"),
            retention: Duration::from_secs(120 * 3600),
            maintenance_interval: Duration::from_secs(15 * 60),
        }
    }
}

pub(crate) const USAGE: &str =
    "usage: hearsay [--cluster.listen-address=HOST:PORT] [--cluster.advertise-address=HOST:PORT]
  [--cluster.peer=HOST:PORT ...] [--cluster.peer-name=NAME] [--cluster.peer-timeout=15s]
  [--cluster.gossip-interval=200ms] [--cluster.pushpull-interval=1m] [--cluster.probe-interval=1s]
  [--cluster.probe-timeout=500ms] [--cluster.tcp-timeout=10s] [--cluster.settle-timeout=1m]
  [--cluster.reconnect-interval=10s] [--cluster.reconnect-timeout=6h] [--cluster.label=LABEL]
  [--cluster.secret-key-file=PATH] [--cluster.tls-config=FILE] [--web.listen-address=:9093]
  [--web.max-connections=256] [--storage.path=data/] [--data.retention=120h]
  [--data.maintenance-interval=15m]";

/// Parse `args` (without the program name).
pub(crate) fn parse(args: impl IntoIterator<Item = String>) -> Result<Flags, String> {
    let mut f = Flags::default();
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
            None => (arg.clone(), None),
        };
        let mut value =
            || inline.clone().or_else(|| it.next()).ok_or(format!("{name} needs a value"));
        let name = name.trim_start_matches('-');
        match name {
            "cluster.listen-address" => f.listen = addr(&value()?)?,
            "cluster.advertise-address" => f.advertise = Some(addr(&value()?)?),
            "cluster.peer" => f.peers.push(value()?),
            "cluster.peer-name" => f.peer_name = Some(value()?).filter(|s| !s.is_empty()),
            "cluster.peer-timeout" => f.peer_timeout = duration(&value()?)?,
            "cluster.gossip-interval" => f.gossip_interval = duration(&value()?)?,
            "cluster.pushpull-interval" => f.pushpull_interval = duration(&value()?)?,
            "cluster.probe-interval" => f.probe_interval = duration(&value()?)?,
            "cluster.probe-timeout" => f.probe_timeout = duration(&value()?)?,
            "cluster.tcp-timeout" => f.tcp_timeout = duration(&value()?)?,
            "cluster.settle-timeout" => f.settle_timeout = duration(&value()?)?,
            "cluster.reconnect-interval" => f.reconnect_interval = duration(&value()?)?,
            "cluster.reconnect-timeout" => f.reconnect_timeout = duration(&value()?)?,
            "cluster.label" => f.label = value()?,
            "cluster.secret-key-file" => f.secret_key_file = Some(PathBuf::from(value()?)),
            // Empty is Alertmanager's default: no TLS transport.
            "cluster.tls-config" => {
                f.tls_config = Some(PathBuf::from(value()?)).filter(|p| !p.as_os_str().is_empty())
            }
            "web.listen-address" => f.web_listen = addr(&value()?)?,
            "web.max-connections" => {
                let v = value()?;
                f.web_max_connections =
                    v.parse().ok().filter(|n| (1..=65_536).contains(n)).ok_or_else(|| {
                        format!("--web.max-connections: {v:?} is not in 1..=65536")
                    })?;
            }
            "storage.path" => f.storage = PathBuf::from(value()?),
            "data.retention" => f.retention = duration(&value()?)?,
            "data.maintenance-interval" => f.maintenance_interval = duration(&value()?)?,
            "help" | "h" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown flag --{other}\n{USAGE}")),
        }
    }
    Ok(f)
}

/// `host:port`; an empty host (`:9093`) means every interface, as in Go.
fn addr(s: &str) -> Result<SocketAddr, String> {
    let full = if s.starts_with(':') { format!("0.0.0.0{s}") } else { s.to_owned() };
    full.parse().map_err(|_| format!("{s:?} is not an IP:port address"))
}

/// A Go duration (`200ms`, `1m0s`, `120h`), via humantime.
fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("bad duration {s:?}: {e}"))
}

/// The keys in a `--cluster.secret-key-file`: one standard base64 key (16, 24 or 32 bytes)
/// a line, the first the primary that encrypts, as memberlist's `Keyring`; blank lines and
/// lines starting with `#` are skipped. At least one key is required.
pub(crate) fn secret_keys(text: &str) -> Result<Vec<SecretKey>, String> {
    let mut keys = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bytes = base64(line).ok_or(format!("line {}: not base64", n + 1))?;
        keys.push(SecretKey::new(bytes).map_err(|e| format!("line {}: {e}", n + 1))?);
    }
    if keys.is_empty() {
        return Err("no key in the file".into());
    }
    Ok(keys)
}

/// Standard base64 (RFC 4648, `=` padding optional); `None` on any other character.
fn base64(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.trim_end_matches('=').bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            // The low 8 bits of the accumulator above `bits`: one whole byte.
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn defaults_are_alertmanagers() {
        let f = parse(Vec::new()).expect("no flags");
        assert_eq!(f.listen.to_string(), "0.0.0.0:9094");
        assert_eq!(f.web_listen.to_string(), "0.0.0.0:9093");
        assert_eq!(f.pushpull_interval, Duration::from_secs(60));
        assert_eq!(f.retention, Duration::from_secs(120 * 3600));
    }

    #[test]
    fn both_flag_forms_and_repeats() {
        let f = parse(args(&[
            "--cluster.peer=10.0.0.1:9094",
            "--cluster.peer",
            "am-1.am:9094",
            "--cluster.gossip-interval",
            "1m0s",
            "--web.listen-address=:9095",
            "--cluster.label=prod",
            "--cluster.tls-config",
            "tls.yml",
        ]))
        .expect("valid");
        assert_eq!(f.peers, vec!["10.0.0.1:9094", "am-1.am:9094"]);
        assert_eq!(f.gossip_interval, Duration::from_secs(60));
        assert_eq!(f.web_listen.port(), 9095);
        assert_eq!(f.label, "prod");
        assert_eq!(f.tls_config.as_deref(), Some(std::path::Path::new("tls.yml")));
    }

    #[test]
    fn bad_flags_are_clear_errors() {
        assert!(parse(args(&["--nope"])).unwrap_err().contains("unknown flag --nope"));
        assert!(parse(args(&["--data.retention=forever"])).unwrap_err().contains("bad duration"));
        assert!(parse(args(&["--cluster.peer"])).unwrap_err().contains("needs a value"));
    }

    #[test]
    fn secret_key_files() {
        // "0123456789abcdef" and 32 bytes of 0xff, with a comment and a blank line.
        let text = "# primary first\nMDEyMzQ1Njc4OWFiY2RlZg==\n\n//////////////////////////////////////////8=\n";
        let keys = secret_keys(text).expect("two keys");
        assert_eq!(keys[0].as_bytes(), b"0123456789abcdef");
        assert_eq!(keys[1].as_bytes(), [0xff; 32]);
        assert!(secret_keys("").is_err());
        assert!(secret_keys("MDEy\n").expect_err("3 bytes").contains("line 1"));
        assert!(secret_keys("not base64!").is_err());
        let f = parse(args(&["--cluster.secret-key-file=/etc/keys"])).expect("parses");
        assert_eq!(f.secret_key_file, Some(PathBuf::from("/etc/keys")));
    }
}
