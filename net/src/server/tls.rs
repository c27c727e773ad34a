//! TLS for the service (rustls): the server's certificate chain and key
//! from PEM files, read once at start.

use futures_rustls::rustls;
use std::sync::Arc;

/// A rustls server configuration from a PEM certificate chain and a PEM
/// private key (PKCS#8, PKCS#1 or SEC1). Errors name the file, never its
/// contents.
pub fn server_config(cert_path: &str, key_path: &str) -> Result<Arc<rustls::ServerConfig>, String> {
    let read = |path: &str, what: &str| {
        std::fs::read(path).map_err(|e| format!("reading the TLS {what} {path}: {e}"))
    };
    let cert_pem = read(cert_path, "certificate")?;
    let certs = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("the TLS certificate {cert_path}: {e}"))?;
    if certs.is_empty() {
        return Err(format!(
            "the TLS certificate {cert_path} holds no PEM certificate"
        ));
    }
    let key_pem = read(key_path, "key")?;
    let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|e| format!("the TLS key {key_path}: {e}"))?
        .ok_or_else(|| format!("the TLS key {key_path} holds no PEM private key"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS protocol versions: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("the TLS certificate {cert_path} and key {key_path}: {e}"))?;
    Ok(Arc::new(config))
}
