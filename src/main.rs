use std::num::NonZeroUsize;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use threadql::audit_command::{AuditQuery, Since, DEFAULT_LIMIT};
use threadql::config::Config;

/// jemalloc rather than glibc's malloc: under a burst of new threads malloc was a quarter of the
/// answer path's CPU, and glibc kept the freed heap resident once the burst drained
/// (BENCHMARKS.md, "Bursts and memory").
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options (read at its start): its background thread gives freed pages back to the
/// system after about a second unused (the default waits ten, then keeps them "muzzy"), so a
/// server whose burst is over shrinks without waiting for its next allocation.
#[export_name = "_rjem_malloc_conf"]
static ALLOCATOR_OPTIONS: &u8 = &b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0\0"[0];

const ENVIRONMENT_HELP: &str = "\
Configuration (environment, or a .env file):
  THREADQL_LISTEN                 HTTP listen address [127.0.0.1:3000]
  THREADQL_METRICS_LISTEN         separate listener for /metrics, e.g. 0.0.0.0:9100 [unset: on THREADQL_LISTEN]
  SLACK_SIGNING_SECRET            verifies inbound Slack requests (required by serve)
  SLACK_BOT_TOKEN                 xoxb- token for the Web API (required by serve and schedules run)
  SLACK_CLIENT_ID, SLACK_CLIENT_SECRET  instead of SLACK_BOT_TOKEN: install into workspaces through OAuth
                                  (/slack/install); needs Postgres [one workspace]
  THREADQL_ENCRYPTION_KEY         32 bytes (hex or base64) sealing installed workspaces' tokens [required with the above]
  THREADQL_ENCRYPTION_KEY_PREVIOUS  the key before a rotation, still opening (see `installations rekey`) [none]
  SLACK_REDIRECT_URI              the app's OAuth redirect URL (https://…/slack/oauth_redirect) [the app's only one]
  SLACK_APP_TOKEN                 xapp- token: serve over Socket Mode (no public URL needed)
  THREADQL_SOCKET_CONNECTIONS     Socket Mode connections kept open [2]
  SLACK_API_URL                   Web API base URL [https://slack.com/api/]
  DATABASE_URL                    state store: postgres://… or sqlite:… [sqlite://threadql.db]
  WAREHOUSE_URL                   data to query: postgres://…, mysql://… (MySQL, MariaDB), sqlite:…,
                                  snowflake://<account>/<database>/<schema>?warehouse=…&role=…&user=… or
                                  bigquery://<project>/<dataset>?location=<loc> [embedded demo data set]
  SNOWFLAKE_USER                  Snowflake user when the URL has no user= [none]
  SNOWFLAKE_PRIVATE_KEY_PATH      Snowflake key-pair auth: the user's PKCS#8 PEM private key (unencrypted) [none]
  SNOWFLAKE_PRIVATE_KEY           the same key as PEM text, instead of a path [none]
  SNOWFLAKE_API_URL               Snowflake SQL API base [https://<account>.snowflakecomputing.com]
  GOOGLE_APPLICATION_CREDENTIALS  service-account key file (JSON) of a bigquery:// warehouse
  BIGQUERY_API_URL                BigQuery REST API base URL [https://bigquery.googleapis.com]
  BIGQUERY_MAXIMUM_BYTES_BILLED   bytes one BigQuery query may bill, else it fails [10737418240]
  THREADQL_DEMO_WAREHOUSE         path of the generated demo data set [threadql-demo.db]
  THREADQL_CONFIG                 threadql.toml with the semantic model [./threadql.toml, else the demo model]
  THREADQL_DBT_PROJECT            dbt project whose MetricFlow semantic models and metrics are read [none]
  REDIS_URL                       shared rate limits and dedupe [in process]
  THREADQL_REDIS_PREFIX           prefix of every Redis key [threadql:]
  OPENAI_API_KEY                  enables the LLM interpreter [rules interpreter]
  OPENAI_BASE_URL                 any OpenAI-compatible server [https://api.openai.com/v1]
  OPENAI_MODEL                    model name [gpt-4o-mini]
  THREADQL_RATE_LIMIT_PER_MINUTE  questions per user per minute [10]
  THREADQL_MAX_QUERIES_PER_USER   queries one user may have running [2]
  THREADQL_MAX_QUERIES            queries running at once against the warehouse [8]
  THREADQL_MAX_BACKLOG            unfinished messages before new threads are refused for Slack to retry [200000]
  THREADQL_MAX_ROWS               rows shown in an answer [20]
  THREADQL_EXPORT_MAX_ROWS        rows in a CSV export [100000]
  THREADQL_QUERY_TIMEOUT_SECS     statement timeout [30]
  THREADQL_CONFIRM_ABOVE          cost guard: ask \"Run anyway\" above this estimate (10GB, 5M rows) [off]
  THREADQL_REFUSE_ABOVE           cost guard: refuse above this estimate (10GB, 5M rows) [off]
  THREADQL_DAILY_BYTES_PER_USER   what one user's queries may read per UTC day (50GB) [off]
  THREADQL_DAILY_BYTES_PER_CHANNEL  the same for one channel [off]
  THREADQL_IDLE_SECS              passivate an idle thread after [900]
  THREADQL_SHUTDOWN_GRACE         seconds a stop (SIGTERM, SIGINT) may take before the process exits anyway [20]
  THREADQL_MODEL_REFRESH_SECS     seconds between re-reads of the warehouse schema (new tables, columns, values) [3600]
  THREADQL_AUDIT_RETENTION_DAYS   days audit rows are kept (deleted hourly by serve); 0 keeps them forever [90]
  THREADQL_SCHEDULE_POLL_SECS     seconds between serve's looks for due schedules; 0 runs none (see `schedules run`) [30]
  THREADQL_ADMINS                 Slack user ids who list and change everyone's schedules (U0123,U0456) [none]
  THREADQL_ADVERTISE_URL          several replicas: where the others reach this one (http://10.0.3.7:8081);
                                  served on its port, internal only; needs Postgres [one replica]
  THREADQL_CLUSTER_SECRET         shared secret of the replicas' internal endpoint [required with the above]
  THREADQL_LEASE_SECS             how long a replica keeps a thread without renewing (renewed every third) [10]
  THREADQL_TIMEZONE               zone for \"last month\", \"yesterday\" [UTC]
  THREADQL_REACTIONS              eyes / check / warning reactions on questions [on]
  THREADQL_LOG_FORMAT             text or json [text]; RUST_LOG filters
  OTEL_EXPORTER_OTLP_ENDPOINT     OpenTelemetry traces over OTLP/HTTP to this collector (also
                                  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT and the standard OTEL_* variables:
                                  OTEL_SERVICE_NAME [threadql], OTEL_TRACES_SAMPLER, headers, timeout) [no traces]";

/// Ask data questions in Slack threads and refine them back and forth.
#[derive(Parser)]
#[command(name = "threadql", version, about, after_help = ENVIRONMENT_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve Slack: Events API, interactivity and slash commands over HTTP, or Socket Mode when
    /// SLACK_APP_TOKEN is set.
    Serve,
    /// An interactive thread in the terminal over the embedded defaults (no Slack, no LLM).
    Demo,
    /// Apply pending migrations to DATABASE_URL.
    Migrate,
    /// Validate the configuration and reach every configured dependency.
    Check,
    /// Print the semantic model in use (threadql.toml and/or the dbt project, completed from the
    /// warehouse schema) as threadql.toml, to start a hand-written model from.
    Model {
        /// Check the configured model against the warehouse instead: unknown tables or columns,
        /// ambiguous joins, metrics whose SQL fails, dbt constructs left out. Exits non-zero
        /// when there is a problem.
        #[arg(long)]
        check: bool,
    },
    /// The roles of THREADQL_CONFIG ([[roles]], [access]): `check` them against the warehouse, or
    /// show `who <user id>` may see what.
    Roles {
        #[command(subcommand)]
        action: RolesAction,
    },
    /// Print the audit trail of DATABASE_URL (questions, guard decisions, executions, exports,
    /// refusals), oldest first: time (UTC), thread, user, Slack event id, action, code, detail.
    Audit {
        /// Rows written since: a span back from now (30m, 12h, 1d, 7d), an RFC 3339 time
        /// (2026-12-01T09:00:00Z) or a date (2026-12-01, midnight UTC).
        #[arg(long, value_name = "WHEN")]
        since: Since,
        /// Only the rows of this Slack user id, e.g. U0123ABCD.
        #[arg(long)]
        user: Option<String>,
        /// One JSON object per line (JSON Lines): id, at, team, channel, thread_ts, user,
        /// event_id, action, code, detail.
        #[arg(long)]
        json: bool,
        /// Most rows printed; when there are more, the oldest are printed and stderr says so.
        #[arg(long, value_name = "N", default_value_t = NonZeroUsize::new(DEFAULT_LIMIT).unwrap_or(NonZeroUsize::MIN))]
        limit: NonZeroUsize,
    },
    /// The scheduled reports and alerts of DATABASE_URL (made in Slack threads with `every
    /// monday at 9:00` or `alert me when …`): `list` them, or `run <id>` one now.
    Schedules {
        #[command(subcommand)]
        action: SchedulesAction,
    },
    /// The workspaces threadql was installed into through Slack's OAuth flow (SLACK_CLIENT_ID,
    /// SLACK_CLIENT_SECRET, THREADQL_ENCRYPTION_KEY): `list` them, or `rekey` their tokens.
    Installations {
        #[command(subcommand)]
        action: InstallationsAction,
    },
    /// GET /healthz on THREADQL_LISTEN and exit 0 when it answers 200 (the container's
    /// HEALTHCHECK: the runtime image has no curl).
    Healthcheck,
}

#[derive(Subcommand)]
enum SchedulesAction {
    /// Print every schedule and alert, of every team, oldest first: id, kind (schedule or
    /// alert), state (active, or paused and why), owner, team/channel, cron and time zone, next
    /// run (UTC), the last run's status, and what it delivers.
    List {
        /// One JSON object per line (JSON Lines): id, kind, state, paused_reason, owner, team,
        /// channel, thread_ts, cron, timezone, destination, next_run_at, last_status,
        /// last_run_at, question, summary, description.
        #[arg(long)]
        json: bool,
    },
    /// Run one schedule now, outside its schedule, as `serve` runs it: its answer is posted in
    /// Slack (SLACK_BOT_TOKEN, SLACK_API_URL) and the run recorded; prints how it ended, e.g.
    /// `schedule 3: succeeded`. Exits 1 when the run failed, 2 when it could not run.
    Run {
        /// The schedule's number, as `list` and its echo in Slack show it.
        id: i64,
    },
}

#[derive(Subcommand)]
enum InstallationsAction {
    /// Print every installation: team or org id, name, workspace or org-wide, state (active, or
    /// inactive and why), bot user, token expiry, install date, scopes. Never a token.
    List,
    /// Seal every token again with THREADQL_ENCRYPTION_KEY, after a rotation (the old key set as
    /// THREADQL_ENCRYPTION_KEY_PREVIOUS meanwhile); then the previous key can go.
    Rekey,
}

#[derive(Subcommand)]
enum RolesAction {
    /// Check every role against the warehouse: its tables and denied columns exist, its row
    /// filters run. Exits non-zero when there is a problem.
    Check,
    /// Print the roles, tables, denied columns and row filters of a Slack user.
    Who {
        /// The Slack user id, e.g. U0123ABCD.
        user: String,
        /// A user-group handle the user is in (repeatable); otherwise looked up in Slack when
        /// SLACK_BOT_TOKEN is set.
        #[arg(long = "group")]
        groups: Vec<String>,
    },
}

#[actix_web::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("threadql: configuration error: {error}");
            return ExitCode::from(2);
        }
    };
    if let Command::Healthcheck = cli.command {
        return match threadql::healthcheck::run(config.listen) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("threadql: unhealthy: {error}");
                ExitCode::FAILURE
            }
        };
    }
    let default_filter = match cli.command {
        Command::Demo
        | Command::Model { .. }
        | Command::Roles { .. }
        | Command::Audit { .. }
        | Command::Schedules { .. }
        | Command::Installations { .. } => "warn",
        _ => "info",
    };
    let telemetry = threadql::telemetry::init(config.log_format, default_filter);
    let outcome = run(cli.command, config).await;
    // The last spans (the stop's own included) leave before the process does.
    telemetry.shutdown();
    outcome
}

async fn run(command: Command, config: Config) -> ExitCode {
    let outcome = match command {
        Command::Serve => serve(config).await,
        Command::Demo => threadql::demo::run(config).await,
        Command::Migrate => threadql::store::connect_and_migrate(config.database_url.expose())
            .await
            .map(|_| {
                println!("Migrations applied to {}", config.database_url);
            }),
        Command::Model { check: false } => threadql::model_command::run(&config).await,
        Command::Model { check: true } => return check_status(threadql::model_check::run(&config).await),
        Command::Roles {
            action: RolesAction::Check,
        } => return check_status(threadql::roles_command::check(&config).await),
        Command::Roles {
            action: RolesAction::Who { user, groups },
        } => threadql::roles_command::who(&config, &user, groups)
            .await
            .map(|text| print!("{text}")),
        Command::Audit {
            since,
            user,
            json,
            limit,
        } => {
            threadql::audit_command::run(
                &config,
                &AuditQuery {
                    since,
                    user,
                    json,
                    limit,
                },
            )
            .await
        }
        Command::Schedules {
            action: SchedulesAction::List { json },
        } => threadql::schedules_command::list(&config, json).await,
        Command::Installations {
            action: InstallationsAction::List,
        } => threadql::installations_command::list(&config).await,
        Command::Installations {
            action: InstallationsAction::Rekey,
        } => threadql::installations_command::rekey(&config).await,
        Command::Schedules {
            action: SchedulesAction::Run { id },
        } => return check_status(threadql::schedules_command::run(&config, id).await),
        // Answered above, before logging is set up: its output is the exit status.
        Command::Healthcheck => return ExitCode::SUCCESS,
        Command::Check => {
            return if threadql::check::run(&config).await {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            };
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = ?error, "threadql stopped with an error");
            eprintln!("threadql: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// The exit status of a check (or of `schedules run`): 0 passed, 1 found problems (printed),
/// 2 could not check.
fn check_status(outcome: anyhow::Result<bool>) -> ExitCode {
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("threadql: {error:#}");
            ExitCode::from(2)
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let application = threadql::startup::Application::build(config).await?;
    tracing::info!(port = application.port(), "threadql is serving Slack");
    application.run_until_signalled().await?;
    Ok(())
}
