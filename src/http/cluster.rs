//! The internal endpoint other replicas forward a thread's events to when this replica owns
//! the thread. Served only on the advertised port (never through the public Service) and
//! only with the shared cluster secret.
use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};

use crate::actors::{ThreadRegistry, UserMessage};
use crate::cluster::{Cluster, ForwardedMessage};

/// What the endpoint needs: who may call it, and where messages go.
pub struct ClusterEndpoint {
    pub cluster: Arc<Cluster>,
    pub registry: Arc<ThreadRegistry>,
}

/// `POST /internal/forward`: queues the message in its thread's actor (which claims the
/// thread, or forwards it on if another replica took it meanwhile) and answers 202 at once.
pub async fn forward(request: HttpRequest, endpoint: web::Data<ClusterEndpoint>, body: web::Bytes) -> HttpResponse {
    let authorization = request
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    if !endpoint.cluster.authorizes(authorization) {
        tracing::warn!("Refused a forwarded event without the cluster secret");
        return HttpResponse::Unauthorized().finish();
    }
    let message: ForwardedMessage = match serde_json::from_slice(&body) {
        Ok(message) => message,
        Err(error) => {
            tracing::warn!(%error, "Refused a forwarded event that does not parse");
            return HttpResponse::BadRequest().body("not a forwarded message");
        }
    };
    let (thread, message) = UserMessage::forwarded(message);
    endpoint.registry.dispatch(thread, message);
    HttpResponse::Accepted().finish()
}

/// Registers the internal endpoint.
pub fn configure(config: &mut web::ServiceConfig) {
    config.route(crate::cluster::FORWARD_PATH, web::post().to(forward));
}
