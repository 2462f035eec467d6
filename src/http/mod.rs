//! The HTTP surface beside Slack's endpoints: health, readiness and metrics.
use actix_web::web;

pub mod cluster;
mod health;
pub mod install;
mod metrics;

pub use health::Readiness;

/// Registers `/healthz` and `/readyz`.
pub fn configure(config: &mut web::ServiceConfig) {
    config
        .route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz));
}

/// Registers `/metrics` (on the main listener, or alone on `THREADQL_METRICS_LISTEN`).
pub fn configure_metrics(config: &mut web::ServiceConfig) {
    config.route("/metrics", web::get().to(metrics::metrics));
}
