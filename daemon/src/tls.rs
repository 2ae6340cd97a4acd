//! TLS with rustls: load the certificate and key, and swap them on SIGHUP.
//!
//! Certificates are renewed often (Let's Encrypt every 60–90 days). On SIGHUP the files are
//! read again; if they do not load, the old ones stay in use and the error is logged, so a
//! botched renewal never takes the gateway down. Connections already open keep the
//! configuration they started with.

use std::path::Path;
use std::sync::{Arc, RwLock};

use anyhow::{Context, Result, anyhow};
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::TlsFiles;

/// The current TLS configuration, replaced as a whole on reload.
#[derive(Clone)]
pub struct TlsState {
    files: TlsFiles,
    current: Arc<RwLock<Arc<ServerConfig>>>,
}

impl TlsState {
    pub fn load(files: &TlsFiles) -> Result<TlsState> {
        let config = load_server_config(files)?;
        Ok(TlsState {
            files: files.clone(),
            current: Arc::new(RwLock::new(Arc::new(config))),
        })
    }

    /// The configuration new connections use.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        let config = match self.current.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        tokio_rustls::TlsAcceptor::from(config)
    }

    /// Reads the files again; on failure the previous certificate stays in use.
    pub fn reload(&self) -> Result<()> {
        let config = load_server_config(&self.files)?;
        match self.current.write() {
            Ok(mut guard) => *guard = Arc::new(config),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(config),
        }
        Ok(())
    }
}

fn load_server_config(files: &TlsFiles) -> Result<ServerConfig> {
    let certs = load_certs(&files.cert)?;
    let key = load_key(&files.key)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            anyhow!(
                "`tls_cert` {} and `tls_key` {} do not make a usable pair: {e}",
                files.cert.display(),
                files.key.display()
            )
        })?;
    // gatehouse speaks HTTP/1.1 only; saying so lets browsers skip an h2 attempt.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| anyhow!("`tls_cert` {}: {e}", path.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow!("`tls_cert` {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(anyhow!(
            "`tls_cert` {}: no PEM certificate found in the file",
            path.display()
        ));
    }
    Ok(certs)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| {
        anyhow!(
            "`tls_key` {}: no usable PEM private key ({e})",
            path.display()
        )
    })
}
