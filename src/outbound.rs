//! HTTP clients for the services threadql calls (the language model, Snowflake, BigQuery, the
//! trace collector): reqwest 0.13 (async-openai's) over rustls with the ring provider and the
//! platform's trust store, so no process-wide crypto provider is needed.
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

/// The TLS set-up every client shares; `purpose` names the client in errors.
pub fn tls_config(purpose: &str) -> anyhow::Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls_platform_verifier::Verifier::new(provider.clone())
        .context("Failed to load the platform's TLS trust store")?;
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .with_context(|| format!("Failed to configure TLS for the {purpose}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth())
}

/// An async client over HTTP/1.1 whose requests give up after `request_timeout`.
pub fn http_client(
    purpose: &str,
    request_timeout: Duration,
    connect_timeout: Duration,
) -> anyhow::Result<reqwest_openai::Client> {
    let mut tls = tls_config(purpose)?;
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    reqwest_openai::Client::builder()
        .tls_backend_preconfigured(tls)
        .timeout(request_timeout)
        .connect_timeout(connect_timeout.min(request_timeout))
        .build()
        .with_context(|| format!("Failed to build the {purpose}'s HTTP client"))
}
