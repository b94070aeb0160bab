//! Certificates made by the test that uses them: a CA, and leaves it signs for servers (with
//! loopback SANs) and clients, written as PEM files into a scratch directory.
//!
//! Also compiled into the library's own TLS unit tests (`src/tls/tests.rs`), so both use one
//! generator.

#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// A certificate authority whose key stays in memory to sign leaves.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    /// The CA certificate, PEM.
    pub pem: String,
    /// Where the CA certificate was written.
    pub file: PathBuf,
    dir: PathBuf,
}

/// A leaf certificate and its key, as files.
#[derive(Clone, Debug)]
pub struct Leaf {
    /// Certificate chain (leaf only), PEM.
    pub cert: PathBuf,
    /// Private key (PKCS#8), PEM.
    pub key: PathBuf,
}

impl TestCa {
    /// A new CA named `name`, written to `dir/<name>-ca.pem`.
    pub fn new(dir: &Path, name: &str) -> Self {
        std::fs::create_dir_all(dir).expect("create the certificate directory");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.distinguished_name.push(DnType::CommonName, format!("{name} test CA"));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("CA key");
        let pem = params.self_signed(&key).expect("self-sign the CA").pem();
        let file = dir.join(format!("{name}-ca.pem"));
        std::fs::write(&file, &pem).expect("write the CA");
        Self { issuer: Issuer::new(params, key), pem, file, dir: dir.to_path_buf() }
    }

    /// A server certificate for `localhost`, 127.0.0.1 and ::1 (plus `extra` names), also
    /// usable as a client certificate (Alertmanager peers are both).
    pub fn server(&self, name: &str, extra: &[&str]) -> Leaf {
        let mut sans = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
        sans.extend(extra.iter().map(|s| (*s).to_owned()));
        self.leaf(name, sans)
    }

    /// A client-only certificate.
    pub fn client(&self, name: &str) -> Leaf {
        self.leaf(name, vec![format!("{name}.client")])
    }

    fn leaf(&self, name: &str, sans: Vec<String>) -> Leaf {
        let mut params = CertificateParams::new(sans).expect("leaf params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages =
            vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages =
            vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign the leaf");
        let leaf = Leaf {
            cert: self.dir.join(format!("{name}.pem")),
            key: self.dir.join(format!("{name}-key.pem")),
        };
        std::fs::write(&leaf.cert, cert.pem()).expect("write the certificate");
        std::fs::write(&leaf.key, key.serialize_pem()).expect("write the key");
        leaf
    }
}
