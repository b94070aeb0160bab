//! Handshakes between configurations built here, in memory: who is admitted and who is not.

#[path = "../../tests/util/certs.rs"]
pub(crate) mod certs;

use std::path::PathBuf;
use std::sync::Arc;

use certs::{Leaf, TestCa};
use rustls::{ClientConnection, ServerConnection};

use super::*;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hearsay-tls-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn server(leaf: &Leaf, auth: ClientAuth, client_ca: Option<&TestCa>) -> TlsServer {
    TlsServer {
        cert_file: leaf.cert.clone(),
        key_file: leaf.key.clone(),
        client_auth: auth,
        client_ca_file: client_ca.map(|ca| ca.file.clone()),
        ..TlsServer::default()
    }
}

fn client(ca: &TestCa, leaf: Option<&Leaf>) -> TlsClient {
    TlsClient {
        ca_file: Some(ca.file.clone()),
        cert_file: leaf.map(|l| l.cert.clone()),
        key_file: leaf.map(|l| l.key.clone()),
        ..TlsClient::default()
    }
}

/// Run a handshake to its end in memory; `Err` names the side that failed and why.
fn handshake(
    client: &TlsClient,
    server: &TlsServer,
    host: &str,
) -> Result<(ClientConnection, ServerConnection), String> {
    let name = client.server_name(host).map_err(|e| e.to_string())?;
    let mut c = ClientConnection::new(client.build().map_err(|e| e.to_string())?, name)
        .map_err(|e| e.to_string())?;
    let mut s = ServerConnection::new(server.build().map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    for _ in 0..20 {
        let mut buf = Vec::new();
        while c.wants_write() {
            c.write_tls(&mut buf).map_err(|e| e.to_string())?;
        }
        if !buf.is_empty() {
            s.read_tls(&mut buf.as_slice()).map_err(|e| e.to_string())?;
            s.process_new_packets().map_err(|e| format!("server: {e}"))?;
        }
        let mut buf = Vec::new();
        while s.wants_write() {
            s.write_tls(&mut buf).map_err(|e| e.to_string())?;
        }
        if !buf.is_empty() {
            c.read_tls(&mut buf.as_slice()).map_err(|e| e.to_string())?;
            c.process_new_packets().map_err(|e| format!("client: {e}"))?;
        }
        if !c.is_handshaking() && !s.is_handshaking() {
            return Ok((c, s));
        }
    }
    Err("handshake did not finish".into())
}

#[test]
fn mutual_tls_admits_certificates_of_the_client_ca_only() {
    let dir = scratch("mtls");
    let ca = TestCa::new(&dir, "cluster");
    let stranger_ca = TestCa::new(&dir, "stranger");
    let server_cfg =
        server(&ca.server("node-a", &[]), ClientAuth::RequireAndVerifyClientCert, Some(&ca));

    let member = ca.client("node-b");
    let (c, s) = handshake(&client(&ca, Some(&member)), &server_cfg, "127.0.0.1").unwrap();
    assert!(s.peer_certificates().is_some_and(|certs| certs.len() == 1));
    assert!(c.peer_certificates().is_some());

    let err = handshake(&client(&ca, None), &server_cfg, "127.0.0.1").unwrap_err();
    assert!(err.contains("server"), "no certificate must be refused by the server: {err}");
    let stranger = stranger_ca.client("intruder");
    let err = handshake(&client(&ca, Some(&stranger)), &server_cfg, "localhost").unwrap_err();
    assert!(err.contains("server"), "another CA's certificate must be refused: {err}");
}

#[test]
fn optional_and_unverified_client_certificates() {
    let dir = scratch("modes");
    let ca = TestCa::new(&dir, "cluster");
    let other = TestCa::new(&dir, "other");
    let leaf = ca.server("node-a", &[]);
    let foreign = other.client("foreign");

    let if_given = server(&leaf, ClientAuth::VerifyClientCertIfGiven, Some(&ca));
    handshake(&client(&ca, None), &if_given, "localhost").unwrap();
    handshake(&client(&ca, Some(&foreign)), &if_given, "localhost").unwrap_err();

    let any = server(&leaf, ClientAuth::RequireAnyClientCert, None);
    handshake(&client(&ca, Some(&foreign)), &any, "localhost").unwrap();
    handshake(&client(&ca, None), &any, "localhost").unwrap_err();

    let request = server(&leaf, ClientAuth::RequestClientCert, None);
    handshake(&client(&ca, None), &request, "localhost").unwrap();

    let none = server(&leaf, ClientAuth::NoClientCert, None);
    let (_, s) = handshake(&client(&ca, Some(&foreign)), &none, "localhost").unwrap();
    assert!(s.peer_certificates().is_none());
}

#[test]
fn the_server_name_is_checked_unless_verification_is_skipped() {
    let dir = scratch("names");
    let ca = TestCa::new(&dir, "cluster");
    let other = TestCa::new(&dir, "other");
    let srv = server(&ca.server("node-a", &["redis.test"]), ClientAuth::NoClientCert, None);

    handshake(&client(&ca, None), &srv, "::1").unwrap();
    handshake(&client(&ca, None), &srv, "[::1]").unwrap();
    handshake(&client(&ca, None), &srv, "redis.test").unwrap();
    let err = handshake(&client(&ca, None), &srv, "elsewhere.test").unwrap_err();
    assert!(err.contains("client"), "{err}");
    let renamed = TlsClient { server_name: Some("redis.test".into()), ..client(&ca, None) };
    handshake(&renamed, &srv, "elsewhere.test").unwrap();

    // A CA that did not sign the server's certificate: refused, unless verification is off.
    handshake(&client(&other, None), &srv, "localhost").unwrap_err();
    let skip = TlsClient { insecure_skip_verify: true, ..client(&other, None) };
    handshake(&skip, &srv, "elsewhere.test").unwrap();
}

#[test]
fn versions_and_suites() {
    let dir = scratch("versions");
    let ca = TestCa::new(&dir, "cluster");
    let leaf = ca.server("node-a", &[]);
    let only12 = TlsServer {
        max_version: Some(TlsVersion::Tls12),
        ..server(&leaf, ClientAuth::NoClientCert, None)
    };
    let (c, _) = handshake(&client(&ca, None), &only12, "localhost").unwrap();
    assert_eq!(c.protocol_version(), Some(rustls::ProtocolVersion::TLSv1_2));
    let wants13 = TlsClient { min_version: Some(TlsVersion::Tls13), ..client(&ca, None) };
    handshake(&wants13, &only12, "localhost").unwrap_err();

    assert_eq!(TlsVersion::parse("VersionTLS13").unwrap(), TlsVersion::Tls13);
    assert_eq!(TlsVersion::parse("TLS12").unwrap(), TlsVersion::Tls12);
    assert!(TlsVersion::parse("TLS11").unwrap_err().to_string().contains("not supported"));
    assert!(TlsVersion::parse("SSL3").is_err());
    let inverted = TlsClient {
        min_version: Some(TlsVersion::Tls13),
        max_version: Some(TlsVersion::Tls12),
        ..client(&ca, None)
    };
    assert!(inverted.build().is_err());

    let suite = "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384".to_owned();
    let pinned = TlsServer { cipher_suites: vec![suite.clone()], ..only12.clone() };
    let (c, _) = handshake(&client(&ca, None), &pinned, "localhost").unwrap();
    assert_eq!(format!("{:?}", c.negotiated_cipher_suite().unwrap().suite()), suite);
    let bogus =
        TlsClient { cipher_suites: vec!["TLS_RSA_WITH_RC4_128_SHA".into()], ..client(&ca, None) };
    assert!(bogus.build().unwrap_err().to_string().contains("cipher suite"));
}

#[test]
fn unusable_files_are_named_in_the_error() {
    let dir = scratch("files");
    let ca = TestCa::new(&dir, "cluster");
    let missing = TlsClient { ca_file: Some(dir.join("nope.pem")), ..TlsClient::default() };
    let err = missing.build().unwrap_err().to_string();
    assert!(err.contains("ca_file") && err.contains("nope.pem"), "{err}");

    std::fs::write(dir.join("empty.pem"), "not a certificate\n").unwrap();
    let empty = TlsClient { ca_file: Some(dir.join("empty.pem")), ..TlsClient::default() };
    assert!(empty.build().unwrap_err().to_string().contains("no PEM certificate"));

    let leaf = ca.server("node-a", &[]);
    let half = TlsClient { cert_file: Some(leaf.cert.clone()), ..client(&ca, None) };
    assert!(half.build().unwrap_err().to_string().contains("both cert_file and key_file"));

    let swapped =
        TlsServer { key_file: leaf.cert.clone(), ..server(&leaf, ClientAuth::NoClientCert, None) };
    assert!(swapped.build().unwrap_err().to_string().contains("key_file"));
    let no_ca = server(&leaf, ClientAuth::RequireAndVerifyClientCert, None);
    assert!(no_ca.build().unwrap_err().to_string().contains("client_ca_file"));
    let _ = Arc::strong_count(&provider());
}
