//! TLS for every connection holdfast opens: one rustls client configuration per queue, built
//! from the `tls` options, used by [`crate::net::Endpoint::dial`]. rustls with the ring provider,
//! so the prebuilt binary needs no OpenSSL on the user's machine.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{ring, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::config::TlsConfig;
use crate::error::{Error, Result};

/// What a connection needs to start TLS: the client configuration and the name the server's
/// certificate must carry (and that goes out as SNI).
#[derive(Clone)]
pub(crate) struct Tls {
    pub connector: tokio_rustls::TlsConnector,
    /// `servername` when given, else the URL's host.
    pub server_name: ServerName<'static>,
    /// `servername` was given: it stays for every host (see [`Tls::for_host`]).
    pinned: bool,
}

impl Tls {
    pub fn new(opts: &TlsConfig, host: &str) -> Result<Self> {
        Ok(Self {
            connector: tokio_rustls::TlsConnector::from(Arc::new(client_config(opts)?)),
            server_name: server_name(opts.servername.as_deref().unwrap_or(host))?,
            pinned: opts.servername.is_some(),
        })
    }

    /// The same settings for another host (the master a sentinel named): its own name, unless
    /// `servername` pins one.
    pub fn for_host(&self, host: &str) -> Result<Self> {
        let mut tls = self.clone();
        if !self.pinned {
            tls.server_name = server_name(host)?;
        }
        Ok(tls)
    }
}

fn server_name(name: &str) -> Result<ServerName<'static>> {
    // an IPv6 literal comes out of the URL in brackets
    let name = name.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(name.to_owned()).map_err(|_| {
        invalid(format!(
            "tls.servername (or the url's host) {name:?} is neither a DNS name nor an IP address"
        ))
    })
}

fn invalid(msg: String) -> Error {
    Error::InvalidArgument(msg)
}

fn client_config(opts: &TlsConfig) -> Result<ClientConfig> {
    // ring, not aws-lc-rs: it cross-compiles for every platform package without cmake or NASM.
    // Deprecated for lacking post-quantum key exchange, which Redis servers (OpenSSL 3.0 and
    // the like) do not offer anyway.
    #[allow(deprecated)]
    let provider = Arc::new(ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid(format!("tls: {e}")))?;
    let builder = if opts.reject_unauthorized {
        builder.with_root_certificates(roots(opts.ca.as_deref())?)
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
    };
    match (&opts.cert, &opts.key) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_slice_iter(cert)
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| invalid(format!("tls.cert is not a PEM certificate chain: {e}")))?;
            if chain.is_empty() {
                return Err(invalid("tls.cert holds no PEM certificate".into()));
            }
            let key = PrivateKeyDer::from_pem_slice(key)
                .map_err(|e| invalid(format!("tls.key is not a PEM private key: {e}")))?;
            builder.with_client_auth_cert(chain, key).map_err(|e| {
                invalid(format!(
                    "tls.cert and tls.key do not make a client identity: {e}"
                ))
            })
        }
        (None, None) => Ok(builder.with_no_client_auth()),
        _ => Err(invalid(
            "tls.cert and tls.key go together: give both for mutual TLS, or neither".into(),
        )),
    }
}

/// The CAs in `ca` only, as Node.js does when `ca` is given; else Mozilla's roots.
fn roots(ca: Option<&[u8]>) -> Result<RootCertStore> {
    let Some(ca) = ca else {
        return Ok(RootCertStore::from_iter(
            webpki_roots::TLS_SERVER_ROOTS.iter().cloned(),
        ));
    };
    let mut store = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca) {
        let cert = cert.map_err(|e| invalid(format!("tls.ca is not PEM: {e}")))?;
        store.add(cert).map_err(|e| {
            invalid(format!(
                "tls.ca holds a certificate that cannot be a CA: {e}"
            ))
        })?;
    }
    if store.is_empty() {
        return Err(invalid("tls.ca holds no PEM certificate".into()));
    }
    Ok(store)
}

/// `rejectUnauthorized: false`: any certificate for any name is accepted. The handshake's
/// signatures are still checked, so the peer holds the key of the certificate it shows.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The message of a failed handshake: a certificate that did not verify says so, with the fix.
pub(crate) fn handshake_error(err: std::io::Error, name: &ServerName<'_>) -> Error {
    let tls = err
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match tls {
        Some(rustls::Error::InvalidCertificate(why)) => Error::Connection(format!(
            "TLS certificate verification failed for {}: {why:?}; pass the CA that signed the \
             server's certificate as tls.ca, or tls.servername when the certificate names another host",
            name.to_str()
        )),
        Some(other) => Error::Connection(format!("TLS handshake failed: {other}")),
        None => Error::Connection(format!("TLS handshake failed: {err}")),
    }
}
