//! TLS settings and the rustls configurations built from them, for every link that can be
//! encrypted: the gossip port (Alertmanager's `--cluster.tls-config`) and Redis (Grafana's
//! `ha_redis_tls_*`).
//!
//! Only configuration lives here: certificates and keys are read from PEM files once, when a
//! node starts, and turned into `rustls::{ClientConfig, ServerConfig}`. The sessions themselves
//! are rustls' sans-IO `Connection`s, driven by the node's mio loop like any other socket.
//!
//! The crypto provider is *ring*, chosen explicitly for every configuration rather than through
//! rustls' process-wide default: a host that installs another provider (or links a second copy
//! of rustls) cannot change ours, and we never panic for want of one.

#![forbid(unsafe_code)]

mod cluster_file;
mod verify;

pub use cluster_file::ClusterTls;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig, SupportedProtocolVersion};

/// The TLS versions rustls implements. Go also offers 1.0 and 1.1; asking for either is a
/// configuration error rather than a silent upgrade.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    /// TLS 1.2.
    Tls12,
    /// TLS 1.3.
    Tls13,
}

impl TlsVersion {
    /// Parse the names Go configurations use: exporter-toolkit's `TLS12`/`TLS13` (Alertmanager's
    /// `min_version`) and dskit's `VersionTLS12`/`VersionTLS13` (Grafana's
    /// `ha_redis_tls_min_version`).
    pub fn parse(name: &str) -> Result<Self, TlsError> {
        match name.trim().strip_prefix("Version").unwrap_or(name.trim()) {
            "TLS12" => Ok(Self::Tls12),
            "TLS13" => Ok(Self::Tls13),
            "TLS10" | "TLS11" => Err(TlsError::Setting(format!(
                "TLS version {name:?} is not supported: rustls implements TLS 1.2 and 1.3 only"
            ))),
            _ => Err(TlsError::Setting(format!(
                "unknown TLS version {name:?} (want TLS12 or TLS13)"
            ))),
        }
    }

    fn rustls(self) -> &'static SupportedProtocolVersion {
        match self {
            Self::Tls12 => &rustls::version::TLS12,
            Self::Tls13 => &rustls::version::TLS13,
        }
    }
}

/// Which client certificates a server asks for, with Go's names (`tls.ClientAuthType`, as
/// exporter-toolkit's `client_auth_type` spells them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ClientAuth {
    /// `NoClientCert` (Go's default): no certificate is requested.
    #[default]
    NoClientCert,
    /// `RequestClientCert`: a certificate is requested, not required, not verified.
    RequestClientCert,
    /// `RequireAnyClientCert`: a certificate is required, not verified against a CA.
    RequireAnyClientCert,
    /// `VerifyClientCertIfGiven`: a certificate is optional; one that is sent must chain to
    /// the client CA.
    VerifyClientCertIfGiven,
    /// `RequireAndVerifyClientCert`: mutual TLS; a certificate from the client CA is required.
    RequireAndVerifyClientCert,
}

impl ClientAuth {
    /// Parse Go's name for it.
    pub fn parse(name: &str) -> Result<Self, TlsError> {
        Ok(match name.trim() {
            "" | "NoClientCert" => Self::NoClientCert,
            "RequestClientCert" => Self::RequestClientCert,
            "RequireAnyClientCert" => Self::RequireAnyClientCert,
            "VerifyClientCertIfGiven" => Self::VerifyClientCertIfGiven,
            "RequireAndVerifyClientCert" => Self::RequireAndVerifyClientCert,
            other => {
                return Err(TlsError::Setting(format!("unknown client_auth_type {other:?}")));
            }
        })
    }

    fn verifies(self) -> bool {
        matches!(self, Self::VerifyClientCertIfGiven | Self::RequireAndVerifyClientCert)
    }
}

/// How we dial a TLS server: Alertmanager's `tls_client_config`, Grafana's `ha_redis_tls_*`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsClient {
    /// CA bundle (PEM) the server's certificate must chain to (`ca_file`,
    /// `ha_redis_tls_ca_path`). Default: the system's roots.
    pub ca_file: Option<PathBuf>,
    /// Our certificate chain (PEM) for mutual TLS (`cert_file`, `ha_redis_tls_cert_path`).
    /// Set together with `key_file`, or not at all.
    pub cert_file: Option<PathBuf>,
    /// The private key (PEM: PKCS#8, PKCS#1 or SEC1) for `cert_file` (`key_file`,
    /// `ha_redis_tls_key_path`).
    pub key_file: Option<PathBuf>,
    /// The name the server's certificate must carry, and the SNI sent (`server_name`,
    /// `ha_redis_tls_server_name`). Default: the host (name or IP) being dialled.
    pub server_name: Option<String>,
    /// Accept any server certificate (`insecure_skip_verify`,
    /// `ha_redis_tls_insecure_skip_verify`). The handshake's signatures are still checked;
    /// who signed the certificate is not. Default false.
    pub insecure_skip_verify: bool,
    /// Lowest version offered (`min_version`, `ha_redis_tls_min_version`). Default TLS 1.2.
    pub min_version: Option<TlsVersion>,
    /// Highest version offered (`max_version`). Default TLS 1.3.
    pub max_version: Option<TlsVersion>,
    /// TLS 1.2 cipher suites allowed, by IANA name (`cipher_suites`,
    /// `ha_redis_tls_cipher_suites`). Empty: rustls' defaults. As in Go, TLS 1.3 suites are
    /// not configurable.
    pub cipher_suites: Vec<String>,
}

/// How we answer TLS clients: Alertmanager's `tls_server_config` (exporter-toolkit).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsServer {
    /// Our certificate chain (PEM) (`cert_file`). Required.
    pub cert_file: PathBuf,
    /// Its private key (PEM) (`key_file`). Required.
    pub key_file: PathBuf,
    /// Which client certificates are asked for (`client_auth_type`). Default `NoClientCert`.
    pub client_auth: ClientAuth,
    /// CA bundle client certificates must chain to (`client_ca_file`); required by the two
    /// verifying [`ClientAuth`] modes.
    pub client_ca_file: Option<PathBuf>,
    /// Lowest version accepted (`min_version`). Default TLS 1.2 (exporter-toolkit's default).
    pub min_version: Option<TlsVersion>,
    /// Highest version accepted (`max_version`). Default TLS 1.3.
    pub max_version: Option<TlsVersion>,
    /// TLS 1.2 cipher suites allowed, by IANA name (`cipher_suites`). Empty: rustls' defaults.
    pub cipher_suites: Vec<String>,
}

/// A TLS setting that cannot be used. Nothing was started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read or holds no usable PEM item.
    #[error("{what} {path}: {reason}")]
    File {
        /// Which setting named the file.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why it is unusable.
        reason: String,
    },
    /// A value is invalid, or settings contradict each other.
    #[error("{0}")]
    Setting(String),
    /// rustls refused the combination.
    #[error("TLS: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The crypto provider behind every configuration (see the module docs).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl TlsClient {
    /// Build the rustls configuration: read the CA, certificate and key files now.
    pub fn build(&self) -> Result<Arc<ClientConfig>, TlsError> {
        let provider = with_suites(provider(), &self.cipher_suites)?;
        let versions = versions(self.min_version, self.max_version)?;
        let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(&versions)?;
        let builder = if self.insecure_skip_verify {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verify::AnyServer::new(provider)))
        } else {
            let roots = match &self.ca_file {
                Some(path) => roots(path, "ca_file")?,
                None => system_roots()?,
            };
            builder.with_root_certificates(roots)
        };
        let config = match (&self.cert_file, &self.key_file) {
            (Some(cert), Some(key)) => {
                builder.with_client_auth_cert(certs(cert, "cert_file")?, private_key(key)?)?
            }
            (None, None) => builder.with_no_client_auth(),
            _ => {
                return Err(TlsError::Setting(
                    "a client certificate needs both cert_file and key_file".into(),
                ));
            }
        };
        Ok(Arc::new(config))
    }

    /// The name to verify and send as SNI when dialling `host`: `server_name` if set, else
    /// `host` itself (a DNS name or an IP address, as Go does).
    pub fn server_name(&self, host: &str) -> Result<ServerName<'static>, TlsError> {
        let name = self.server_name.as_deref().filter(|n| !n.is_empty()).unwrap_or(host);
        let name = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')).unwrap_or(name);
        ServerName::try_from(name.to_owned())
            .map_err(|e| TlsError::Setting(format!("TLS server name {name:?}: {e}")))
    }
}

impl TlsServer {
    /// Build the rustls configuration: read the certificate, key and client CA files now.
    pub fn build(&self) -> Result<Arc<ServerConfig>, TlsError> {
        let provider = with_suites(provider(), &self.cipher_suites)?;
        let versions = versions(self.min_version, self.max_version)?;
        let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(&versions)?;
        let builder = match (self.client_auth, &self.client_ca_file) {
            (ClientAuth::NoClientCert, _) => builder.with_no_client_auth(),
            (auth, Some(ca)) if auth.verifies() => {
                let roots = Arc::new(roots(ca, "client_ca_file")?);
                let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider);
                let verifier = if auth == ClientAuth::VerifyClientCertIfGiven {
                    verifier.allow_unauthenticated()
                } else {
                    verifier
                };
                let verifier = verifier
                    .build()
                    .map_err(|e| TlsError::Setting(format!("client_ca_file: {e}")))?;
                builder.with_client_cert_verifier(verifier)
            }
            (auth, None) if auth.verifies() => {
                return Err(TlsError::Setting(format!(
                    "client_auth_type {auth:?} needs a client_ca_file"
                )));
            }
            (auth, _) => {
                let mandatory = auth == ClientAuth::RequireAnyClientCert;
                builder.with_client_cert_verifier(Arc::new(verify::AnyClient::new(
                    provider, mandatory,
                )))
            }
        };
        let certs = certs(&self.cert_file, "cert_file")?;
        Ok(Arc::new(builder.with_single_cert(certs, private_key(&self.key_file)?)?))
    }
}

fn versions(
    min: Option<TlsVersion>,
    max: Option<TlsVersion>,
) -> Result<Vec<&'static SupportedProtocolVersion>, TlsError> {
    let (min, max) = (min.unwrap_or(TlsVersion::Tls12), max.unwrap_or(TlsVersion::Tls13));
    if min > max {
        return Err(TlsError::Setting(format!("min_version {min:?} is above max_version {max:?}")));
    }
    Ok([TlsVersion::Tls12, TlsVersion::Tls13]
        .into_iter()
        .filter(|v| (min..=max).contains(v))
        .map(TlsVersion::rustls)
        .collect())
}

/// Keep only the named TLS 1.2 suites (TLS 1.3 suites always stay, as in Go).
fn with_suites(
    provider: Arc<CryptoProvider>,
    names: &[String],
) -> Result<Arc<CryptoProvider>, TlsError> {
    if names.is_empty() {
        return Ok(provider);
    }
    let mut provider = Arc::unwrap_or_clone(provider);
    for name in names {
        let known = provider.cipher_suites.iter().any(|s| suite_name(s) == name.trim());
        if !known {
            return Err(TlsError::Setting(format!("unknown or unsupported cipher suite {name:?}")));
        }
    }
    provider.cipher_suites.retain(|s| {
        s.version() == &rustls::version::TLS13 || names.iter().any(|n| suite_name(s) == n.trim())
    });
    Ok(Arc::new(provider))
}

fn suite_name(suite: &rustls::SupportedCipherSuite) -> String {
    // rustls names suites by their IANA names (`TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256`), as Go's
    // `tls.CipherSuiteName` does, except TLS 1.3 ones (`TLS13_…`), which Go does not configure.
    format!("{:?}", suite.suite())
}

fn roots(path: &Path, what: &'static str) -> Result<RootCertStore, TlsError> {
    let mut store = RootCertStore::empty();
    for cert in certs(path, what)? {
        store.add(cert).map_err(|e| file_error(what, path, e))?;
    }
    Ok(store)
}

/// The system's trust store, as Go uses when no CA is given.
fn system_roots() -> Result<RootCertStore, TlsError> {
    let found = rustls_native_certs::load_native_certs();
    let mut store = RootCertStore::empty();
    let (_added, _ignored) = store.add_parsable_certificates(found.certs);
    if store.is_empty() {
        let why = found.errors.first().map_or("no certificates found".into(), |e| e.to_string());
        return Err(TlsError::Setting(format!("system trust store: {why}; set a CA file")));
    }
    Ok(store)
}

fn certs(path: &Path, what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(what, path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(what, path, e))?;
    if certs.is_empty() {
        return Err(file_error(what, path, "no PEM certificate in it"));
    }
    Ok(certs)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| file_error("key_file", path, e))
}

fn file_error(what: &'static str, path: &Path, reason: impl ToString) -> TlsError {
    TlsError::File { what, path: path.to_path_buf(), reason: reason.to_string() }
}

#[cfg(test)]
pub(crate) mod tests;
