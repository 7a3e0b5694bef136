//! Test certificates, made with rcgen when first asked for, and the rustls
//! configurations built from them. Shared by the TLS unit tests (which
//! include this file by path) and the integration tests (`common::tls`).
//!
//! * [`Pki::ca`] signs the good certificates: the server's (valid for
//!   `localhost`, `example.test` and `127.0.0.1`), an expired server
//!   certificate, and a client certificate.
//! * [`Pki::other_ca`] signs what nobody trusts: a server certificate and a
//!   client certificate that are otherwise like the good ones.
//!
//! Keys are ECDSA P-256 (fast to make). Every certificate and key is also
//! available as PEM for external peers such as `openssl s_server`.
#![allow(dead_code)]

use std::sync::{Arc, OnceLock};

use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

/// The names the good server certificate is valid for.
pub const SERVER_NAMES: [&str; 3] = ["localhost", "example.test", "127.0.0.1"];

/// A certificate authority.
pub struct Ca {
    pub cert: CertificateDer<'static>,
    pub cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// An end-entity certificate with its key.
pub struct Leaf {
    /// The certificate, then its issuer's.
    pub chain: Vec<CertificateDer<'static>>,
    pub key_der: Vec<u8>,
    pub cert_pem: String,
    pub key_pem: String,
}

impl Leaf {
    pub fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()))
    }
}

enum Validity {
    Current,
    Expired,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("self-signed CA");
        Ca {
            cert: cert.der().clone(),
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    fn leaf(&self, names: &[&str], usage: ExtendedKeyUsagePurpose, validity: Validity) -> Leaf {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names.clone()).expect("leaf params");
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().cloned().unwrap_or_default(),
        );
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![usage];
        if let Validity::Expired = validity {
            params.not_before = date_time_ymd(2000, 1, 1);
            params.not_after = date_time_ymd(2001, 1, 1);
        }
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &self.issuer).expect("signed leaf");
        Leaf {
            chain: vec![cert.der().clone(), self.cert.clone()],
            key_der: key.serialize_der(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// A server certificate valid now for `names` (DNS names or IPs).
    pub fn server(&self, names: &[&str]) -> Leaf {
        self.leaf(
            names,
            ExtendedKeyUsagePurpose::ServerAuth,
            Validity::Current,
        )
    }

    /// A server certificate for `names` that expired in 2001.
    pub fn expired_server(&self, names: &[&str]) -> Leaf {
        self.leaf(
            names,
            ExtendedKeyUsagePurpose::ServerAuth,
            Validity::Expired,
        )
    }

    /// A client certificate.
    pub fn client(&self, name: &str) -> Leaf {
        self.leaf(
            &[name],
            ExtendedKeyUsagePurpose::ClientAuth,
            Validity::Current,
        )
    }

    /// A root store that trusts this CA only.
    pub fn roots(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        roots.add(self.cert.clone()).expect("add CA root");
        roots
    }
}

/// Every certificate the tests use.
pub struct Pki {
    pub ca: Ca,
    pub server: Leaf,
    pub expired_server: Leaf,
    pub client: Leaf,
    pub other_ca: Ca,
    pub untrusted_server: Leaf,
    pub untrusted_client: Leaf,
}

/// The test PKI, made once per process.
pub fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let ca = Ca::new("evstream test CA");
        let other_ca = Ca::new("evstream untrusted CA");
        Pki {
            server: ca.server(&SERVER_NAMES),
            expired_server: ca.expired_server(&SERVER_NAMES),
            client: ca.client("client.example.test"),
            untrusted_server: other_ca.server(&SERVER_NAMES),
            untrusted_client: other_ca.client("client.example.test"),
            ca,
            other_ca,
        }
    })
}

/// A client that trusts the test CA, without a client certificate.
pub fn client_config() -> ClientConfig {
    ClientConfig::builder()
        .with_root_certificates(pki().ca.roots())
        .with_no_client_auth()
}

/// A client that trusts the test CA and presents `cert`.
pub fn client_config_with_cert(cert: &Leaf) -> ClientConfig {
    ClientConfig::builder()
        .with_root_certificates(pki().ca.roots())
        .with_client_auth_cert(cert.chain.clone(), cert.key())
        .expect("client certificate")
}

/// A server presenting `cert`, asking for no client certificate.
pub fn server_config(cert: &Leaf) -> ServerConfig {
    ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(cert.chain.clone(), cert.key())
        .expect("server certificate")
}

/// A server presenting the good certificate and verifying client
/// certificates against the test CA: `required`, or optional.
pub fn server_config_client_auth(required: bool) -> ServerConfig {
    let builder = WebPkiClientVerifier::builder(Arc::new(pki().ca.roots()));
    let verifier = if required {
        builder.build()
    } else {
        builder.allow_unauthenticated().build()
    }
    .expect("client verifier");
    ServerConfig::builder()
        .with_client_cert_verifier(verifier)
        .with_single_cert(pki().server.chain.clone(), pki().server.key())
        .expect("server certificate")
}
