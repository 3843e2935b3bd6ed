//! `af-ca`: Agent Factory's local certificate authority.
//!
//! [`Ca::load_or_create`] keeps a CA certificate and key in a directory (the key file is mode
//! 0600); [`Ca::leaf`] issues a certificate for a host name or IP on the fly and caches it;
//! [`Ca::server_config`] is a rustls server configuration that answers every SNI name with such
//! a leaf — what the mock's HTTPS listener and its CONNECT interception (and the recording proxy)
//! present. [`Ca::client_env`] lists the environment variables that make common clients trust
//! the CA.
//!
//! The crypto backend is `ring`, chosen explicitly (no process-wide default is installed).

#![warn(missing_docs)]

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;

/// Why the CA could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// Reading or writing its files.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Generating or parsing keys and certificates.
    #[error("certificate: {0}")]
    Cert(String),
}

const CERT_FILE: &str = "ca.pem";
const KEY_FILE: &str = "ca-key.pem";
const CA_NAME: &str = "Agent Factory local CA";

/// The local CA and a cache of the leaf certificates it issued.
pub struct Ca {
    dir: PathBuf,
    cert_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
    leaves: Mutex<HashMap<String, Arc<CertifiedKey>>>,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").field("dir", &self.dir).finish_non_exhaustive()
    }
}

fn ca_params() -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, CA_NAME);
    dn.push(DnType::OrganizationName, "Agent Factory (af)");
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.not_before = rcgen::date_time_ymd(2024, 1, 1);
    p.not_after = rcgen::date_time_ymd(2035, 1, 1);
    p
}

fn cert_err(e: impl std::fmt::Display) -> CaError {
    CaError::Cert(e.to_string())
}

impl Ca {
    /// Loads the CA from `dir`, creating it (and `dir`) when absent. Returns it and whether it was
    /// created now.
    pub fn load_or_create(dir: &Path) -> Result<(Self, bool), CaError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| CaError::Io { path, source }
        };
        let (cert_path, key_path) = (dir.join(CERT_FILE), dir.join(KEY_FILE));
        let created = !cert_path.exists() || !key_path.exists();
        if created {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
            let key = KeyPair::generate().map_err(cert_err)?;
            let cert = ca_params().self_signed(&key).map_err(cert_err)?;
            write_private(&key_path, key.serialize_pem().as_bytes()).map_err(io(&key_path))?;
            std::fs::write(&cert_path, cert.pem()).map_err(io(&cert_path))?;
        }
        let key_pem = std::fs::read_to_string(&key_path).map_err(io(&key_path))?;
        let cert_pem = std::fs::read_to_string(&cert_path).map_err(io(&cert_path))?;
        let key = KeyPair::from_pem(&key_pem)
            .map_err(|e| CaError::Cert(format!("{}: {e}", key_path.display())))?;
        let cert_der = pem_to_der(&cert_pem).ok_or_else(|| {
            CaError::Cert(format!("{}: not a PEM certificate", cert_path.display()))
        })?;
        // The issuer is rebuilt from the parameters the CA was made with; the signing key gives
        // the authority key identifier, so leaves chain to the stored certificate.
        let issuer = Issuer::new(ca_params(), key);
        Ok((Self { dir: dir.to_owned(), cert_der, issuer, leaves: Mutex::default() }, created))
    }

    /// The CA certificate file (PEM) clients should trust.
    pub fn cert_path(&self) -> PathBuf {
        self.dir.join(CERT_FILE)
    }

    /// The CA key file (mode 0600).
    pub fn key_path(&self) -> PathBuf {
        self.dir.join(KEY_FILE)
    }

    /// A certificate for `host` (a DNS name or an IP address), issued now or from the cache.
    pub fn leaf(&self, host: &str) -> Result<Arc<CertifiedKey>, CaError> {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        if let Some(k) = self.leaves.lock().ok().and_then(|m| m.get(&host).cloned()) {
            return Ok(k);
        }
        let mut p = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, host.clone());
        p.distinguished_name = dn;
        p.subject_alt_names = match host.parse::<IpAddr>() {
            Ok(ip) => vec![SanType::IpAddress(ip)],
            Err(_) => vec![SanType::DnsName(host.clone().try_into().map_err(cert_err)?)],
        };
        if host == "localhost" {
            p.subject_alt_names.push(SanType::IpAddress(IpAddr::from([127, 0, 0, 1])));
        }
        p.is_ca = IsCa::NoCa;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        p.not_before = rcgen::date_time_ymd(2024, 1, 1);
        p.not_after = rcgen::date_time_ymd(2034, 12, 31);
        let key = KeyPair::generate().map_err(cert_err)?;
        let cert = p.signed_by(&key, &self.issuer).map_err(cert_err)?;
        let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let signing = rustls::crypto::ring::sign::any_supported_type(&der).map_err(cert_err)?;
        let ck =
            Arc::new(CertifiedKey::new(vec![cert.der().clone(), self.cert_der.clone()], signing));
        if let Ok(mut m) = self.leaves.lock() {
            m.insert(host, ck.clone());
        }
        Ok(ck)
    }

    /// A rustls server configuration presenting, for each SNI name, a leaf issued by this CA
    /// (`localhost` without SNI), offering `alpn` protocols (e.g. `h2`, `http/1.1`).
    pub fn server_config(
        self: &Arc<Self>,
        alpn: &[&[u8]],
    ) -> Result<rustls::ServerConfig, CaError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(cert_err)?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(Resolver(self.clone())));
        cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(cfg)
    }

    /// Environment variables that make OpenSSL-based tools, curl, Python `requests` and Node
    /// trust this CA.
    pub fn client_env(&self) -> Vec<(String, String)> {
        let p = self.cert_path().display().to_string();
        ["SSL_CERT_FILE", "NODE_EXTRA_CA_CERTS", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"]
            .iter()
            .map(|k| ((*k).to_owned(), p.clone()))
            .collect()
    }
}

#[derive(Debug)]
struct Resolver(Arc<Ca>);

impl rustls::server::ResolvesServerCert for Resolver {
    fn resolve(&self, hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.leaf(hello.server_name().unwrap_or("localhost")).ok()
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)
}

fn pem_to_der(pem: &str) -> Option<CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::from_pem_slice(pem.as_bytes()).ok()
}

/// The default CA directory: `$AF_CA_DIR`, else `$XDG_CONFIG_HOME/af/ca`, else `~/.config/af/ca`.
pub fn default_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("AF_CA_DIR") {
        return PathBuf::from(d);
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("af").join("ca")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_once_with_a_private_key_and_reloads() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let (ca, created) = Ca::load_or_create(dir.path()).expect("create");
        assert!(created);
        let mode = std::fs::metadata(ca.key_path()).expect("key").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let pem = std::fs::read_to_string(ca.cert_path()).expect("cert");
        let (again, created) = Ca::load_or_create(dir.path()).expect("load");
        assert!(!created);
        assert_eq!(
            std::fs::read_to_string(again.cert_path()).expect("cert"),
            pem,
            "loading does not replace the CA"
        );
        let a = again.leaf("gmail.googleapis.com").expect("leaf");
        let b = again.leaf("GMAIL.googleapis.com.").expect("leaf");
        assert!(Arc::ptr_eq(&a, &b), "leaves are cached per host");
        assert_eq!(a.cert.len(), 2, "leaf and CA");
        assert!(again.leaf("127.0.0.1").is_ok());
    }
}
