//! The internal endpoints: the one other replicas forward a thread's events to when this
//! replica owns the thread, and the list of the threads it owns. Served only on the advertised
//! port (never through the public Service) and only with the shared cluster secret.
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
    if !endpoint.authorizes(&request) {
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

/// `GET /internal/threads`: this replica's name and the threads whose live actor here answers
/// them (`team/channel/thread ts`), as JSON.
pub async fn owned_threads(request: HttpRequest, endpoint: web::Data<ClusterEndpoint>) -> HttpResponse {
    if !endpoint.authorizes(&request) {
        return HttpResponse::Unauthorized().finish();
    }
    let owned: Vec<String> = endpoint.registry.owned_keys().iter().map(ToString::to_string).collect();
    HttpResponse::Ok().json(serde_json::json!({ "replica": endpoint.cluster.me, "owned": owned }))
}

impl ClusterEndpoint {
    fn authorizes(&self, request: &HttpRequest) -> bool {
        let authorization = request
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok());
        self.cluster.authorizes(authorization)
    }
}

/// Registers the internal endpoints.
pub fn configure(config: &mut web::ServiceConfig) {
    config
        .route(crate::cluster::FORWARD_PATH, web::post().to(forward))
        .route(crate::cluster::OWNED_THREADS_PATH, web::get().to(owned_threads));
}
