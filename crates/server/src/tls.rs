//! HTTPS on the server's own listener (`serve --tls-cert FILE --tls-key FILE`), with rustls and
//! its `ring` provider, HTTP/1.1 only (ALPN `http/1.1`).
//!
//! The certificate is read from its files at start-up (a bad one is a one-line start-up error)
//! and again on [`CertResolver::reload`] (SIGHUP, see `serve()`): new connections get the new
//! certificate at once, connections in flight keep theirs, and a new certificate that does not
//! load leaves the old one in place with one warning. The eBPF accelerators see the bytes of
//! the socket, so they are for the plain listener (or behind a TLS-terminating proxy).

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// Where the certificate chain and its private key are read from (PEM files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A certificate or key that cannot be used; its message is one line naming the file.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TlsError(String);

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads and checks the files: a chain of at least one certificate, a private key the provider
/// can sign with, and the key matching the first certificate.
fn load(files: &TlsFiles, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let named = |p: &Path, e: &dyn std::fmt::Display| TlsError(format!("{}: {e}", p.display()));
    let chain = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| named(&files.cert, &e))?;
    if chain.is_empty() {
        return Err(named(&files.cert, &"no PEM certificate in the file"));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| named(&files.key, &e))?;
    CertifiedKey::from_der(chain, key, provider).map_err(|e| {
        TlsError(format!(
            "{} with {}: {e}",
            files.cert.display(),
            files.key.display()
        ))
    })
}

/// The server's certificate, swapped whole when the files are read again.
#[derive(Debug)]
pub struct CertResolver {
    files: TlsFiles,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
}

impl CertResolver {
    /// Loads the files once; an error here stops the start-up.
    pub fn open(files: TlsFiles) -> Result<Arc<Self>, TlsError> {
        let provider = provider();
        let key = load(&files, &provider)?;
        Ok(Arc::new(CertResolver {
            files,
            provider,
            current: RwLock::new(Arc::new(key)),
        }))
    }

    /// Reads the files again; on success new connections get the new certificate, otherwise the
    /// old one stays and the error is returned (and logged by the caller).
    pub fn reload(&self) -> Result<(), TlsError> {
        let key = load(&self.files, &self.provider)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(key);
        Ok(())
    }

    /// The rustls configuration of the listener: this resolver, no client certificates,
    /// HTTP/1.1.
    pub fn server_config(self: &Arc<Self>) -> Result<rustls::ServerConfig, TlsError> {
        let mut config = rustls::ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        )
    }
}

/// Reloads the certificate on every SIGHUP, for as long as the runtime runs.
pub(crate) fn reload_on_sighup(resolver: Arc<CertResolver>) -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            match resolver.reload() {
                Ok(()) => tracing::info!("TLS certificate reloaded"),
                Err(e) => tracing::warn!("TLS certificate not reloaded, the old one stays: {e}"),
            }
        }
    });
    Ok(())
}
