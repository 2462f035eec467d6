//! The HTTP surface beside Slack's endpoints: health, readiness and metrics.
use actix_web::web;

mod health;
mod metrics;

pub use health::Readiness;

/// Registers `/healthz`, `/readyz` and `/metrics`.
pub fn configure(config: &mut web::ServiceConfig) {
    config
        .route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .route("/metrics", web::get().to(metrics::metrics));
}
