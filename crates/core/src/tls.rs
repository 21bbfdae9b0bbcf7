//! The TLS library's process-wide choice of cryptography.

/// Makes *ring* the process's rustls crypto provider, once; later calls do nothing.
///
/// rustls picks a provider by itself only when exactly one is compiled in. deltalake's
/// HTTP client (reqwest with rustls) brings aws-lc-rs beside the *ring* that tonic and the
/// registry's REST listener use, so every TLS server or client built without an explicit
/// provider would panic. Every binary calls this at start (through
/// [`crate::telemetry::init`]), and so does every place that builds TLS settings, for
/// library users.
pub fn install_provider() {
    // Err: a provider is installed already (ours or the embedding program's).
    let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_tls_client_can_be_built_after_install() {
        super::install_provider();
        super::install_provider();
        let roots = tokio_rustls::rustls::RootCertStore::empty();
        let _ = tokio_rustls::rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
    }
}
