//! `/healthz` (the process is up) and `/readyz` (its dependencies answer).
use std::sync::Arc;

use actix_web::{web, HttpResponse};

use crate::store::StateStore;
use crate::warehouse::Warehouse;

/// Dependencies `/readyz` checks.
pub struct Readiness {
    pub store: Arc<dyn StateStore>,
    pub warehouse: Arc<dyn Warehouse>,
}

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

pub async fn readyz(readiness: web::Data<Readiness>) -> HttpResponse {
    let (store, warehouse) = tokio::join!(readiness.store.ping(), readiness.warehouse.ping());
    let status = |ok: bool| if ok { "ok" } else { "unavailable" };
    let body = serde_json::json!({
        "state_store": status(store.is_ok()),
        "warehouse": status(warehouse.is_ok()),
    });
    if let Err(error) = &store {
        tracing::warn!(?error, "Readiness: state store unavailable");
    }
    if let Err(error) = &warehouse {
        tracing::warn!(%error, "Readiness: warehouse unavailable");
    }
    if store.is_ok() && warehouse.is_ok() {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}
