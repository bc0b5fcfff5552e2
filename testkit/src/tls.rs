//! Certificates for TLS tests, made by the test itself (rcgen, no OpenSSL): a CA of its own,
//! a server certificate for `127.0.0.1`/`localhost` and a client certificate, both signed by
//! that CA, as PEM files in a temporary directory. A second [`TestPki`] is "a wrong CA" for
//! the first one's servers.

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use std::path::{Path, PathBuf};

/// A CA and the certificates it signed, as PEM files; removed on drop.
pub struct TestPki {
    dir: tempfile::TempDir,
    /// The CA certificate: what clients trust, and what servers check client certificates
    /// against.
    pub ca: PathBuf,
    /// Server certificate (SAN `127.0.0.1`, `localhost`) and its key.
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// Client certificate (CN `seckill-client`) and its key, for mutual TLS.
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl TestPki {
    /// A fresh CA named `name` with its two certificates.
    pub fn generate(name: &str) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("seckill-pki-")
            .tempdir()
            .context("Failed to create a temp dir for certificates")?;
        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} test CA"));
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = ca_params.self_signed(&ca_key)?;

        let leaf = |cn: &str,
                    sans: Vec<String>,
                    usage: ExtendedKeyUsagePurpose|
         -> anyhow::Result<(String, String)> {
            let key = KeyPair::generate()?;
            let mut p = CertificateParams::new(sans)?;
            p.distinguished_name.push(DnType::CommonName, cn);
            p.key_usages = vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyEncipherment,
            ];
            p.extended_key_usages = vec![usage];
            let cert = p.signed_by(&key, &ca, &ca_key)?;
            Ok((cert.pem(), key.serialize_pem()))
        };
        let (server_cert, server_key) = leaf(
            "127.0.0.1",
            vec!["127.0.0.1".into(), "localhost".into()],
            ExtendedKeyUsagePurpose::ServerAuth,
        )?;
        let (client_cert, client_key) = leaf(
            "seckill-client",
            vec!["seckill-client".into()],
            ExtendedKeyUsagePurpose::ClientAuth,
        )?;

        let write = |file: &str, pem: &str| -> anyhow::Result<PathBuf> {
            let p = dir.path().join(file);
            std::fs::write(&p, pem).with_context(|| format!("Failed to write {}", p.display()))?;
            Ok(p)
        };
        Ok(Self {
            ca: write("ca.pem", &ca.pem())?,
            server_cert: write("server.pem", &server_cert)?,
            server_key: write("server-key.pem", &server_key)?,
            client_cert: write("client.pem", &client_cert)?,
            client_key: write("client-key.pem", &client_key)?,
            dir,
        })
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}
