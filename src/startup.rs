//! Wiring: state store, warehouse, interpreter, thread actors and the HTTP server.
use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::{Server, Service};
use actix_web::middleware::Condition;
use actix_web::{web, App, HttpServer};
use anyhow::Context;
use futures::FutureExt;
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;
use tracing_actix_web::TracingLogger;

use crate::access::{AccessControl, NoGroups};
use crate::activity::Activity;
use crate::actors::{ThreadRegistry, Yielding};
use crate::cluster::Cluster;
use crate::config::{Config, WarehouseSource, SLACK_APP_TOKEN, SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET};
use crate::http::install::InstallEndpoint;
use crate::http::Readiness;
use crate::interpret::load::{load_model, ModelRefresh};
use crate::interpret::rules::RulesInterpreter;
use crate::interpret::{Interpreter, LlmInterpreter, LlmSettings};
use crate::limits::{IngressGate, QuerySlots, RedisBackend};
use crate::metrics::Metrics;
use crate::schedules::{ReportRunner, RunSummary};
use crate::slack::channel_directory::SlackChannelDirectory;
use crate::slack::ingress::SlackIngress;
use crate::slack::install::oauth::InstallSettings;
use crate::slack::install::InstallationStore;
use crate::slack::replier::SlackReplier;
use crate::slack::report_poster::SlackReportPoster;
use crate::slack::routes;
use crate::slack::socket_mode::{SocketMode, SocketModeSettings};
use crate::slack::user_groups::SlackUserGroups;
use crate::slack::verify::SignatureVerifier;
use crate::slack::web_api::{Outbox, SlackWebApi};
use crate::slack::workspaces::InstalledWorkspaces;
use crate::sql::SqlGuard;
use crate::store::{AuditRetention, StateStore};
use crate::telemetry::RequestSpan;
use crate::turn::{CompletionSpans, Replier, ThreadServices, TurnLimits};
use crate::warehouse::postgres::PostgresWarehouse;
use crate::warehouse::sqlite::SqliteWarehouse;
use crate::warehouse::{demo, Warehouse};

/// Rows fetched for an answer so its rows can be counted; beyond it the count reads "N+".
const ANSWER_FETCH_CAP: usize = 10_000;
/// A turn still working after this long shows "running…" with a Cancel button.
const PROGRESS_AFTER: std::time::Duration = std::time::Duration::from_secs(2);

/// What every front end (Slack server, terminal demo) shares.
pub struct Backends {
    pub store: Arc<dyn StateStore>,
    pub warehouse: Arc<dyn Warehouse>,
    pub interpreter: Arc<dyn Interpreter>,
    pub guard: SqlGuard,
    /// The roles in force and the columns they are checked against.
    pub access: Arc<AccessControl>,
    pub metrics: Metrics,
    /// Shared Redis for rate limits and dedupe; `None` keeps them in process.
    pub redis: Option<RedisBackend>,
    /// Caps on queries running at once (per user, and for the warehouse).
    pub slots: QuerySlots,
    /// This replica among several (`THREADQL_ADVERTISE_URL`); `None`: the only one.
    pub cluster: Option<Arc<Cluster>>,
}

impl Backends {
    /// Connects the state store (applying migrations), the warehouse (generating the demo data
    /// set when none is configured) and builds the interpreter over the warehouse's schema.
    pub async fn build(config: &Config) -> anyhow::Result<Self> {
        let metrics = Metrics::new().context("Failed to register metrics")?;
        let redis = match &config.redis_url {
            // Start-up does not wait for Redis: the backend connects (and reconnects) lazily.
            Some(url) => Some(
                RedisBackend::connect(url.expose())
                    .await
                    .context("REDIS_URL is not usable")?,
            ),
            None => None,
        };
        let store = crate::store::connect_and_migrate(config.database_url.expose()).await?;
        let warehouse = connect_warehouse(config).await?;
        // threadql.toml (or the demo model), completed from the described warehouse for the
        // tables it does not describe; joins guessed from names are checked against the data.
        let loaded = load_model(config, warehouse.as_ref(), config.query_timeout).await?;
        let guard = SqlGuard::new(warehouse.dialect(), Some(loaded.relations()));
        // Invalid roles stop the start: running without them would show everyone everything.
        let roles = AccessControl::read_roles(config.model_path.as_ref(), warehouse.dialect())?;
        let access = Arc::new(
            AccessControl::new(roles, Arc::new(NoGroups), warehouse.dialect())
                .with_audience_check(config.audience_check),
        );
        access.set_schema(&loaded.schema);
        let interpreter: Arc<dyn Interpreter> = match &config.openai {
            Some(openai) => Arc::new(
                LlmInterpreter::connect(
                    LlmSettings::from_config(openai),
                    &loaded,
                    warehouse.dialect(),
                    Some(store.clone()),
                    Some(metrics.clone()),
                )
                .context("Failed to set up the LLM interpreter (OPENAI_*)")?,
            ),
            None => Arc::new(RulesInterpreter::new(loaded.model, loaded.values, warehouse.dialect())),
        };
        let slots = QuerySlots::new(config.max_queries_per_user, config.max_queries);
        let cluster = match &config.cluster {
            Some(cluster) => Some(Arc::new(Cluster::new(
                replica_name(),
                cluster.advertise_url.to_string(),
                cluster.lease,
                cluster.secret.clone(),
            )?)),
            None => None,
        };
        Ok(Self {
            cluster,
            store,
            warehouse,
            interpreter,
            guard,
            access,
            metrics,
            redis,
            slots,
        })
    }

    /// Thread-actor services replying through `replier`.
    pub fn thread_services(&self, config: &Config, replier: Arc<dyn Replier>) -> Arc<ThreadServices> {
        // Each chat completion is a span of the turn's trace.
        let interpreter: Arc<dyn Interpreter> = match &config.openai {
            Some(openai) => Arc::new(CompletionSpans::new(self.interpreter.clone(), openai.model.clone())),
            None => self.interpreter.clone(),
        };
        Arc::new(ThreadServices {
            interpreter,
            guard: self.guard.clone(),
            warehouse: self.warehouse.clone(),
            store: self.store.clone(),
            replier,
            metrics: self.metrics.clone(),
            slots: self.slots.clone(),
            limits: TurnLimits {
                max_rows: config.max_rows,
                answer_fetch_cap: ANSWER_FETCH_CAP.max(config.max_rows),
                export_max_rows: config.export_max_rows,
                query_timeout: config.query_timeout,
                confirm_above: config.confirm_above,
                refuse_above: config.refuse_above,
                daily_budgets: config.daily_budgets,
                idle_after: config.idle_after,
                progress_after: PROGRESS_AFTER,
            },
            timezone: config.timezone,
            reactions: config.reactions,
            turn_permits: crate::turn::TurnQueue::new(MAX_TURNS_IN_FLIGHT),
            access: self.access.clone(),
            admins: config.admins.clone(),
            cluster: self.cluster.clone(),
        })
    }
}

/// How far past its grace (`THREADQL_SHUTDOWN_GRACE`) a stopping `threadql serve` may run
/// before its watchdog ends the process: the drain itself gives up at the grace, so only a
/// stuck main thread or a runtime teardown waiting on a blocking task gets this far.
const WATCHDOG_SLACK: std::time::Duration = std::time::Duration::from_secs(1);
/// Turns running at once across all threads (see `ThreadServices::turn_permits`). Well above the
/// warehouse's query cap, so cheap turns (help, show sql, undo) are not stuck behind queries.
const MAX_TURNS_IN_FLIGHT: usize = 1024;
/// Scheduling priority of the thread-actor arbiters (see `ThreadRegistry::start`): acks first.
/// Priority alone left the answers whatever the acks did not use, which swung by half from run
/// to run (nice 17: 1,947-4,939 answers/s during a closed-loop burst); so the arbiters run only a
/// little below the HTTP workers, high enough to take their share, and `ACTOR_BURST_SHARE` caps
/// it (BENCHMARKS.md, "Bursts and memory").
const ACTOR_NICE: i32 = 5;
/// During a burst, the share of a core each thread-actor arbiter may use (`actors::burst`).
/// Measured, three runs each (arbiters' CPU / answers during the burst / acks against the bare
/// handler): nice 12 with 0.15, 0.19-0.22 cores / 2,518-2,746/s / 0.69-0.75x; nice 8 with 0.19
/// (not reached), 0.26 / 2,526-3,116/s / 0.60-0.65x; nice 0 with 0.15, 0.27 / 2,965-3,647/s /
/// 0.59-0.66x and cores left idle in the pauses; nice 5 with 0.17, 0.29 / 3,649-3,699/s /
/// 0.63-0.69x.
const ACTOR_BURST_SHARE: f64 = 0.17;
/// HTTP workers per core (actix's default is one). An ack waits on Redis and a worker is one
/// thread, so with one per core the cores sat idle while acks waited; two per core measured
/// 46,500 -> 60,200 acks/s in process and 15,700 -> 22,000 with Redis (BENCHMARKS.md).
const HTTP_WORKERS_PER_CORE: usize = 2;

/// This process as the runs it claims name it: the host (the pod's name in Kubernetes) and a
/// random suffix, unique across restarts.
pub fn replica_name() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "threadql".to_string());
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}-{}", &suffix[..8])
}

/// Opens the configured warehouse, or the demo data set (generated on first use).
pub async fn connect_warehouse(config: &Config) -> anyhow::Result<Arc<dyn Warehouse>> {
    match &config.warehouse {
        WarehouseSource::Demo(path) => {
            demo::ensure_demo_warehouse(path, config.today())
                .await
                .with_context(|| {
                    format!(
                        "Failed to create the demo warehouse at {} (THREADQL_DEMO_WAREHOUSE)",
                        path.display()
                    )
                })?;
            let url = format!("sqlite://{}", path.display());
            Ok(Arc::new(
                SqliteWarehouse::connect(&url)
                    .await
                    .context("Failed to open the demo warehouse")?,
            ))
        }
        WarehouseSource::Url(url) if url.starts_with("postgres") => Ok(Arc::new(
            PostgresWarehouse::connect(url.expose())
                .await
                .context("Failed to connect to WAREHOUSE_URL")?,
        )),
        WarehouseSource::Url(url) if url.starts_with("sqlite:") => Ok(Arc::new(
            SqliteWarehouse::connect(url.expose())
                .await
                .context("Failed to open WAREHOUSE_URL")?,
        )),
        WarehouseSource::Url(url) if url.starts_with("mysql://") || url.starts_with("mariadb://") => Ok(Arc::new(
            crate::warehouse::mysql::MySqlWarehouse::connect(url.expose())
                .await
                .context("Failed to connect to WAREHOUSE_URL")?,
        )),
        WarehouseSource::Snowflake(snowflake) => Ok(Arc::new(
            crate::warehouse::snowflake::SnowflakeWarehouse::connect(snowflake)
                .await
                .with_context(|| format!("Failed to connect to Snowflake ({snowflake})"))?,
        )),
        WarehouseSource::Url(url) if url.starts_with("bigquery://") => {
            let settings = config
                .bigquery
                .as_ref()
                .context("WAREHOUSE_URL: the bigquery:// settings were not read")?;
            Ok(Arc::new(
                crate::warehouse::bigquery::BigQueryWarehouse::connect(settings)
                    .context("Failed to set up the BigQuery warehouse (GOOGLE_APPLICATION_CREDENTIALS)")?,
            ))
        }
        WarehouseSource::Url(_) => {
            anyhow::bail!("WAREHOUSE_URL: use postgres://, mysql://, mariadb://, snowflake://, bigquery:// or sqlite:")
        }
    }
}

/// The Slack server: HTTP listener plus thread actors.
pub struct Application {
    port: u16,
    server: Server,
    /// `/metrics` on its own listener, when `THREADQL_METRICS_LISTEN` is set.
    metrics_server: Option<SideServer>,
    /// The internal endpoint other replicas forward events to (`THREADQL_ADVERTISE_URL`).
    cluster_server: Option<SideServer>,
    registry: Arc<ThreadRegistry>,
    /// Socket Mode connections, when `SLACK_APP_TOKEN` is set.
    socket_mode: Option<SocketMode>,
    handle: AppHandle,
    shutdown_grace: std::time::Duration,
}

/// A handle on a running [`Application`]: whether it still has work under way, and a way to
/// stop it. Cheap to clone.
#[derive(Clone)]
pub struct AppHandle {
    activity: Arc<Activity>,
    registry: std::sync::Weak<ThreadRegistry>,
    outbox: Arc<Outbox>,
    stop: CancellationToken,
    reports: Arc<ReportRunner>,
}

impl AppHandle {
    /// Runs the schedules due at `at` (what the poll of `THREADQL_SCHEDULE_POLL_SECS` does with
    /// the clock's time): tests drive schedules through their fire times with it.
    pub async fn run_due_reports(&self, at: chrono::DateTime<chrono::Utc>) -> anyhow::Result<RunSummary> {
        Ok(self.reports.run_due(at).await?)
    }

    /// Resolves once no dispatched message's turn is under way and nothing is queued or in
    /// flight to Slack (at once when that is already so). Work that starts later (a message
    /// still to arrive, a Socket Mode envelope not acked yet) is not waited for, nor is a thread
    /// woken without a message (a restart's "I was restarted while…" notice).
    pub async fn wait_until_idle(&self) {
        self.activity.wait_until_idle().await;
    }

    pub fn is_idle(&self) -> bool {
        self.activity.is_idle()
    }

    /// Messages dispatched whose turn is not over.
    pub fn backlog(&self) -> usize {
        self.registry.upgrade().map_or(0, |registry| registry.backlog())
    }

    /// Slack calls queued or in flight.
    pub fn outbox(&self) -> usize {
        self.outbox.pending()
    }

    /// Live thread actors (0 once every idle one has passivated).
    pub fn live_threads(&self) -> usize {
        self.registry.upgrade().map_or(0, |registry| registry.live_threads())
    }

    /// Starts the bounded stop of [`Application::run_until_stopped`] (as SIGTERM does).
    pub fn stop(&self) {
        self.stop.cancel();
    }
}

/// How a stop went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped {
    /// Work still under way when the grace ran out; `None` when everything finished.
    pub abandoned: Option<Abandoned>,
    pub took: std::time::Duration,
}

/// Work a stop left behind (see [`Stopped`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Abandoned {
    /// Messages whose turn was not over: their threads are told after the restart when the
    /// turn had a query in flight.
    pub turns: usize,
    /// Replies and reactions Slack had not taken.
    pub slack_calls: usize,
    /// Whether the HTTP server or Socket Mode had not finished closing either.
    pub intake: bool,
}

impl Application {
    /// Builds everything and binds the listener (port 0 picks a free port). Must run inside an
    /// actix `System` (`#[actix_web::main]`, `actix_rt::System`).
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        // With an app-level token Slack comes over Socket Mode and no signing secret is needed;
        // without one, the HTTP Slack endpoints get an unguessable secret and refuse everything.
        let signing_secret: SecretString = match (&config.slack.signing_secret, &config.slack.app_token) {
            (Some(secret), _) => secret.clone(),
            (None, Some(_)) => SecretString::from(format!("{}{}", uuid::Uuid::new_v4(), uuid::Uuid::new_v4())),
            (None, None) => anyhow::bail!(
                "{SLACK_SIGNING_SECRET} is required to serve Slack over HTTP (or set {SLACK_APP_TOKEN} for Socket Mode)"
            ),
        };
        // Installed through OAuth, each workspace's token comes from its installation instead.
        let bot_token = match (&config.slack.bot_token, &config.installs) {
            (Some(token), _) => token.clone(),
            (None, Some(_)) => SecretString::from(String::new()),
            (None, None) => anyhow::bail!(
                "{SLACK_BOT_TOKEN} is required to post answers (or SLACK_CLIENT_ID and SLACK_CLIENT_SECRET to install into workspaces through OAuth)"
            ),
        };
        let backends = Backends::build(&config).await?;
        backends.store.instrument(&backends.metrics);
        // Turns and the replies they queue count as one: see `Activity`.
        let activity = Activity::new();
        let mut api = SlackWebApi::new(&config.slack.api_url, &bot_token, backends.metrics.clone())?
            .with_activity(activity.clone());
        // Two pools of the same store: a Postgres connection belongs to the runtime that opened
        // it, and the HTTP workers (install pages, uninstall events) stop before a draining
        // server's turns (which read their workspace's token) are over.
        let (installs, install_pages) = match &config.installs {
            Some(settings) => (
                Some(Arc::new(installation_store(&config, settings)?)),
                Some(Arc::new(installation_store(&config, settings)?)),
            ),
            None => (None, None),
        };
        let install_endpoint = match (&config.installs, &installs, &install_pages) {
            (Some(settings), Some(installs), Some(pages_store)) => {
                let app = InstallSettings::with_manifest_scopes(
                    settings.client_id.clone(),
                    settings.client_secret.clone(),
                    settings.redirect_uri.clone(),
                    config.slack.api_url.clone(),
                )
                .context("Failed to build Slack's authorize URL")?;
                api = api.with_workspaces(Arc::new(InstalledWorkspaces::new(installs.clone(), app.clone())?));
                Some(web::Data::new(InstallEndpoint::new(app, pages_store.clone())?))
            }
            _ => None,
        };
        backends.access.set_groups(Arc::new(SlackUserGroups::new(api.clone())));
        let bot_user = match (&installs, api.bot_user_id().await) {
            // One bot per workspace: each event's authorizations name it.
            (Some(_), _) => None,
            (None, Ok(user)) => Some(user),
            (None, Err(error)) => {
                tracing::warn!(%error, "auth.test failed; the bot's user id will come from each event's authorizations");
                None
            }
        };
        backends
            .access
            .set_directory(Arc::new(SlackChannelDirectory::new(api.clone(), bot_user.clone())));
        let replier: Arc<dyn Replier> = Arc::new(SlackReplier::new(api.clone(), config.max_rows));
        let services = backends.thread_services(&config, replier);
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let registry = ThreadRegistry::start_counting_in(
            services.clone(),
            cores,
            Yielding {
                nice: ACTOR_NICE,
                burst_share: Some(ACTOR_BURST_SHARE),
            },
            activity.clone(),
        );
        let reports = Arc::new(ReportRunner::new(
            services,
            Arc::new(SlackReportPoster::new(api.clone(), config.max_rows)),
            replica_name(),
        ));

        // Questions a previous process was working on when it stopped get an answer now. With
        // several replicas the lease sweep does it, for threads whose owner's lease has passed
        // (not those a live replica is answering).
        let in_flight = match backends.cluster {
            Some(_) => Ok(Vec::new()),
            None => backends.store.threads_with_query_in_flight().await,
        };
        match in_flight {
            Ok(threads) => {
                for thread in threads {
                    registry.activate(thread);
                }
            }
            Err(error) => tracing::warn!(?error, "Failed to look for questions interrupted by a restart"),
        }
        let handle = AppHandle {
            activity,
            registry: Arc::downgrade(&registry),
            outbox: api.outbox(),
            stop: CancellationToken::new(),
            reports: reports.clone(),
        };
        if let Some(every) = config.schedule_poll {
            reports.spawn(every, handle.stop.clone());
        }
        ModelRefresh::new(
            config.clone(),
            backends.warehouse.clone(),
            backends.interpreter.clone(),
            backends.guard.clone(),
        )
        .with_access(backends.access.clone())
        .spawn(handle.stop.clone());
        if let Some(path) = &config.model_path {
            backends.access.watch(path.clone(), handle.stop.clone());
        }
        AuditRetention::new(
            backends.store.clone(),
            config.audit_retention_days,
            backends.metrics.clone(),
        )
        .spawn(handle.stop.clone());
        let ingress = web::Data::new(SlackIngress {
            verifier: SignatureVerifier::new(signing_secret),
            registry: registry.clone(),
            access: backends.access.clone(),
            gate: IngressGate::per_minute(
                config.rate_limit_per_minute,
                backends.redis.clone(),
                config.redis_prefix.clone(),
            )
            .with_metrics(backends.metrics.clone()),
            rate_limit_per_minute: config.rate_limit_per_minute.get(),
            slack: api.clone(),
            installs: install_pages.clone(),
            bot_user,
            interpreter: backends.interpreter.clone(),
            metrics: backends.metrics.clone(),
            max_backlog: config.max_backlog,
            shedding: std::sync::atomic::AtomicBool::new(false),
        });
        let socket_mode = config.slack.app_token.clone().map(|app_token| {
            SocketMode::start(
                ingress.clone().into_inner(),
                api,
                app_token,
                SocketModeSettings::new(config.socket_connections),
            )
        });
        let readiness = web::Data::new(Readiness {
            store: backends.store.clone(),
            warehouse: backends.warehouse.clone(),
        });
        let metrics = web::Data::new(backends.metrics.clone());
        let http_metrics = backends.metrics.clone();
        let listener = TcpListener::bind(config.listen)
            .with_context(|| format!("Failed to bind THREADQL_LISTEN {}", config.listen))?;
        let port = listener
            .local_addr()
            .context("Failed to read the bound address")?
            .port();
        let metrics_apart = config.metrics_listen.is_some();
        let metrics_alone = metrics.clone();
        let server = HttpServer::new(move || {
            App::new()
                // A request's span is the root of its trace; without traces it is not made.
                .wrap(Condition::new(
                    crate::telemetry::exports_traces(),
                    TracingLogger::<RequestSpan>::new(),
                ))
                .wrap_fn({
                    let metrics = http_metrics.clone();
                    move |request, service| {
                        let started = std::time::Instant::now();
                        let metrics = metrics.clone();
                        service.call(request).map(move |result| {
                            if let Ok(response) = &result {
                                metrics.observe_http(
                                    response.request().match_pattern().as_deref(),
                                    response.status().as_u16(),
                                    started.elapsed().as_secs_f64(),
                                );
                            }
                            result
                        })
                    }
                })
                .app_data(ingress.clone())
                .app_data(readiness.clone())
                .app_data(metrics.clone())
                .configure(routes::configure)
                .configure(crate::http::configure)
                .configure(|routes| {
                    if !metrics_apart {
                        crate::http::configure_metrics(routes);
                    }
                    if let Some(endpoint) = &install_endpoint {
                        routes.app_data(endpoint.clone());
                        crate::http::install::configure(routes);
                    }
                })
        })
        .workers(cores * HTTP_WORKERS_PER_CORE)
        // Signals are ours (see `run_until_signalled`): actix-web's own SIGTERM handling would
        // also stop the actix System, and with it the thread actors' arbiters, cutting the
        // turns under way off instead of letting them finish.
        .disable_signals()
        // actix-web waits 30 s by default for requests in flight when stopping (a client that
        // never finishes sending its request holds it that long); the stop has one budget.
        .shutdown_timeout(config.shutdown_grace.as_secs())
        .listen(listener)
        .context("Failed to start the HTTP server")?
        .run();
        let metrics_server = match config.metrics_listen {
            Some(address) => Some(SideServer::start("THREADQL_METRICS_LISTEN", address, move |routes| {
                routes.app_data(metrics_alone.clone());
                crate::http::configure_metrics(routes);
            })?),
            None => None,
        };
        // Other replicas forward this one's threads' events to the advertised port.
        let cluster_server = match (&backends.cluster, &config.cluster) {
            (Some(cluster), Some(settings)) => {
                let port = settings.advertise_url.port_or_known_default().unwrap_or(80);
                let endpoint = web::Data::new(crate::http::cluster::ClusterEndpoint {
                    cluster: cluster.clone(),
                    registry: registry.clone(),
                });
                let address = std::net::SocketAddr::new(config.listen.ip(), port);
                Some(SideServer::start(
                    "the THREADQL_ADVERTISE_URL port",
                    address,
                    move |routes| {
                        routes.app_data(endpoint.clone());
                        crate::http::cluster::configure(routes);
                    },
                )?)
            }
            _ => None,
        };
        Ok(Self {
            port,
            server,
            metrics_server,
            cluster_server,
            registry,
            socket_mode,
            handle,
            shutdown_grace: config.shutdown_grace,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port `/metrics` is served on when `THREADQL_METRICS_LISTEN` is set (`None`: on
    /// [`Application::port`]).
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics_server.as_ref().map(|server| server.port)
    }

    /// Stops the HTTP server only (the benchmark's baseline runs use it).
    pub fn server_handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// What the server still has under way, and a way to stop it.
    pub fn handle(&self) -> AppHandle {
        self.handle.clone()
    }

    pub fn registry(&self) -> Arc<ThreadRegistry> {
        self.registry.clone()
    }

    /// [`Application::run_until_stopped`], stopped by SIGTERM or SIGINT, for `threadql serve`.
    /// The stop takes at most `THREADQL_SHUTDOWN_GRACE`; should the process still be there
    /// [`WATCHDOG_SLACK`] later (a thread stuck where no deadline reaches it), a watchdog
    /// thread ends it. A second signal ends it at once.
    pub async fn run_until_signalled(self) -> anyhow::Result<Stopped> {
        let handle = self.handle();
        let bound = self.shutdown_grace + WATCHDOG_SLACK;
        let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("Failed to listen for SIGTERM")?;
        let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
            .context("Failed to listen for SIGINT")?;
        actix_rt::spawn(async move {
            let signal = tokio::select! {
                _ = terminate.recv() => "SIGTERM",
                _ = interrupt.recv() => "SIGINT",
            };
            tracing::info!(signal, "Stopping");
            arm_watchdog(bound);
            handle.stop();
            tokio::select! {
                _ = terminate.recv() => {},
                _ = interrupt.recv() => {},
            }
            tracing::warn!("A second signal: exiting without waiting for the stop to finish");
            std::process::exit(1);
        });
        Ok(self.run_until_stopped().await?)
    }

    /// Serves until [`AppHandle::stop`] (or until the HTTP server stops through
    /// [`Application::server_handle`]), then stops within `THREADQL_SHUTDOWN_GRACE`, all steps
    /// under one deadline: the HTTP server and Socket Mode stop taking messages (requests in
    /// flight finish, acks due are sent), then the turns under way finish and their replies reach
    /// Slack. What is still under way at the deadline is logged and left: a turn stuck on the
    /// CPU or in a warehouse query that ignores cancellation, a reply Slack keeps refusing.
    pub async fn run_until_stopped(self) -> std::io::Result<Stopped> {
        let Self {
            server,
            metrics_server,
            cluster_server,
            registry,
            socket_mode,
            handle,
            shutdown_grace,
            ..
        } = self;
        let http = server.handle();
        let mut server = std::pin::pin!(server);
        let served = tokio::select! {
            served = &mut server => Some(served),
            () = handle.stop.cancelled() => None,
        };
        let started = tokio::time::Instant::now();
        let deadline = started + shutdown_grace;
        tracing::info!(
            grace_ms = shutdown_grace.as_millis() as u64,
            turns = registry.backlog(),
            slack_calls = handle.outbox(),
            "Stopping: no new messages; the turns under way finish first"
        );
        let intake = async {
            let stop_http = async {
                match served {
                    Some(served) => served,
                    // The server future runs the stop, so it is polled alongside.
                    None => futures::join!(http.stop(true), server).1,
                }
            };
            let stop_socket_mode = async {
                if let Some(socket_mode) = socket_mode {
                    socket_mode.shutdown().await;
                }
            };
            // Other replicas keep this one's messages (and claim its threads once released).
            let stop_forwarded = async {
                if let Some(cluster_server) = cluster_server {
                    cluster_server.stop().await;
                }
            };
            futures::join!(stop_http, stop_socket_mode, stop_forwarded).0
        };
        let (served, intake_stopped) = match tokio::time::timeout_at(deadline, intake).await {
            Ok(served) => (served, true),
            Err(_) => (Ok(()), false),
        };
        let drained = tokio::time::timeout_at(deadline, handle.wait_until_idle())
            .await
            .is_ok();
        // The turns are over: the other replicas may take the threads now, not a lease later.
        let _ = tokio::time::timeout_at(deadline, registry.release_leases()).await;
        // Scraped until the drain is over, so the last turns show in the metrics.
        if let Some(metrics_server) = metrics_server {
            let _ = tokio::time::timeout_at(deadline, metrics_server.stop()).await;
        }
        let took = started.elapsed();
        let abandoned = (!drained || !intake_stopped).then(|| Abandoned {
            turns: registry.backlog(),
            slack_calls: handle.outbox(),
            intake: !intake_stopped,
        });
        match abandoned {
            None => tracing::info!(took_ms = took.as_millis() as u64, "Stopped: every turn finished"),
            Some(left) => tracing::warn!(
                turns = left.turns,
                slack_calls = left.slack_calls,
                intake_still_closing = left.intake,
                grace_ms = shutdown_grace.as_millis() as u64,
                "Stopping with work unfinished after the grace; a question whose query was in flight is \
                 reported in its thread after the restart"
            ),
        }
        served.map(|()| Stopped { abandoned, took })
    }
}

/// The installations of an OAuth app, in the state store's Postgres (its migrations made the
/// table). A pool of its own, opened lazily: installs and token reads are rare.
pub fn installation_store(
    config: &Config,
    installs: &crate::config::InstallsConfig,
) -> anyhow::Result<InstallationStore> {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .connect_lazy(config.database_url.expose())
        .context("DATABASE_URL is not a Postgres URL the installation store can use")?;
    let keys = crate::slack::install::SealingKeys::new(&installs.encryption_key, installs.previous_key.as_ref())
        .map_err(|error| anyhow::anyhow!("configuration error: {error}"))?;
    Ok(InstallationStore::new(pool, keys))
}

/// A listener of its own beside the main one: `/metrics` on `THREADQL_METRICS_LISTEN`, or the
/// cluster's internal endpoint on the advertised port, so neither need be public.
struct SideServer {
    port: u16,
    handle: actix_web::dev::ServerHandle,
    running: actix_rt::task::JoinHandle<std::io::Result<()>>,
}

impl SideServer {
    fn start(
        what: &str,
        address: std::net::SocketAddr,
        configure: impl Fn(&mut web::ServiceConfig) + Clone + Send + 'static,
    ) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(address).with_context(|| format!("Failed to bind {what} {address}"))?;
        let port = listener
            .local_addr()
            .with_context(|| format!("Failed to read the address of {what}"))?
            .port();
        let server = HttpServer::new(move || App::new().configure(configure.clone()))
            .workers(1)
            .disable_signals()
            .shutdown_timeout(1)
            .listen(listener)
            .with_context(|| format!("Failed to start the server of {what}"))?
            .run();
        let handle = server.handle();
        Ok(Self {
            port,
            handle,
            running: actix_rt::spawn(server),
        })
    }

    async fn stop(self) {
        self.handle.stop(true).await;
        let _ = self.running.await;
    }
}

/// Ends the process after `bound` unless it has exited by then: the last resort behind the
/// stop's own deadline, for what no deadline reaches (a runtime teardown waiting on a blocking
/// task, a thread stuck outside the async code). A plain thread, so a busy runtime cannot delay it.
fn arm_watchdog(bound: std::time::Duration) {
    let armed = std::thread::Builder::new()
        .name("shutdown-watchdog".into())
        .spawn(move || {
            std::thread::sleep(bound);
            tracing::error!(
                bound_ms = bound.as_millis() as u64,
                "Still running after the shutdown grace; exiting now"
            );
            std::process::exit(1);
        });
    if let Err(error) = armed {
        tracing::warn!(%error, "Failed to start the shutdown watchdog; the stop relies on its own deadline");
    }
}
