//! Alertmanager's `--cluster.tls-config` file: the YAML that turns on the TLS transport.
//!
//! ```yaml
//! tls_server_config:          # exporter-toolkit's web TLS settings
//!   cert_file: node.pem
//!   key_file: node-key.pem
//!   client_auth_type: RequireAndVerifyClientCert
//!   client_ca_file: ca.pem
//! tls_client_config:          # prometheus/common's TLS settings
//!   ca_file: ca.pem
//!   cert_file: node.pem
//!   key_file: node-key.pem
//! ```
//!
//! Read as Alertmanager reads it (v0.35): strictly (an unknown key is an error), with relative
//! paths resolved against the file's directory, and `tls_server_config` required; an absent
//! `tls_client_config` means default client settings (Alertmanager 0.25 crashes on that
//! instead). Keys Alertmanager knows but we cannot honour (inline PEM, curve preferences,
//! allowed client SANs, secret references) are errors naming the key, never ignored.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{ClientAuth, TlsClient, TlsError, TlsServer, TlsVersion};

/// Both sides of the TLS transport, as configured by one `--cluster.tls-config` file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterTls {
    /// How we answer peers that connect to our gossip port (`tls_server_config`).
    pub server: TlsServer,
    /// How we dial peers (`tls_client_config`).
    pub client: TlsClient,
}

impl ClusterTls {
    /// Read and check the file at `path` (the certificate files are read later, by
    /// [`TlsServer::build`] and [`TlsClient::build`]).
    pub fn load(path: &Path) -> Result<Self, TlsError> {
        let text = std::fs::read_to_string(path).map_err(|e| TlsError::File {
            what: "--cluster.tls-config",
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let dir = path.parent().unwrap_or(Path::new(""));
        Self::parse(&text, dir).map_err(|e| match e {
            TlsError::Setting(why) => TlsError::Setting(format!("{}: {why}", path.display())),
            other => other,
        })
    }

    /// Parse the YAML `text`, resolving relative paths against `dir`.
    pub fn parse(text: &str, dir: &Path) -> Result<Self, TlsError> {
        let file: File =
            serde_yaml_ng::from_str(text).map_err(|e| TlsError::Setting(e.to_string()))?;
        let server = file.tls_server_config.ok_or_else(|| {
            TlsError::Setting("missing 'tls_server_config' entry in the TLS configuration".into())
        })?;
        let client = file.tls_client_config.unwrap_or_default();
        Ok(Self { server: server.resolve(dir)?, client: client.resolve(dir)? })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    tls_server_config: Option<ServerSection>,
    tls_client_config: Option<ClientSection>,
}

/// exporter-toolkit's `TLSConfig` keys.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ServerSection {
    cert_file: Option<String>,
    key_file: Option<String>,
    client_auth_type: Option<String>,
    client_ca_file: Option<String>,
    cipher_suites: Option<Vec<String>>,
    min_version: Option<String>,
    max_version: Option<String>,
    /// A no-op in Go since 1.18 (the server's order is always used), so accepting it changes
    /// nothing there either.
    #[allow(dead_code, reason = "accepted for compatibility; Go ignores it too")]
    prefer_server_cipher_suites: Option<bool>,
    cert: Option<serde_yaml_ng::Value>,
    key: Option<serde_yaml_ng::Value>,
    client_ca: Option<serde_yaml_ng::Value>,
    curve_preferences: Option<serde_yaml_ng::Value>,
    client_allowed_sans: Option<serde_yaml_ng::Value>,
}

/// prometheus/common's `TLSConfig` keys.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ClientSection {
    ca_file: Option<String>,
    cert_file: Option<String>,
    key_file: Option<String>,
    server_name: Option<String>,
    insecure_skip_verify: Option<bool>,
    min_version: Option<String>,
    max_version: Option<String>,
    ca: Option<serde_yaml_ng::Value>,
    cert: Option<serde_yaml_ng::Value>,
    key: Option<serde_yaml_ng::Value>,
    ca_ref: Option<serde_yaml_ng::Value>,
    cert_ref: Option<serde_yaml_ng::Value>,
    key_ref: Option<serde_yaml_ng::Value>,
}

/// Refuse a key we parse but cannot honour, when it is set to anything but empty.
fn unsupported(
    section: &str,
    keys: &[(&str, &Option<serde_yaml_ng::Value>)],
) -> Result<(), TlsError> {
    for (key, value) in keys {
        let set = match value {
            None | Some(serde_yaml_ng::Value::Null) => false,
            Some(serde_yaml_ng::Value::String(s)) => !s.is_empty(),
            Some(serde_yaml_ng::Value::Sequence(s)) => !s.is_empty(),
            Some(_) => true,
        };
        if set {
            return Err(TlsError::Setting(format!("{section}.{key} is not supported by hearsay")));
        }
    }
    Ok(())
}

/// A path from the file: empty is unset; relative is relative to the file's directory.
fn path(dir: &Path, value: Option<String>) -> Option<PathBuf> {
    value.filter(|v| !v.is_empty()).map(|v| dir.join(v))
}

fn version(value: Option<String>) -> Result<Option<TlsVersion>, TlsError> {
    value.filter(|v| !v.is_empty()).map(|v| TlsVersion::parse(&v)).transpose()
}

impl ServerSection {
    fn resolve(self, dir: &Path) -> Result<TlsServer, TlsError> {
        unsupported(
            "tls_server_config",
            &[
                ("cert", &self.cert),
                ("key", &self.key),
                ("client_ca", &self.client_ca),
                ("curve_preferences", &self.curve_preferences),
                ("client_allowed_sans", &self.client_allowed_sans),
            ],
        )?;
        let required = |key: &str, value: Option<String>| {
            path(dir, value)
                .ok_or_else(|| TlsError::Setting(format!("tls_server_config.{key} is required")))
        };
        Ok(TlsServer {
            cert_file: required("cert_file", self.cert_file)?,
            key_file: required("key_file", self.key_file)?,
            client_auth: ClientAuth::parse(self.client_auth_type.as_deref().unwrap_or(""))?,
            client_ca_file: path(dir, self.client_ca_file),
            min_version: version(self.min_version)?,
            max_version: version(self.max_version)?,
            cipher_suites: self.cipher_suites.unwrap_or_default(),
        })
    }
}

impl ClientSection {
    fn resolve(self, dir: &Path) -> Result<TlsClient, TlsError> {
        unsupported(
            "tls_client_config",
            &[
                ("ca", &self.ca),
                ("cert", &self.cert),
                ("key", &self.key),
                ("ca_ref", &self.ca_ref),
                ("cert_ref", &self.cert_ref),
                ("key_ref", &self.key_ref),
            ],
        )?;
        Ok(TlsClient {
            ca_file: path(dir, self.ca_file),
            cert_file: path(dir, self.cert_file),
            key_file: path(dir, self.key_file),
            server_name: self.server_name.filter(|s| !s.is_empty()),
            insecure_skip_verify: self.insecure_skip_verify.unwrap_or(false),
            min_version: version(self.min_version)?,
            max_version: version(self.max_version)?,
            cipher_suites: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MUTUAL: &str = "tls_server_config:
  cert_file: node.pem
  key_file: /abs/node-key.pem
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: ca.pem
  min_version: TLS13
tls_client_config:
  ca_file: ca.pem
  cert_file: node.pem
  key_file: node-key.pem
  server_name: am.example
  insecure_skip_verify: false
";

    fn err(text: &str) -> String {
        ClusterTls::parse(text, Path::new("/etc/am")).expect_err("refused").to_string()
    }

    #[test]
    fn paths_are_relative_to_the_files_directory() {
        let tls = ClusterTls::parse(MUTUAL, Path::new("/etc/am")).expect("valid");
        assert_eq!(tls.server.cert_file, Path::new("/etc/am/node.pem"));
        assert_eq!(tls.server.key_file, Path::new("/abs/node-key.pem"));
        assert_eq!(tls.server.client_ca_file.as_deref(), Some(Path::new("/etc/am/ca.pem")));
        assert_eq!(tls.server.client_auth, ClientAuth::RequireAndVerifyClientCert);
        assert_eq!(tls.server.min_version, Some(TlsVersion::Tls13));
        assert_eq!(tls.client.ca_file.as_deref(), Some(Path::new("/etc/am/ca.pem")));
        assert_eq!(tls.client.key_file.as_deref(), Some(Path::new("/etc/am/node-key.pem")));
        assert_eq!(tls.client.server_name.as_deref(), Some("am.example"));
    }

    #[test]
    fn load_reads_the_file_and_uses_its_directory() {
        let dir = std::env::temp_dir().join(format!("hearsay-cluster-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("tls.yml");
        std::fs::write(&file, MUTUAL).expect("write");
        let tls = ClusterTls::load(&file).expect("valid");
        assert_eq!(tls.server.cert_file, dir.join("node.pem"));
        let missing = ClusterTls::load(&dir.join("nope.yml")).expect_err("no file");
        assert!(missing.to_string().contains("nope.yml"), "{missing}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn unknown_keys_are_errors() {
        let e = err("tls_server_config:\n  cert_file: a\n  key_file: b\n  certfile: c\n");
        assert!(e.contains("certfile"), "{e}");
        let e = err("tls_server_config:\n  cert_file: a\n  key_file: b\nextra: 1\n");
        assert!(e.contains("extra"), "{e}");
    }

    #[test]
    fn keys_we_cannot_honour_are_errors_naming_them() {
        let e = err(
            "tls_server_config:\n  cert_file: a\n  key_file: b\n  curve_preferences: [X25519]\n",
        );
        assert!(e.contains("tls_server_config.curve_preferences"), "{e}");
        let e = err(
            "tls_server_config:\n  cert_file: a\n  key_file: b\ntls_client_config:\n  ca: PEM\n",
        );
        assert!(e.contains("tls_client_config.ca"), "{e}");
        // Set to nothing, they are not used, so not refused.
        let ok = "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_allowed_sans: []\n";
        assert!(ClusterTls::parse(ok, Path::new("/")).is_ok());
    }

    #[test]
    fn the_server_section_is_required_and_the_client_one_defaults() {
        let e = err("tls_client_config:\n  ca_file: ca.pem\n");
        assert!(e.contains("tls_server_config"), "{e}");
        let e = err("tls_server_config:\n  key_file: b\n");
        assert!(e.contains("cert_file is required"), "{e}");
        let tls = ClusterTls::parse(
            "tls_server_config:\n  cert_file: a\n  key_file: b\n",
            Path::new("/d"),
        )
        .expect("valid");
        assert_eq!(tls.client, TlsClient::default());
    }

    #[test]
    fn bad_values_are_errors() {
        let e =
            err("tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: Always\n");
        assert!(e.contains("Always"), "{e}");
        let e = err("tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: TLS11\n");
        assert!(e.contains("TLS11"), "{e}");
        assert!(err("tls_server_config: [1]\n").contains("tls_server_config"));
    }
}
