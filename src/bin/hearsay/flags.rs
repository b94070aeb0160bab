//! Command-line flags, named as Alertmanager names them so a hearsay node drops into the same
//! deployment manifests (`--flag=value` and `--flag value` both work, as with kingpin).
//!
//! `--config.file=grafana.ini` reads Grafana's `[unified_alerting]` section instead
//! ([`hearsay::grafana`]): its keys set the flags they mirror, and flags given beside it
//! override the file's values, wherever they stand on the command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use hearsay::core::wire::SecretKey;
use hearsay::grafana::UnifiedAlerting;

/// Parsed flags with Alertmanager's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Flags {
    pub(crate) listen: SocketAddr,
    pub(crate) advertise: Option<SocketAddr>,
    pub(crate) peers: Vec<String>,
    pub(crate) peer_name: Option<String>,
    /// Read for the host; the node itself does not wait (kept for Alertmanager's flag set).
    #[allow(dead_code)]
    pub(crate) peer_timeout: Duration,
    pub(crate) gossip_interval: Duration,
    pub(crate) pushpull_interval: Duration,
    pub(crate) probe_interval: Duration,
    pub(crate) probe_timeout: Duration,
    pub(crate) tcp_timeout: Duration,
    /// `None`: the transport's default (60 s on gossip, Grafana's 30 s on Redis).
    pub(crate) settle_timeout: Option<Duration>,
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
    /// Silences' retention when it differs from `retention` (Grafana's fixed 5 days); a
    /// `--data.retention` flag sets both again.
    pub(crate) silence_retention: Option<Duration>,
    pub(crate) maintenance_interval: Duration,
    /// `--silences.max-silences` (Alertmanager ≥ 0.28; `alertmanager_max_silences_count`).
    pub(crate) max_silences: usize,
    /// `--silences.max-silence-size-bytes` (`alertmanager_max_silence_size_bytes`).
    pub(crate) max_silence_size_bytes: usize,
    /// `--config.file`: Grafana's ini file.
    pub(crate) config_file: Option<PathBuf>,
    /// What the file said, when one was given (Redis mode lives only here).
    pub(crate) grafana: Option<UnifiedAlerting>,
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
            settle_timeout: None,
            reconnect_interval: Duration::from_secs(10),
            reconnect_timeout: Duration::from_secs(6 * 3600),
            label: String::new(),
            secret_key_file: None,
            tls_config: None,
            web_listen: "0.0.0.0:9093".parse().expect("literal"),
            web_max_connections: 256,
            storage: PathBuf::from("data/"),
            retention: Duration::from_secs(120 * 3600),
            silence_retention: None,
            maintenance_interval: Duration::from_secs(15 * 60),
            max_silences: 0,
            max_silence_size_bytes: 0,
            config_file: None,
            grafana: None,
        }
    }
}

pub(crate) const USAGE: &str = "usage: hearsay [--config.file=grafana.ini]
  [--cluster.listen-address=HOST:PORT] [--cluster.advertise-address=HOST:PORT]
  [--cluster.peer=HOST:PORT ...] [--cluster.peer-name=NAME] [--cluster.peer-timeout=15s]
  [--cluster.gossip-interval=200ms] [--cluster.pushpull-interval=1m] [--cluster.probe-interval=1s]
  [--cluster.probe-timeout=500ms] [--cluster.tcp-timeout=10s] [--cluster.settle-timeout=1m]
  [--cluster.reconnect-interval=10s] [--cluster.reconnect-timeout=6h] [--cluster.label=LABEL]
  [--cluster.secret-key-file=PATH] [--cluster.tls-config=FILE] [--web.listen-address=:9093]
  [--web.max-connections=256] [--storage.path=data/] [--data.retention=120h]
  [--data.maintenance-interval=15m] [--silences.max-silences=0] [--silences.max-silence-size-bytes=0]

--config.file reads Grafana's [unified_alerting] section (ha_listen_address, ha_peers,
ha_redis_address, ..., with GF_UNIFIED_ALERTING_* overrides and ${VAR} expansion); the other
flags, given beside it, override what it says.";

/// Parse `args` (without the program name): Alertmanager's defaults, then the Grafana file
/// if `--config.file` names one, then every flag given.
pub(crate) fn parse(args: impl IntoIterator<Item = String>) -> Result<Flags, String> {
    let args: Vec<String> = args.into_iter().collect();
    let plain = parse_onto(Flags::default(), args.clone())?;
    let Some(path) = plain.config_file else { return Ok(plain) };
    let grafana = UnifiedAlerting::load(&path).map_err(|e| format!("--config.file: {e}"))?;
    parse_onto(Flags::from_grafana(grafana), args)
}

impl Flags {
    /// The flags Grafana's keys mirror, set from them.
    fn from_grafana(g: UnifiedAlerting) -> Self {
        let d = Self::default();
        Self {
            listen: g.listen_address,
            advertise: g.advertise_address,
            peers: g.peers.clone(),
            peer_name: g.redis.as_ref().and_then(|r| r.peer_name.clone()),
            peer_timeout: g.peer_timeout,
            gossip_interval: g.gossip_interval,
            pushpull_interval: g.push_pull_interval,
            reconnect_timeout: g.reconnect_timeout,
            label: g.label.clone(),
            retention: g.notification_log_retention,
            silence_retention: Some(hearsay::grafana::SILENCE_RETENTION),
            max_silences: g.max_silences_count,
            max_silence_size_bytes: g.max_silence_size_bytes,
            grafana: Some(g),
            ..d
        }
    }
}

/// Apply `args` over `f`.
fn parse_onto(mut f: Flags, args: Vec<String>) -> Result<Flags, String> {
    let mut it = args.into_iter();
    // Peers given as flags replace the file's `ha_peers` rather than add to them.
    let mut peer_flags = false;
    while let Some(arg) = it.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
            None => (arg.clone(), None),
        };
        let mut value =
            || inline.clone().or_else(|| it.next()).ok_or(format!("{name} needs a value"));
        let name = name.trim_start_matches('-');
        match name {
            "config.file" => {
                f.config_file = Some(PathBuf::from(value()?)).filter(|p| !p.as_os_str().is_empty())
            }
            "cluster.listen-address" => f.listen = addr(&value()?)?,
            "cluster.advertise-address" => f.advertise = Some(addr(&value()?)?),
            "cluster.peer" => {
                if !std::mem::replace(&mut peer_flags, true) {
                    f.peers.clear();
                }
                f.peers.push(value()?);
            }
            "cluster.peer-name" => f.peer_name = Some(value()?).filter(|s| !s.is_empty()),
            "cluster.peer-timeout" => f.peer_timeout = duration(&value()?)?,
            "cluster.gossip-interval" => f.gossip_interval = duration(&value()?)?,
            "cluster.pushpull-interval" => f.pushpull_interval = duration(&value()?)?,
            "cluster.probe-interval" => f.probe_interval = duration(&value()?)?,
            "cluster.probe-timeout" => f.probe_timeout = duration(&value()?)?,
            "cluster.tcp-timeout" => f.tcp_timeout = duration(&value()?)?,
            "cluster.settle-timeout" => f.settle_timeout = Some(duration(&value()?)?),
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
            "data.retention" => {
                f.retention = duration(&value()?)?;
                f.silence_retention = None;
            }
            "data.maintenance-interval" => f.maintenance_interval = duration(&value()?)?,
            "silences.max-silences" => f.max_silences = count(&value()?)?,
            "silences.max-silence-size-bytes" => f.max_silence_size_bytes = count(&value()?)?,
            "help" | "h" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown flag --{other}\n{USAGE}")),
        }
    }
    Ok(f)
}

fn count(s: &str) -> Result<usize, String> {
    s.parse().map_err(|_| format!("{s:?} is not a whole number"))
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

    #[test]
    fn flags_beside_the_grafana_file_override_it() {
        let dir = std::env::temp_dir().join(format!("hearsay-flags-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let ini = dir.join("grafana.ini");
        std::fs::write(
            &ini,
            "[unified_alerting]\nha_listen_address = 127.0.0.1:9111\nha_peers = a:1,b:2\n\
             ha_gossip_interval = 1s\nha_label = from-file\nnotification_log_retention = 1d\n\
             alertmanager_max_silences_count = 7\n",
        )
        .expect("write");
        let file = format!("--config.file={}", ini.display());
        let f = parse(args(&["--cluster.label=from-flag", &file, "--cluster.peer=c:3"]))
            .expect("valid");
        assert_eq!(f.listen.to_string(), "127.0.0.1:9111");
        assert_eq!(f.gossip_interval, Duration::from_secs(1));
        assert_eq!(f.label, "from-flag", "a flag before --config.file still wins");
        assert_eq!(f.peers, vec!["c:3"], "peer flags replace ha_peers");
        assert_eq!(f.retention, Duration::from_secs(86_400));
        assert_eq!(f.silence_retention, Some(hearsay::grafana::SILENCE_RETENTION));
        assert_eq!(f.max_silences, 7);
        assert!(f.grafana.is_some());
        let f = parse(args(&[&file, "--data.retention=2h"])).expect("valid");
        assert_eq!((f.retention, f.silence_retention), (Duration::from_secs(7200), None));
        assert_eq!(f.peers, vec!["a:1", "b:2"]);
        std::fs::write(&ini, "[unified_alerting]\n\nha_peer_timeout = soon\n").expect("write");
        let e = parse(args(&[&file])).expect_err("bad value");
        assert!(e.contains("line 3") && e.contains("ha_peer_timeout"), "{e}");
        assert!(parse(args(&["--config.file=/nonexistent/grafana.ini"])).is_err());
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
