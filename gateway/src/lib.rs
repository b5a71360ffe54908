//! The fhirgate gateway: FHIR R4 REST over the sharded store.
//!
//! This is the only crate that knows HTTP, JWT and the OperationOutcome wire format; it wires
//! mappings (FHIR ⇄ model), store (PostgreSQL shards) and terminology together.
//! [`app`] builds the router that `fhirgate up` serves and that the tests start.

mod audit_events;
pub mod auth;
mod bundle;
pub mod capability;
mod chains;
pub mod checkpoint;
mod fhirpatch;
#[doc(hidden)]
pub mod fuzzing;
mod headers;
mod meta_ops;
pub mod outcome;
mod patching;
mod rest;
mod results;
mod terminology_ops;
mod transaction;
pub mod up;
mod validate;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::routing::{any, get};

pub use auth::AuthConfig;
pub use validate::{
    Icd10Undotted, Strictness, TerminologyPolicy, VersionMismatch, check_codes, parse_code_check,
};

/// Limits on what a client may send or ask for. Every one is configurable.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest request body, in bytes (413 above).
    pub max_body_bytes: usize,
    /// Deepest JSON nesting (400 above).
    pub max_json_depth: usize,
    /// Longest path plus query string, in bytes (414 above).
    pub max_url_bytes: usize,
    /// Page size when `_count` is not given.
    pub default_count: usize,
    /// Largest page size.
    pub max_count: usize,
    /// Most entries in a batch or transaction Bundle (400 above).
    pub max_bundle_entries: usize,
    /// How long a read (GET/HEAD) that found a shard unavailable is retried, transparently,
    /// while the shard's primary is found again (a failover); 503 after that.
    pub read_retry: std::time::Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 16 * 1024 * 1024,
            max_json_depth: 64,
            max_url_bytes: 8 * 1024,
            default_count: 20,
            max_count: 1000,
            max_bundle_entries: 10_000,
            read_retry: std::time::Duration::from_secs(10),
        }
    }
}

/// The gateway's settings.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Limits.
    pub limits: Limits,
    /// Token settings.
    pub auth: AuthConfig,
    /// The public base URL of the FHIR endpoint (e.g. `https://fhir.example.org/fhir`);
    /// derived from the `Host` header when absent.
    pub base_url: Option<String>,
    /// How codes of loaded code systems are checked on write.
    pub terminology_policy: TerminologyPolicy,
    /// Proxies whose `X-Forwarded-For` is believed (the client address is the last one
    /// before them); any other peer is the client itself.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// How long a break-glass window stays open after a clinician states a reason.
    pub break_glass_window: std::time::Duration,
}

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The store.
    pub store: store::Store,
    /// Settings.
    pub config: Arc<GatewayConfig>,
    /// Loaded code systems.
    pub terminology: Arc<terminology::Terminology>,
    /// FHIR requests answered (batch and transaction entries run as requests count too):
    /// each left exactly one audit record.
    pub answered: Arc<std::sync::atomic::AtomicU64>,
}

/// The router: FHIR under `/fhir`, operational endpoints at the root.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(rest::healthz))
        .route("/readyz", get(rest::readyz))
        .route("/metrics", get(rest::metrics))
        .route("/fhir", any(rest::dispatch))
        .route("/fhir/", any(rest::dispatch))
        .route("/fhir/{*rest}", any(rest::dispatch))
        .fallback(rest::not_found)
        .with_state(state)
}

/// Serves the app on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        app(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
