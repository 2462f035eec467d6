//! `threadql-bench`: the loopback benchmarks of issue 3 (figures and how to read them in
//! BENCHMARKS.md). A workspace member of its own, so the product crate ships one binary.
//!
//! ```text
//! cargo run --release -p threadql-bench -- ingress      # acks/s, ack latency, answers posted/s
//! cargo run --release -p threadql-bench -- memory       # RSS per idle live thread actor
//! cargo run --release -p threadql-bench -- activation   # activation from snapshot, snapshot writes/s
//! cargo run --release -p threadql-bench -- e2e          # question -> posted answer
//! cargo run --release -p threadql-bench -- model        # model of a 500-table schema, interpretation
//! cargo run --release -p threadql-bench -- all
//! ```
//!
//! Everything runs on loopback: a load generator that signs requests like Slack, a fake Slack Web
//! API that answers at once, and the real server (`Application::build`). Postgres and Redis are
//! the local ones (127.0.0.1:5432, 127.0.0.1:6379); every database, file and Redis key a run
//! creates is removed at its end (the guards of `threadql-testkit`, which the tests use too).
//! Each variant of a scenario runs in its own process, so one variant's live actors, memory and
//! threads never weigh on the next.
use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use anyhow::{anyhow, bail, Context};
use clap::{Args, Parser, Subcommand, ValueEnum};
use futures::stream::{FuturesUnordered, StreamExt};
use hmac::{Hmac, Mac};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod model;
mod replicas;

use threadql::actors::{ThreadRegistry, UserMessage};
use threadql::config::Config;

/// The server binary's allocator and options, so the figures are the product's (see src/main.rs).
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
#[cfg(not(feature = "system-allocator"))]
#[export_name = "_rjem_malloc_conf"]
static ALLOCATOR_OPTIONS: &u8 = &b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0\0"[0];
use threadql::domain::Origin;
use threadql::domain::Reply;
use threadql::domain::ThreadKey;
use threadql::slack::verify::sign;
use threadql::startup::{Application, Backends};
use threadql::store::{PostgresStore, StateStore};
use threadql::turn::Replier;
use threadql_testkit::{
    api_success, app_mention, try_config_with, RedisPrefix, TestDatabase, BOT_USER, SHARED_REDIS, SIGNING_SECRET, TEAM,
};

/// The cheap intent: answered from memory, no warehouse.
const CHEAP_TEXT: &str = "help";
/// The end-to-end question (rules interpreter, demo warehouse).
const E2E_QUESTION: &str = "revenue by region last month";
/// A fragment only the help text contains, to tell answers from error replies.
const HELP_MARKER: &[u8] = b"export csv";
/// Rate limit given to the server: high enough that no benchmark event is refused.
const BENCH_RATE_LIMIT: &str = "1000000";
const BENCH_MAX_BACKLOG: &str = "100000000";
/// `THREADQL_IDLE_SECS` of the ingress runs: after the drain, the run waits for idle actors to
/// passivate and reads the resident memory again.
const BENCH_IDLE_SECS: u64 = 5;
/// Clock ticks per second of /proc CPU times (USER_HZ, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

// ---------------------------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------------------------

/// Loopback benchmarks for threadql (see BENCHMARKS.md).
#[derive(Parser)]
#[command(name = "threadql-bench")]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// Signed app_mention events at N connections: a bare HMAC+JSON actix handler, then threadql
    /// with each state store and dedupe (one process per variant).
    Ingress(IngressArgs),
    /// Resident memory per idle live thread actor.
    Memory(MemoryArgs),
    /// Activation from a persisted snapshot (p50/p99) and snapshot writes per second (Postgres).
    Activation(ActivationArgs),
    /// Question -> posted answer through HTTP on the demo warehouse (rules interpreter).
    E2e(E2eArgs),
    /// A model derived from a generated 500-table schema (start and refresh) and questions
    /// interpreted over it (Postgres).
    Model(model::ModelArgs),
    /// One replica vs three over one Postgres (questions spread round robin), and the
    /// forwarding hop between replicas.
    Replicas(replicas::ReplicasArgs),
    /// Every scenario with its defaults, each in its own process.
    All,
    /// One ingress variant in this process (started by `ingress`).
    #[command(hide = true)]
    IngressRun(IngressRunArgs),
    /// The fake Slack Web API alone, until stdin closes (started by `ingress-run`).
    #[command(hide = true)]
    FakeSlack,
    /// Summarises `perf script -F tid,ip,sym` output of an ingress run by thread and component.
    PerfSummary(PerfSummaryArgs),
}

#[derive(Args, Clone, Debug)]
struct LoadArgs {
    /// Seconds of load per variant.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Concurrent keep-alive connections of the load generator.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Threads of the load generator's runtime (it shares the cores with the server).
    #[arg(long, default_value_t = 1)]
    loadgen_threads: usize,
    /// Distinct users the events come from (round robin).
    #[arg(long, default_value_t = 1000)]
    users: u64,
    /// Longest wait, in seconds, for the backlog of answers to drain after the burst.
    #[arg(long, default_value_t = 240)]
    drain_timeout: u64,
    /// Offered events per second (open loop, latency counted from each event's scheduled send
    /// time); 0 = as fast as the connections go (closed loop).
    #[arg(long, default_value_t = 0)]
    rate: u64,
}

impl LoadArgs {
    fn to_args(&self) -> Vec<String> {
        vec![
            "--duration".into(),
            self.duration.to_string(),
            "--connections".into(),
            self.connections.to_string(),
            "--loadgen-threads".into(),
            self.loadgen_threads.to_string(),
            "--users".into(),
            self.users.to_string(),
            "--drain-timeout".into(),
            self.drain_timeout.to_string(),
            "--rate".into(),
            self.rate.to_string(),
        ]
    }
}

#[derive(Args, Clone, Debug)]
struct IngressArgs {
    #[command(flatten)]
    load: LoadArgs,
    /// State stores to run threadql with.
    #[arg(long, value_delimiter = ',', default_value = "sqlite,postgres")]
    stores: Vec<StoreKind>,
    /// Dedupe (and rate-limit) backends to run threadql with.
    #[arg(long, value_delimiter = ',', default_value = "in-process,redis")]
    dedupe: Vec<DedupeKind>,
    /// Also offer these many events per second (open loop) to each store with in-process dedupe,
    /// to see whether answers keep up (0 = none).
    #[arg(long, value_delimiter = ',', default_value = "5000,10000")]
    sustained_rate: Vec<u64>,
}

#[derive(Args, Clone, Debug)]
struct IngressRunArgs {
    #[command(flatten)]
    load: LoadArgs,
    #[arg(long, value_enum)]
    target: Target,
    #[arg(long, value_enum, default_value = "sqlite")]
    store: StoreKind,
    #[arg(long, value_enum, default_value = "in-process")]
    dedupe: DedupeKind,
    /// Longest wait, in seconds, for other processes to leave the cores alone before starting.
    #[arg(long, default_value_t = 120)]
    quiet_wait: u64,
    /// Where to write the result (JSON); printed only when absent.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Exits at once after the idle memory reading, freeing nothing: under heaptrack (built with
    /// `--features system-allocator`), its "leaked" list is then what the idle server holds.
    #[arg(long)]
    exit_when_idle: bool,
}

#[derive(Args, Clone, Debug)]
struct MemoryArgs {
    /// Live thread actors to measure.
    #[arg(long, default_value_t = 100_000)]
    threads: usize,
    /// Threads activated before the baseline reading (allocator, pools and caches warm).
    #[arg(long, default_value_t = 2_000)]
    warmup: usize,
    /// Messages in flight while dispatching.
    #[arg(long, default_value_t = 512)]
    window: usize,
    /// Seconds of idleness over which the actors' CPU use is measured.
    #[arg(long, default_value_t = 10)]
    idle_secs: u64,
    #[arg(long, value_enum, default_value = "sqlite")]
    store: StoreKind,
}

#[derive(Args, Clone, Debug)]
struct ActivationArgs {
    /// Threads activated one at a time (latency without queueing).
    #[arg(long, default_value_t = 2_000)]
    sequential: usize,
    /// Threads activated with `concurrency` in flight.
    #[arg(long, default_value_t = 20_000)]
    concurrent: usize,
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Tasks calling save_snapshot at once (one measurement per value).
    #[arg(long, value_delimiter = ',', default_value = "64,512")]
    writers: Vec<usize>,
    /// Seconds of each snapshot-write measurement.
    #[arg(long, default_value_t = 10)]
    write_secs: u64,
}

#[derive(Args, Clone, Debug)]
struct E2eArgs {
    /// Seconds per (store, concurrency) pair.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Questions in flight (each on its own connection and thread).
    #[arg(long, value_delimiter = ',', default_value = "1,8")]
    concurrency: Vec<usize>,
    #[arg(long, value_delimiter = ',', default_value = "sqlite,postgres")]
    stores: Vec<StoreKind>,
}

#[derive(Args, Clone, Debug)]
struct PerfSummaryArgs {
    /// Output of `perf script -F tid,ip,sym --no-inline` (call graphs recorded with dwarf).
    script: PathBuf,
    /// Thread ids of the thread-actor arbiters (printed by `ingress-run`).
    #[arg(long, value_delimiter = ',')]
    actor_tids: Vec<i32>,
    /// Thread ids of the HTTP workers (printed by `ingress-run`).
    #[arg(long, value_delimiter = ',')]
    http_tids: Vec<i32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
enum Target {
    /// An actix-web handler that only verifies the HMAC and parses the JSON.
    Bare,
    /// The real server.
    Threadql,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
enum StoreKind {
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
enum DedupeKind {
    InProcess,
    Redis,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let system = actix_rt::System::new();
    let outcome = system.block_on(run(cli));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("threadql-bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.scenario {
        Scenario::Ingress(args) => ingress(args).await,
        Scenario::IngressRun(args) => {
            init_logs(&format!("ingress-{:?}-{:?}-{:?}", args.target, args.store, args.dedupe))?;
            let background = wait_for_quiet_machine(Duration::from_secs(args.quiet_wait));
            let mut result = ingress_run(&args).await?;
            result.background_cores = background;
            match &args.out {
                Some(path) => std::fs::write(path, serde_json::to_vec(&result)?)
                    .with_context(|| format!("Failed to write {}", path.display()))?,
                None => print_ingress_table(&[result]),
            }
            Ok(())
        }
        Scenario::Memory(args) => {
            init_logs("memory")?;
            memory(args).await
        }
        Scenario::Activation(args) => {
            init_logs("activation")?;
            activation(args).await
        }
        Scenario::E2e(args) => {
            init_logs("e2e")?;
            e2e(args).await
        }
        Scenario::Model(args) => {
            init_logs("model")?;
            model::run(args).await
        }
        Scenario::Replicas(args) => {
            init_logs("replicas")?;
            replicas::run(args).await
        }
        Scenario::All => all(),
        Scenario::FakeSlack => fake_slack_process(),
        Scenario::PerfSummary(args) => perf_summary(&args),
    }
}

/// Runs every scenario in a child process (each starts from a clean heap and thread set).
fn all() -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("Failed to find the bench executable")?;
    print_machine();
    let mut failed = Vec::new();
    for scenario in ["ingress", "memory", "activation", "e2e", "model", "replicas"] {
        println!("\n## {scenario}\n");
        let status = std::process::Command::new(&exe)
            .arg(scenario)
            .status()
            .with_context(|| format!("Failed to run the {scenario} scenario"))?;
        if !status.success() {
            failed.push(scenario);
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        bail!("scenarios failed: {}", failed.join(", "))
    }
}

fn print_machine() {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_default();
    println!(
        "machine: {cpus} CPUs ({model}), kernel {}",
        read_trimmed("/proc/sys/kernel/osrelease")
    );
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Files, logs, databases
// ---------------------------------------------------------------------------------------------

/// Scratch space for logs, SQLite files and the demo warehouse.
fn work_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join("threadql-bench");
    std::fs::create_dir_all(&dir).with_context(|| format!("Failed to create {}", dir.display()))?;
    Ok(dir)
}

/// The server logs as `threadql serve` does (text, `info` unless RUST_LOG says otherwise), into a
/// file instead of stderr so the terminal shows only results.
fn init_logs(name: &str) -> anyhow::Result<()> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let path = work_dir()?.join(format!("{name}.log"));
    let file = std::fs::File::create(&path).with_context(|| format!("Failed to create {}", path.display()))?;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(Mutex::new(file)),
        )
        .try_init()
        .context("Failed to install the log subscriber")?;
    println!("(server logs: {})", path.display());
    Ok(())
}

/// A state store created for one run and removed at its end.
enum BenchStore {
    /// Removed (with its `-wal` and `-shm` files) by [`BenchStore::remove`].
    Sqlite { url: String, path: PathBuf },
    /// Dropped with its guard.
    Postgres(TestDatabase),
}

impl BenchStore {
    async fn create(kind: StoreKind) -> anyhow::Result<Self> {
        match kind {
            StoreKind::Sqlite => {
                let path = work_dir()?.join(format!("state-{}.db", uuid::Uuid::new_v4().simple()));
                Ok(Self::Sqlite {
                    url: format!("sqlite://{}", path.display()),
                    path,
                })
            }
            StoreKind::Postgres => Ok(Self::Postgres(
                TestDatabase::try_create("threadql_bench_")
                    .await
                    .context("Postgres must run on 127.0.0.1:5432 (user postgres, trust)")?,
            )),
        }
    }

    fn url(&self) -> &str {
        match self {
            Self::Sqlite { url, .. } => url,
            Self::Postgres(database) => database.url(),
        }
    }

    fn remove(self) {
        if let Self::Sqlite { path, .. } = self {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
        }
    }
}

/// The server's configuration for a run: the tests' configuration (fake Slack, the given store,
/// the demo warehouse) with the limits lifted.
fn bench_config(slack_api_url: &str, database_url: &str, extra: &[(&str, String)]) -> anyhow::Result<Config> {
    let mut overrides = vec![
        ("THREADQL_RATE_LIMIT_PER_MINUTE", BENCH_RATE_LIMIT.to_string()),
        // Lifted like the rate limit: the closed loop measures how far the server goes, and with
        // the default (200,000) most of a 10 s burst would be refused for Slack to redeliver.
        ("THREADQL_MAX_BACKLOG", BENCH_MAX_BACKLOG.to_string()),
        ("THREADQL_IDLE_SECS", BENCH_IDLE_SECS.to_string()),
    ];
    overrides.extend(extra.iter().cloned());
    try_config_with(slack_api_url, database_url, &overrides)
}

/// Waits (at most 10 s) until the server at `addr` answers HTTP: its workers start only once
/// the server future runs.
async fn wait_until_serving(addr: SocketAddr) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = Vec::new();
    loop {
        let answered = async {
            let mut stream = TcpStream::connect(addr).await?;
            exchange(
                &mut stream,
                b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n",
                &mut buf,
            )
            .await
        };
        match tokio::time::timeout(Duration::from_secs(1), answered).await {
            Ok(Ok(_)) => return Ok(()),
            _ if Instant::now() > deadline => bail!("the server at {addr} never answered"),
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// /proc readings
// ---------------------------------------------------------------------------------------------

/// A `/proc/self/status` field in KiB (`VmRSS`, `RssAnon`...).
fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status.lines().find_map(|line| {
                let rest = line.strip_prefix(field)?.strip_prefix(':')?;
                rest.trim().trim_end_matches("kB").trim().parse().ok()
            })
        })
        .unwrap_or(0)
}

/// utime+stime of a `/proc/.../stat` line, in ticks, with the thread's name.
fn parse_stat(stat: &str) -> Option<(String, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat[open + 1..close].to_string();
    let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    // Fields after the name start at field 3 (state); utime is field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((name, utime + stime))
}

/// CPU ticks used so far by this process's threads, summed per thread kind. Actix names every
/// arbiter thread alike (HTTP workers and thread-actor arbiters), so `arbiter_kinds` tells them
/// apart by thread id.
fn thread_cpu(arbiter_kinds: &HashMap<i32, &'static str>) -> BTreeMap<String, u64> {
    let mut by_kind = BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return by_kind;
    };
    for task in tasks.flatten() {
        let tid: i32 = task.file_name().to_string_lossy().parse().unwrap_or(0);
        if let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) {
            if let Some((name, ticks)) = parse_stat(&stat) {
                let kind = match arbiter_kinds.get(&tid) {
                    Some(kind) => kind.to_string(),
                    None => thread_kind(&name),
                };
                *by_kind.entry(kind).or_insert(0) += ticks;
            }
        }
    }
    by_kind
}

/// Thread ids of actix arbiter threads, oldest first (thread ids grow with creation time).
fn arbiter_threads() -> Vec<i32> {
    let mut tids: Vec<i32> = std::fs::read_dir("/proc/self/task")
        .map(|tasks| {
            tasks
                .flatten()
                .filter_map(|task| {
                    let tid: i32 = task.file_name().to_string_lossy().parse().ok()?;
                    let name = std::fs::read_to_string(task.path().join("comm")).ok()?;
                    name.starts_with("actix-rt|system").then_some(tid)
                })
                .collect()
        })
        .unwrap_or_default();
    tids.sort_unstable();
    tids
}

/// Labels arbiter threads: `Application::build` starts the thread-actor arbiters (one per core)
/// before the HTTP server starts its workers (two per core), so the oldest `actor_arbiters` are
/// the actors' and the rest serve HTTP.
fn label_arbiters(actor_arbiters: usize) -> HashMap<i32, &'static str> {
    arbiter_threads()
        .into_iter()
        .enumerate()
        .map(|(i, tid)| {
            (
                tid,
                if i < actor_arbiters {
                    "actor-arbiters"
                } else {
                    "http-workers"
                },
            )
        })
        .collect()
}

/// Readable names for the threads of a bench process (Linux cuts names at 15 bytes).
fn thread_kind(name: &str) -> String {
    let kind = if name.starts_with("actix-server wo") {
        "http-workers"
    } else if name.starts_with("actix-server ac") {
        "http-acceptor"
    } else if name.starts_with("actix-rt|system") {
        "actor-arbiters"
    } else if name.starts_with("loadgen") {
        "loadgen"
    } else if name.starts_with("fake-slack") {
        "fake-slack"
    } else if name.starts_with("sqlx-sqlite") {
        "sqlite-workers"
    } else if name.starts_with("threadql-bench") {
        "main(system)"
    } else if name.starts_with("tokio-runtime") {
        "tokio-blocking"
    } else {
        name
    };
    kind.to_string()
}

/// Busy and total jiffies of the whole machine (all processes: Postgres and Redis included).
fn machine_cpu() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().next() else { return (0, 0) };
    let values: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|v| v.parse().ok())
        .collect();
    let total: u64 = values.iter().sum();
    let idle = values.get(3).copied().unwrap_or(0) + values.get(4).copied().unwrap_or(0);
    (total.saturating_sub(idle), total)
}

/// CPU ticks of the local Postgres and Redis servers (every process named so).
fn service_cpu() -> BTreeMap<String, u64> {
    let mut by_service = BTreeMap::new();
    let Ok(processes) = std::fs::read_dir("/proc") else {
        return by_service;
    };
    for process in processes.flatten() {
        if !process
            .file_name()
            .to_string_lossy()
            .bytes()
            .all(|b| b.is_ascii_digit())
        {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(process.path().join("stat")) else {
            continue;
        };
        if let Some((name, ticks)) = parse_stat(&stat) {
            let service = match name.as_str() {
                "postgres" => "postgres",
                "redis-server" => "redis",
                _ => continue,
            };
            *by_service.entry(service.to_string()).or_insert(0) += ticks;
        }
    }
    by_service
}

/// CPU use over a window: per thread kind of this process, and the machine as a whole.
struct CpuWindow {
    threads: BTreeMap<String, u64>,
    services: BTreeMap<String, u64>,
    machine: (u64, u64),
    at: Instant,
    arbiter_kinds: HashMap<i32, &'static str>,
}

impl CpuWindow {
    fn start(arbiter_kinds: HashMap<i32, &'static str>) -> Self {
        Self {
            threads: thread_cpu(&arbiter_kinds),
            services: service_cpu(),
            machine: machine_cpu(),
            at: Instant::now(),
            arbiter_kinds,
        }
    }

    /// Cores used (1.0 = one core busy for the whole window), by kind; `other-processes` is the
    /// rest of the machine (Postgres, Redis, kernel work not charged to this process).
    /// `exited` adds threads that ended within the window (the load generator's), in ticks.
    fn finish(&self, exited: &[(&str, u64)]) -> Vec<(String, f64)> {
        let seconds = self.at.elapsed().as_secs_f64().max(1e-9);
        let mut now = thread_cpu(&self.arbiter_kinds);
        for (kind, _) in exited {
            // Reported by the threads themselves; they may or may not have exited yet.
            now.remove(*kind);
        }
        for (kind, ticks) in exited {
            *now.entry(kind.to_string()).or_insert(0) += ticks;
        }
        let mut cores: Vec<(String, f64)> = now
            .iter()
            .map(|(kind, ticks)| {
                let before = self.threads.get(kind).copied().unwrap_or(0);
                (
                    kind.clone(),
                    ticks.saturating_sub(before) as f64 / TICKS_PER_SECOND / seconds,
                )
            })
            .filter(|(_, c)| *c >= 0.005)
            .collect();
        if now.is_empty() {
            // /proc could not be read: no file descriptor left.
            return vec![("unknown (no file descriptors left)".into(), 0.0)];
        }
        for (service, ticks) in service_cpu() {
            let before = self.services.get(&service).copied().unwrap_or(0);
            let used = ticks.saturating_sub(before) as f64 / TICKS_PER_SECOND / seconds;
            if used >= 0.005 {
                cores.push((format!("{service}(all clients)"), used));
            }
        }
        let process: f64 = cores.iter().map(|(_, c)| c).sum();
        let (busy, total) = machine_cpu();
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let machine_busy = busy.saturating_sub(self.machine.0) as f64;
        let machine_total = total.saturating_sub(self.machine.1).max(1) as f64;
        let machine_cores = machine_busy / machine_total * cpus;
        cores.sort_by(|a, b| b.1.total_cmp(&a.1));
        cores.push(("everything-else".into(), (machine_cores - process).max(0.0)));
        cores.push(("machine".into(), machine_cores));
        cores
    }
}

/// Cores the rest of the machine uses over one second (this process is idle meanwhile).
fn background_load() -> f64 {
    let (busy0, total0) = machine_cpu();
    std::thread::sleep(Duration::from_secs(1));
    let (busy1, total1) = machine_cpu();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    busy1.saturating_sub(busy0) as f64 / total1.saturating_sub(total0).max(1) as f64 * cpus
}

/// Waits (at most `max_wait`) until other processes use less than 0.2 cores: builds and tests of
/// other users on a shared machine would otherwise take the cores the figures are about.
/// Returns the background load at the start.
fn wait_for_quiet_machine(max_wait: Duration) -> f64 {
    let started = Instant::now();
    let mut said = false;
    loop {
        let load = background_load();
        if load < 0.2 || started.elapsed() >= max_wait {
            if load >= 0.2 {
                println!("  (starting anyway: other processes use {load:.2} cores)");
            }
            return load;
        }
        if !said {
            println!("  (waiting for a quiet machine: other processes use {load:.2} cores)");
            said = true;
        }
    }
}

fn format_cores(cores: &[(String, f64)]) -> String {
    cores
        .iter()
        .map(|(kind, c)| format!("{kind} {c:.2}"))
        .collect::<Vec<_>>()
        .join(", ")
}

// ---------------------------------------------------------------------------------------------
// Statistics
// ---------------------------------------------------------------------------------------------

/// Latency percentiles in milliseconds, from microsecond samples.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
struct Percentiles {
    p50: f64,
    p99: f64,
    max: f64,
    count: usize,
}

impl Percentiles {
    fn of(mut samples_us: Vec<u32>) -> Self {
        if samples_us.is_empty() {
            return Self::default();
        }
        samples_us.sort_unstable();
        let at = |p: f64| {
            let index = ((samples_us.len() - 1) as f64 * p).round() as usize;
            f64::from(samples_us[index.min(samples_us.len() - 1)]) / 1000.0
        };
        Self {
            p50: at(0.50),
            p99: at(0.99),
            max: at(1.0),
            count: samples_us.len(),
        }
    }
}

fn micros(duration: Duration) -> u32 {
    u32::try_from(duration.as_micros()).unwrap_or(u32::MAX)
}

/// Microseconds since the Unix epoch: comparable between the load generator and the fake Slack,
/// which runs in a process of its own.
fn wall_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_micros() as u64)
}

/// First come, first answered: for each answered event, how much later its first post came than
/// the earliest first post of an event acked after it (0 when none overtook it). `acked` and
/// `answered` are (event number, wall-clock microseconds).
fn answered_after_newer(acked: &[(u64, u64)], answered: &[(u64, u64)]) -> Vec<u32> {
    let answered_at: HashMap<u64, u64> = answered.iter().copied().collect();
    let mut by_ack: Vec<(u64, u64)> = acked
        .iter()
        .filter_map(|(event, acked_at)| answered_at.get(event).map(|answer| (*acked_at, *answer)))
        .collect();
    by_ack.sort_unstable();
    let mut earliest_newer_answer = u64::MAX;
    let mut late_us = Vec::with_capacity(by_ack.len());
    for &(_, answer) in by_ack.iter().rev() {
        late_us.push(u32::try_from(answer.saturating_sub(earliest_newer_answer)).unwrap_or(u32::MAX));
        earliest_newer_answer = earliest_newer_answer.min(answer);
    }
    late_us
}

// ---------------------------------------------------------------------------------------------
// HTTP/1.1 on raw sockets (load generator and fake Slack): the least work per request, so the
// figures are the server's, not a client library's.
// ---------------------------------------------------------------------------------------------

struct Head {
    /// Request line or status line.
    first_line: String,
    content_length: usize,
    chunked: bool,
    close: bool,
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn parse_head(head: &[u8]) -> Head {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let mut parsed = Head {
        first_line: lines.next().unwrap_or_default().to_string(),
        content_length: 0,
        chunked: false,
        close: false,
    };
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("content-length") {
            parsed.content_length = value.parse().unwrap_or(0);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            parsed.chunked = value.to_ascii_lowercase().contains("chunked");
        } else if name.eq_ignore_ascii_case("connection") {
            parsed.close = value.eq_ignore_ascii_case("close");
        }
    }
    parsed
}

async fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<()> {
    buf.reserve(4096);
    if stream.read_buf(buf).await? == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}

/// Reads one HTTP/1.1 message (head and body); `None` when the peer closed between messages.
async fn read_message(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<Option<(Head, Vec<u8>)>> {
    let head_end = loop {
        if let Some(position) = find(buf, b"\r\n\r\n") {
            break position + 4;
        }
        buf.reserve(4096);
        if stream.read_buf(buf).await? == 0 {
            return if buf.is_empty() {
                Ok(None)
            } else {
                Err(std::io::ErrorKind::UnexpectedEof.into())
            };
        }
    };
    let head = parse_head(&buf[..head_end]);
    if head.chunked {
        let mut body = Vec::new();
        let mut position = head_end;
        loop {
            let line_end = loop {
                if let Some(offset) = find(&buf[position..], b"\r\n") {
                    break position + offset;
                }
                fill(stream, buf).await?;
            };
            let size_text = String::from_utf8_lossy(&buf[position..line_end]).to_string();
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("0").trim(), 16)
                .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "bad chunk size"))?;
            position = line_end + 2;
            while buf.len() < position + size + 2 {
                fill(stream, buf).await?;
            }
            if size == 0 {
                position += 2;
                break;
            }
            body.extend_from_slice(&buf[position..position + size]);
            position += size + 2;
        }
        buf.drain(..position);
        Ok(Some((head, body)))
    } else {
        let end = head_end + head.content_length;
        while buf.len() < end {
            fill(stream, buf).await?;
        }
        let body = buf[head_end..end].to_vec();
        buf.drain(..end);
        Ok(Some((head, body)))
    }
}

/// Sends one request on a keep-alive connection and returns the response's status.
async fn exchange(stream: &mut TcpStream, request: &[u8], buf: &mut Vec<u8>) -> std::io::Result<u16> {
    stream.write_all(request).await?;
    let (head, _) = read_message(stream, buf)
        .await?
        .ok_or(std::io::ErrorKind::UnexpectedEof)?;
    Ok(head
        .first_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0))
}

/// A signed `POST /slack/events` as Slack sends it.
fn build_request(out: &mut Vec<u8>, body: &[u8], secret: &SecretString) {
    let timestamp = chrono::Utc::now().timestamp().to_string();
    let signature = sign(secret, &timestamp, body);
    out.clear();
    let _ = write!(
        out,
        "POST /slack/events HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n\
         x-slack-request-timestamp: {timestamp}\r\nx-slack-signature: {signature}\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    out.extend_from_slice(body);
}

// ---------------------------------------------------------------------------------------------
// Events: Slack's app_mention sample, with distinct event ids, channels, threads
// ---------------------------------------------------------------------------------------------

enum Segment {
    Literal(String),
    EventId,
    User,
    Ts,
    Channel,
}

/// Renders `app_mention` envelopes from Slack's sample; event `seq` gets its own event id,
/// channel and thread (so neither dedupe nor per-channel pacing ever merges two events).
struct EventFactory {
    segments: Vec<Segment>,
    run: String,
    base_secs: i64,
    users: u64,
}

impl EventFactory {
    fn new(text: &str, users: u64) -> anyhow::Result<Self> {
        // The tests' app_mention, with placeholders each event fills in.
        let mut envelope = app_mention("%%EVENT%%", "%%CHANNEL%%", "%%TS%%", text);
        envelope["event"]["user"] = json!("%%USER%%");
        let rendered = serde_json::to_string(&envelope)?;
        let mut segments = Vec::new();
        let mut rest = rendered.as_str();
        while let Some(start) = rest.find("%%") {
            let Some(len) = rest[start + 2..].find("%%") else { break };
            let name = &rest[start + 2..start + 2 + len];
            segments.push(Segment::Literal(rest[..start].to_string()));
            segments.push(match name {
                "EVENT" => Segment::EventId,
                "USER" => Segment::User,
                "TS" => Segment::Ts,
                "CHANNEL" => Segment::Channel,
                other => bail!("unknown placeholder {other}"),
            });
            rest = &rest[start + 4 + len..];
        }
        segments.push(Segment::Literal(rest.to_string()));
        let run = uuid::Uuid::new_v4().simple().to_string()[..5].to_uppercase();
        Ok(Self {
            segments,
            run,
            base_secs: chrono::Utc::now().timestamp(),
            users: users.max(1),
        })
    }

    fn channel(&self, seq: u64) -> String {
        format!("C{}{seq:08}", self.run)
    }

    fn render(&self, seq: u64, out: &mut String) {
        use std::fmt::Write as _;
        out.clear();
        for segment in &self.segments {
            let _ = match segment {
                Segment::Literal(text) => {
                    out.push_str(text);
                    Ok(())
                }
                Segment::EventId => write!(out, "Ev{}{seq:010}", self.run),
                Segment::User => write!(out, "U{}{:06}", self.run, seq % self.users),
                Segment::Ts => write!(
                    out,
                    "{}.{:06}",
                    self.base_secs + (seq / 1_000_000) as i64,
                    seq % 1_000_000
                ),
                Segment::Channel => write!(out, "C{}{seq:08}", self.run),
            };
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Load generator
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
struct LoadOutcome {
    ok: u64,
    other_status: u64,
    errors: u64,
    first_error: Option<String>,
    latencies_us: Vec<u32>,
    /// (event number, wall-clock microseconds) of every 200, for the fairness figures.
    acked: Vec<(u64, u64)>,
    elapsed: Duration,
    /// CPU ticks of the load generator's threads (read before they exit).
    cpu_ticks: u64,
}

impl LoadOutcome {
    fn merge(&mut self, other: LoadOutcome) {
        self.ok += other.ok;
        self.other_status += other.other_status;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.latencies_us.extend(other.latencies_us);
        self.acked.extend(other.acked);
    }
}

/// Runs a closed loop of `connections` keep-alive connections for `duration` on its own thread
/// (and runtime), so the server's threads are untouched by the client.
fn start_load(
    addr: SocketAddr,
    factory: Arc<EventFactory>,
    load: &LoadArgs,
) -> tokio::sync::oneshot::Receiver<anyhow::Result<LoadOutcome>> {
    let (reply, outcome) = tokio::sync::oneshot::channel();
    let (connections, threads, duration, rate) =
        (load.connections, load.loadgen_threads.max(1), load.duration, load.rate);
    let spawned = std::thread::Builder::new().name("loadgen".into()).spawn(move || {
        let runtime = if threads == 1 {
            tokio::runtime::Builder::new_current_thread().enable_all().build()
        } else {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(threads)
                .thread_name("loadgen")
                .enable_all()
                .build()
        };
        let result = match runtime {
            Ok(runtime) => runtime.block_on(async move {
                let counter = Arc::new(AtomicU64::new(0));
                let started = Instant::now();
                let deadline = started + Duration::from_secs(duration);
                let tasks: Vec<_> = (0..connections)
                    .map(|_| {
                        let pacing = (rate > 0).then_some((started, rate));
                        tokio::spawn(connection_loop(
                            addr,
                            factory.clone(),
                            counter.clone(),
                            deadline,
                            pacing,
                        ))
                    })
                    .collect();
                let mut total = LoadOutcome::default();
                for task in tasks {
                    total.merge(task.await?);
                }
                total.elapsed = started.elapsed();
                // The runtime's threads are still alive here.
                total.cpu_ticks = thread_cpu(&HashMap::new()).get("loadgen").copied().unwrap_or(0);
                anyhow::Ok(total)
            }),
            Err(error) => Err(anyhow!("Failed to build the load generator's runtime: {error}")),
        };
        let _ = reply.send(result);
    });
    if let Err(error) = spawned {
        let (reply, outcome) = tokio::sync::oneshot::channel();
        let _ = reply.send(Err(anyhow!("Failed to start the load generator: {error}")));
        return outcome;
    }
    outcome
}

async fn connection_loop(
    addr: SocketAddr,
    factory: Arc<EventFactory>,
    counter: Arc<AtomicU64>,
    deadline: Instant,
    pacing: Option<(Instant, u64)>,
) -> LoadOutcome {
    let secret = SecretString::from(SIGNING_SECRET);
    let mut outcome = LoadOutcome {
        latencies_us: Vec::with_capacity(1 << 16),
        ..LoadOutcome::default()
    };
    let mut connection: Option<TcpStream> = None;
    let (mut buf, mut body, mut request) = (Vec::with_capacity(4096), String::with_capacity(2048), Vec::new());
    while Instant::now() < deadline {
        let stream = match connection.as_mut() {
            Some(stream) => stream,
            None => match TcpStream::connect(addr).await {
                Ok(stream) => {
                    let _ = stream.set_nodelay(true);
                    buf.clear();
                    connection.insert(stream)
                }
                Err(error) => {
                    outcome.errors += 1;
                    outcome.first_error.get_or_insert_with(|| error.to_string());
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let seq = counter.fetch_add(1, Ordering::Relaxed);
        // Open loop: event `seq` is due at start + seq/rate, and its latency counts from then,
        // so a server that falls behind is charged for the queueing it causes.
        // (Waking up late from the timer is the client's doing and is not charged.)
        let due = pacing.map(|(start, rate)| start + Duration::from_secs_f64(seq as f64 / rate as f64));
        let mut charged_from = None;
        if let Some(due) = due {
            if due >= deadline {
                break;
            }
            if due > Instant::now() {
                tokio::time::sleep_until(due.into()).await;
            } else {
                charged_from = Some(due);
            }
        }
        factory.render(seq, &mut body);
        build_request(&mut request, body.as_bytes(), &secret);
        let sent = charged_from.unwrap_or_else(Instant::now);
        match exchange(stream, &request, &mut buf).await {
            Ok(status) => {
                outcome.latencies_us.push(micros(sent.elapsed()));
                if status == 200 {
                    outcome.ok += 1;
                    outcome.acked.push((seq, wall_micros()));
                } else {
                    outcome.other_status += 1;
                    outcome.first_error.get_or_insert_with(|| format!("HTTP {status}"));
                }
            }
            Err(error) => {
                outcome.errors += 1;
                outcome.first_error.get_or_insert_with(|| error.to_string());
                connection = None;
            }
        }
    }
    outcome
}

// ---------------------------------------------------------------------------------------------
// Fake Slack Web API
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
struct FakeSlackState {
    posts: AtomicU64,
    help_posts: AtomicU64,
    /// Channels that got at least one post (every benchmark event has its own channel).
    answered_channels: Mutex<std::collections::HashSet<Vec<u8>>>,
    answered: AtomicU64,
    answered_with_help: AtomicU64,
    /// (event number, wall-clock microseconds) of each channel's first post.
    first_posts: Mutex<Vec<(u64, u64)>>,
    /// Error replies: the snapshot could not be read ("can't reach my state store") or saved.
    load_errors: AtomicU64,
    save_errors: AtomicU64,
    other_calls: AtomicU64,
    open_connections: AtomicU64,
    max_connections: AtomicU64,
    /// e2e: channel -> the question waiting for its first post there.
    track: AtomicBool,
    waiters: Mutex<HashMap<String, tokio::sync::oneshot::Sender<Instant>>>,
    sample_answer: Mutex<Option<String>>,
    auth_body: Vec<u8>,
}

/// What the fake Slack has seen.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
struct FakeStats {
    posts: u64,
    help_posts: u64,
    answered: u64,
    answered_with_help: u64,
    load_errors: u64,
    save_errors: u64,
    other_calls: u64,
    open_connections: u64,
    max_connections: u64,
}

impl FakeSlackState {
    fn stats(&self) -> FakeStats {
        FakeStats {
            posts: self.posts.load(Ordering::Relaxed),
            help_posts: self.help_posts.load(Ordering::Relaxed),
            answered: self.answered.load(Ordering::Relaxed),
            answered_with_help: self.answered_with_help.load(Ordering::Relaxed),
            load_errors: self.load_errors.load(Ordering::Relaxed),
            save_errors: self.save_errors.load(Ordering::Relaxed),
            other_calls: self.other_calls.load(Ordering::Relaxed),
            open_connections: self.open_connections.load(Ordering::Relaxed),
            max_connections: self.max_connections.load(Ordering::Relaxed),
        }
    }
}

/// A Slack Web API stand-in that answers every call at once from its own thread, counting
/// instead of recording. Not the testkit's `FakeSlack`: that one keeps every request for the
/// tests' assertions, which at hundreds of thousands of posts would be the bottleneck measured.
struct LoopbackSlack {
    addr: SocketAddr,
    state: Arc<FakeSlackState>,
}

impl LoopbackSlack {
    fn start() -> anyhow::Result<Self> {
        let mut auth = api_success("auth.test");
        auth["user_id"] = json!(BOT_USER);
        auth["team_id"] = json!(TEAM);
        let state = Arc::new(FakeSlackState {
            auth_body: serde_json::to_vec(&auth)?,
            ..FakeSlackState::default()
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").context("Failed to bind the fake Slack")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let shared = state.clone();
        std::thread::Builder::new()
            .name("fake-slack".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(runtime) => runtime,
                    Err(error) => {
                        eprintln!("fake Slack: no runtime: {error}");
                        return;
                    }
                };
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(listener) => listener,
                        Err(error) => {
                            eprintln!("fake Slack: {error}");
                            return;
                        }
                    };
                    loop {
                        match listener.accept().await {
                            Ok((stream, _)) => {
                                let _ = stream.set_nodelay(true);
                                tokio::spawn(serve_fake_slack(stream, shared.clone()));
                            }
                            Err(error) => {
                                eprintln!("fake Slack: accept failed: {error}");
                                tokio::time::sleep(Duration::from_millis(10)).await;
                            }
                        }
                    }
                });
            })
            .context("Failed to start the fake Slack thread")?;
        Ok(Self { addr, state })
    }

    fn api_url(&self) -> String {
        format!("http://{}/api/", self.addr)
    }

    /// Resolves with the time the first `chat.postMessage` to `channel` arrived.
    fn wait_for_post(&self, channel: &str) -> tokio::sync::oneshot::Receiver<Instant> {
        let (sender, receiver) = tokio::sync::oneshot::channel();
        self.state.track.store(true, Ordering::Relaxed);
        self.state
            .waiters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(channel.to_string(), sender);
        receiver
    }
}

/// The fake Slack in a process of its own (ingress): the server's outbound connections then
/// cost this process one descriptor each instead of two, and its CPU is counted apart.
struct FakeSlackProcess {
    child: std::process::Child,
    addr: SocketAddr,
    stats_connection: Option<TcpStream>,
    buf: Vec<u8>,
}

impl FakeSlackProcess {
    fn spawn() -> anyhow::Result<Self> {
        use std::io::BufRead as _;
        let exe = std::env::current_exe().context("Failed to find the bench executable")?;
        let mut child = std::process::Command::new(exe)
            .arg("fake-slack")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .context("Failed to start the fake Slack process")?;
        let stdout = child.stdout.take().context("the fake Slack has no stdout")?;
        let mut line = String::new();
        std::io::BufReader::new(stdout).read_line(&mut line)?;
        let port: u16 = line
            .trim()
            .strip_prefix("PORT ")
            .and_then(|p| p.parse().ok())
            .with_context(|| format!("the fake Slack said {line:?} instead of its port"))?;
        Ok(Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            stats_connection: None,
            buf: Vec::new(),
        })
    }

    fn api_url(&self) -> String {
        format!("http://{}/api/", self.addr)
    }

    async fn stats(&mut self) -> anyhow::Result<FakeStats> {
        self.get("/_stats").await
    }

    /// (event number, wall-clock microseconds) of each channel's first post.
    async fn first_posts(&mut self) -> anyhow::Result<Vec<(u64, u64)>> {
        self.get("/_first_posts").await
    }

    async fn get<T: serde::de::DeserializeOwned>(&mut self, path: &str) -> anyhow::Result<T> {
        let request = format!("GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n");
        if self.stats_connection.is_none() {
            let stream = TcpStream::connect(self.addr).await?;
            stream.set_nodelay(true)?;
            self.stats_connection = Some(stream);
            self.buf.clear();
        }
        let Some(stream) = self.stats_connection.as_mut() else {
            bail!("no connection to the fake Slack");
        };
        let answer = async {
            stream.write_all(request.as_bytes()).await?;
            read_message(stream, &mut self.buf).await
        }
        .await;
        match answer {
            Ok(Some((_, body))) => Ok(serde_json::from_slice(&body)?),
            Ok(None) => {
                self.stats_connection = None;
                bail!("the fake Slack closed the connection")
            }
            Err(error) => {
                self.stats_connection = None;
                Err(error.into())
            }
        }
    }

    /// CPU ticks the fake Slack process has used.
    fn cpu_ticks(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))
            .ok()
            .and_then(|s| parse_stat(&s))
            .map_or(0, |(_, ticks)| ticks)
    }
}

impl Drop for FakeSlackProcess {
    fn drop(&mut self) {
        // Closing its stdin ends it; kill in case it does not notice.
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `threadql-bench fake-slack`: serves until stdin closes, after printing `PORT <n>`.
fn fake_slack_process() -> anyhow::Result<()> {
    let fake = LoopbackSlack::start()?;
    println!("PORT {}", fake.addr.port());
    std::io::stdout().flush()?;
    let mut sink = Vec::new();
    let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
    Ok(())
}

/// Prints a progress line about once a second (called every 100 ms).
fn report_every_second(started: Instant, stats: &FakeStats) {
    let elapsed = started.elapsed().as_secs_f64();
    if ((elapsed * 10.0).round() as u64).is_multiple_of(10) {
        println!(
            "  t={elapsed:5.1}s answered={} posts={} connections-to-slack={} (most {})",
            stats.answered, stats.posts, stats.open_connections, stats.max_connections
        );
    }
}

async fn serve_fake_slack(mut stream: TcpStream, state: Arc<FakeSlackState>) {
    let open = state.open_connections.fetch_add(1, Ordering::Relaxed) + 1;
    state.max_connections.fetch_max(open, Ordering::Relaxed);
    let mut buf = Vec::with_capacity(8192);
    let mut response = Vec::with_capacity(512);
    loop {
        let message = read_message(&mut stream, &mut buf).await;
        let Ok(Some((head, body))) = message else { break };
        let arrived = Instant::now();
        let target = head.first_line.split(' ').nth(1).unwrap_or_default();
        let path = target.split('?').next().unwrap_or_default();
        let reply: std::borrow::Cow<'_, [u8]> = if path.ends_with("/chat.postMessage") {
            let n = state.posts.fetch_add(1, Ordering::Relaxed) + 1;
            let help = find(&body, HELP_MARKER).is_some();
            if help {
                state.help_posts.fetch_add(1, Ordering::Relaxed);
            } else if find(&body, b"reach my state store").is_some() {
                state.load_errors.fetch_add(1, Ordering::Relaxed);
            } else if find(&body, b"couldn't save this thread").is_some() {
                state.save_errors.fetch_add(1, Ordering::Relaxed);
            }
            if let Some(channel) = json_string_field(&body, b"\"channel\":\"") {
                let first = state
                    .answered_channels
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(channel.to_vec());
                if first {
                    state.answered.fetch_add(1, Ordering::Relaxed);
                    // A benchmark channel ends with its event's number (`EventFactory::channel`).
                    let digits = &channel[channel.len().saturating_sub(8)..];
                    if let Some(event) = std::str::from_utf8(digits).ok().and_then(|d| d.parse().ok()) {
                        state
                            .first_posts
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push((event, wall_micros()));
                    }
                    if help {
                        state.answered_with_help.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            if state.track.load(Ordering::Relaxed) {
                record_tracked_post(&state, &body, arrived);
            }
            format!(r#"{{"ok":true,"channel":"C0","ts":"1700000000.{:06}"}}"#, n % 1_000_000)
                .into_bytes()
                .into()
        } else if path.ends_with("/auth.test") {
            state.auth_body.as_slice().into()
        } else if path == "/_stats" {
            serde_json::to_vec(&state.stats()).unwrap_or_default().into()
        } else if path == "/_first_posts" {
            let first_posts = state.first_posts.lock().unwrap_or_else(|e| e.into_inner());
            serde_json::to_vec(&*first_posts).unwrap_or_default().into()
        } else {
            state.other_calls.fetch_add(1, Ordering::Relaxed);
            br#"{"ok":true}"#.as_slice().into()
        };
        response.clear();
        let _ = write!(
            response,
            "HTTP/1.1 200 OK\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: {}\r\n\r\n",
            reply.len()
        );
        response.extend_from_slice(&reply);
        if stream.write_all(&response).await.is_err() || head.close {
            break;
        }
    }
    state.open_connections.fetch_sub(1, Ordering::Relaxed);
}

/// The value of a string field, found by its `"name":"` prefix (no escapes in Slack ids).
fn json_string_field<'a>(body: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    let start = find(body, prefix)? + prefix.len();
    let len = body[start..].iter().position(|&b| b == b'"')?;
    Some(&body[start..start + len])
}

fn record_tracked_post(state: &FakeSlackState, body: &[u8], arrived: Instant) {
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return;
    };
    let Some(channel) = value["channel"].as_str() else {
        return;
    };
    let waiter = state.waiters.lock().unwrap_or_else(|e| e.into_inner()).remove(channel);
    if let Some(waiter) = waiter {
        let _ = waiter.send(arrived);
        let mut sample = state.sample_answer.lock().unwrap_or_else(|e| e.into_inner());
        if sample.is_none() {
            *sample = Some(String::from_utf8_lossy(body).to_string());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The baseline: a bare actix-web handler (HMAC + JSON parse, nothing after the ack)
// ---------------------------------------------------------------------------------------------

struct BareSecret(Vec<u8>);

async fn bare_events(request: HttpRequest, body: web::Bytes, secret: web::Data<BareSecret>) -> HttpResponse {
    let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok());
    let (Some(signature), Some(timestamp)) = (header("x-slack-signature"), header("x-slack-request-timestamp")) else {
        return HttpResponse::Unauthorized().finish();
    };
    let fresh = timestamp
        .parse::<i64>()
        .is_ok_and(|ts| (chrono::Utc::now().timestamp() - ts).abs() <= 300);
    if !fresh {
        return HttpResponse::Unauthorized().finish();
    }
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&secret.0) else {
        return HttpResponse::InternalServerError().finish();
    };
    mac.update(b"v0:");
    mac.update(timestamp.as_bytes());
    mac.update(b":");
    mac.update(&body);
    let expected = format!("v0={}", hex::encode(mac.finalize().into_bytes()));
    if !bool::from(expected.as_bytes().ct_eq(signature.as_bytes())) {
        return HttpResponse::Unauthorized().finish();
    }
    match serde_json::from_slice::<Value>(&body) {
        Ok(_) => HttpResponse::Ok().finish(),
        Err(_) => HttpResponse::BadRequest().finish(),
    }
}

// ---------------------------------------------------------------------------------------------
// Scenario 1: ingress
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Serialize, Deserialize)]
struct IngressResult {
    variant: String,
    connections: usize,
    seconds: f64,
    acks: u64,
    not_ok: u64,
    errors: u64,
    first_error: Option<String>,
    acks_per_second: f64,
    ack: Percentiles,
    /// Events the server counted as accepted (metrics), `None` for the bare handler.
    accepted: Option<u64>,
    posts_during_burst: u64,
    /// Events whose thread got at least one post (each event has its own thread).
    answered: u64,
    /// ... whose first post was the help text (not an error reply).
    answered_with_help: u64,
    /// chat.postMessage requests received, retries and duplicates included.
    posts: u64,
    /// Posts saying the snapshot could not be read / saved.
    #[serde(default)]
    load_error_posts: u64,
    #[serde(default)]
    save_error_posts: u64,
    other_slack_calls: u64,
    /// Seconds from the end of the burst until posts == accepted (`None`: never, within the timeout).
    drain_seconds: Option<f64>,
    /// Seconds from the start of the burst to the last post.
    answer_seconds: f64,
    peak_posts_per_second: f64,
    max_slack_connections: u64,
    turns: BTreeMap<String, u64>,
    redis_message_keys: Option<u64>,
    cpu_burst: Vec<(String, f64)>,
    cpu_drain: Vec<(String, f64)>,
    rss_mib: f64,
    /// Resident memory when the burst ended, with `backlog_burst_end` turns not over yet.
    #[serde(default)]
    rss_burst_end_mib: f64,
    #[serde(default)]
    backlog_burst_end: usize,
    /// The process's peak resident memory (VmHWM).
    #[serde(default)]
    rss_peak_mib: f64,
    /// Once every answer was posted, and once idle actors passivated as well.
    #[serde(default)]
    rss_drained_mib: f64,
    #[serde(default)]
    rss_idle_mib: f64,
    /// How much later than a newer thread each thread got its answer (ms), and how many by more
    /// than a second (the pacing of a channel).
    #[serde(default)]
    answered_after_newer: Percentiles,
    #[serde(default)]
    answered_after_newer_over_1s: usize,
    /// Cores other processes used just before the run.
    background_cores: f64,
}

async fn ingress(args: IngressArgs) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("Failed to find the bench executable")?;
    let dir = work_dir()?;
    print_machine();
    let mut variants: Vec<Vec<String>> = vec![vec!["--target".into(), "bare".into()]];
    for store in &args.stores {
        for dedupe in &args.dedupe {
            variants.push(vec![
                "--target".into(),
                "threadql".into(),
                "--store".into(),
                store
                    .to_possible_value()
                    .map(|v| v.get_name().to_string())
                    .unwrap_or_default(),
                "--dedupe".into(),
                dedupe
                    .to_possible_value()
                    .map(|v| v.get_name().to_string())
                    .unwrap_or_default(),
            ]);
        }
    }
    for &rate in args.sustained_rate.iter().filter(|&&r| r > 0) {
        for store in &args.stores {
            variants.push(vec![
                "--target".into(),
                "threadql".into(),
                "--store".into(),
                store
                    .to_possible_value()
                    .map(|v| v.get_name().to_string())
                    .unwrap_or_default(),
                "--dedupe".into(),
                "in-process".into(),
                format!("--rate={rate}"),
            ]);
        }
    }
    let mut results = Vec::new();
    for variant in variants {
        let out = dir.join(format!("ingress-{}.json", uuid::Uuid::new_v4().simple()));
        println!("ingress: running {} ...", variant.join(" "));
        let mut load = args.load.clone();
        if let Some(rate) = variant.iter().find_map(|a| a.strip_prefix("--rate=")) {
            load.rate = rate.parse().unwrap_or(0);
        }
        let status = std::process::Command::new(&exe)
            .arg("ingress-run")
            .args(load.to_args())
            .args(variant.iter().filter(|a| !a.starts_with("--rate=")))
            .arg("--out")
            .arg(&out)
            .status()
            .context("Failed to start an ingress variant")?;
        if !status.success() {
            eprintln!("ingress variant {} failed ({status})", variant.join(" "));
            continue;
        }
        let text = std::fs::read(&out).with_context(|| format!("Failed to read {}", out.display()))?;
        let _ = std::fs::remove_file(&out);
        let result: IngressResult = serde_json::from_slice(&text)?;
        print_ingress_table(std::slice::from_ref(&result));
        results.push(result);
    }
    println!("\n### ingress summary\n");
    print_ingress_table(&results);
    let write = |results: &[IngressResult]| serde_json::to_vec_pretty(results);
    let summary = dir.join("ingress-results.json");
    std::fs::write(&summary, write(&results)?)?;
    println!("\n(all fields: {})", summary.display());
    Ok(())
}

fn print_ingress_table(results: &[IngressResult]) {
    println!(
        "| variant | acks/s | ack p50 ms | ack p99 ms | ack max ms | accepted | answered during burst (/s) | \
         drained after s | answered (with help text) | duplicate posts | answers/s overall | peak answers/s (1 s) | \
         unanswered |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in results {
        let accepted = r.accepted.map_or("-".to_string(), |a| a.to_string());
        let lost = r
            .accepted
            .map_or("-".to_string(), |a| a.saturating_sub(r.answered).to_string());
        let drained = match (r.accepted, r.drain_seconds) {
            (None, _) => "-".to_string(),
            (Some(_), Some(s)) => format!("{s:.1}"),
            (Some(_), None) => "not drained".to_string(),
        };
        let overall = if r.accepted.is_some() && r.answer_seconds > 0.0 {
            format!("{:.0}", r.answered as f64 / r.answer_seconds)
        } else {
            "-".to_string()
        };
        println!(
            "| {} | {:.0} | {:.2} | {:.2} | {:.1} | {} | {} ({:.0}) | {} | {} ({}) | {} | {} | {:.0} | {} |",
            r.variant,
            r.acks_per_second,
            r.ack.p50,
            r.ack.p99,
            r.ack.max,
            accepted,
            r.posts_during_burst,
            r.posts_during_burst as f64 / r.seconds.max(1e-9),
            drained,
            r.answered,
            r.answered_with_help,
            r.posts.saturating_sub(r.answered),
            overall,
            r.peak_posts_per_second,
            lost
        );
    }
    for r in results {
        println!("\n{}:", r.variant);
        println!(
            "  CPU during burst (cores): {} [other processes before start: {:.2}]",
            format_cores(&r.cpu_burst),
            r.background_cores
        );
        if !r.cpu_drain.is_empty() {
            println!("  CPU while draining (cores): {}", format_cores(&r.cpu_drain));
        }
        if r.not_ok > 0 || r.errors > 0 {
            println!(
                "  not-200: {}, errors: {}, first: {}",
                r.not_ok,
                r.errors,
                r.first_error.as_deref().unwrap_or("-")
            );
        }
        if !r.turns.is_empty() {
            println!("  turns: {:?}", r.turns);
        }
        if r.load_error_posts + r.save_error_posts > 0 {
            println!(
                "  error replies: {} \"can't reach my state store\" (snapshot read failed), {} \"couldn't save\"",
                r.load_error_posts, r.save_error_posts
            );
        }
        if r.accepted.is_some() {
            println!(
                "  other Slack calls: {}, most connections to Slack at once: {}, RSS at end: {}",
                r.other_slack_calls,
                r.max_slack_connections,
                if r.rss_mib > 0.0 {
                    format!("{:.0} MiB", r.rss_mib)
                } else {
                    "n/a (no file descriptor left to read /proc)".into()
                }
            );
            println!(
                "  resident memory: {:.0} MiB when the burst ended ({} turns not over), peak {:.0} MiB, \
                 {:.0} MiB once drained, {:.0} MiB once idle actors passivated",
                r.rss_burst_end_mib, r.backlog_burst_end, r.rss_peak_mib, r.rss_drained_mib, r.rss_idle_mib
            );
            let late = &r.answered_after_newer;
            println!(
                "  first come, first answered: a thread answered after a newer one by p50 {:.1} ms, p99 {:.1} ms, \
                 max {:.1} ms; {} of {} threads by more than 1 s",
                late.p50, late.p99, late.max, r.answered_after_newer_over_1s, late.count
            );
        }
        if let Some(keys) = r.redis_message_keys {
            println!("  message dedupe keys found in Redis: {keys}");
        }
    }
}

/// Reads `/metrics` over one kept-alive connection, opened before the load: a server that ran
/// out of file descriptors can still be read.
struct MetricsReader {
    addr: SocketAddr,
    connection: Option<TcpStream>,
    buf: Vec<u8>,
}

impl MetricsReader {
    async fn connect(addr: SocketAddr) -> anyhow::Result<Self> {
        let mut reader = Self {
            addr,
            connection: None,
            buf: Vec::new(),
        };
        reader.scrape().await?;
        Ok(reader)
    }

    /// Prometheus text lines `name{labels} value`, as a map; retried for up to 30 s.
    async fn scrape(&mut self) -> anyhow::Result<HashMap<String, f64>> {
        let started = Instant::now();
        loop {
            match self.scrape_once().await {
                Ok(metrics) => return Ok(metrics),
                Err(error) if started.elapsed() > Duration::from_secs(30) => return Err(error),
                Err(_) => {
                    self.connection = None;
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }

    async fn scrape_once(&mut self) -> anyhow::Result<HashMap<String, f64>> {
        if self.connection.is_none() {
            let stream = TcpStream::connect(self.addr).await?;
            stream.set_nodelay(true)?;
            self.connection = Some(stream);
            self.buf.clear();
        }
        let Some(stream) = self.connection.as_mut() else {
            bail!("no connection");
        };
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
            .await?;
        let (head, body) = read_message(stream, &mut self.buf)
            .await?
            .context("the server closed the metrics connection")?;
        if head.close {
            self.connection = None;
        }
        Ok(parse_metrics(&String::from_utf8_lossy(&body)))
    }
}

/// Prometheus text lines `name{labels} value`, as a map.
fn parse_metrics(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter_map(|(name, value)| Some((name.to_string(), value.parse().ok()?)))
        .collect()
}

fn metric_sum(metrics: &HashMap<String, f64>, name: &str, labels: &[&str]) -> f64 {
    metrics
        .iter()
        .filter(|(key, _)| key.starts_with(&format!("{name}{{")) && labels.iter().all(|l| key.contains(l)))
        .map(|(_, v)| v)
        .sum()
}

async fn ingress_run(args: &IngressRunArgs) -> anyhow::Result<IngressResult> {
    let factory = Arc::new(EventFactory::new(CHEAP_TEXT, args.load.users)?);
    match args.target {
        Target::Bare => {
            let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
            let addr = listener.local_addr()?;
            let secret = web::Data::new(BareSecret(SIGNING_SECRET.as_bytes().to_vec()));
            let server = HttpServer::new(move || {
                App::new()
                    .app_data(secret.clone())
                    .route("/slack/events", web::post().to(bare_events))
            })
            .listen(listener)?
            .run();
            let handle = server.handle();
            actix_rt::spawn(server);
            wait_until_serving(addr).await?;
            // Every arbiter thread here is an HTTP worker.
            let cpu = CpuWindow::start(label_arbiters(0));
            let load = start_load(addr, factory, &args.load).await??;
            let cpu_burst = cpu.finish(&[("loadgen", load.cpu_ticks)]);
            handle.stop(false).await;
            let seconds = load.elapsed.as_secs_f64();
            Ok(IngressResult {
                variant: format!(
                    "bare actix-web (HMAC + JSON parse only), {} conns closed loop",
                    args.load.connections
                ),
                connections: args.load.connections,
                seconds,
                acks: load.ok,
                not_ok: load.other_status,
                errors: load.errors,
                first_error: load.first_error,
                acks_per_second: load.ok as f64 / seconds,
                ack: Percentiles::of(load.latencies_us),
                accepted: None,
                posts_during_burst: 0,
                answered: 0,
                answered_with_help: 0,
                posts: 0,
                load_error_posts: 0,
                save_error_posts: 0,
                other_slack_calls: 0,
                drain_seconds: None,
                answer_seconds: 0.0,
                peak_posts_per_second: 0.0,
                max_slack_connections: 0,
                turns: BTreeMap::new(),
                redis_message_keys: None,
                cpu_burst,
                cpu_drain: Vec::new(),
                rss_mib: status_kib("VmRSS") as f64 / 1024.0,
                rss_burst_end_mib: 0.0,
                backlog_burst_end: 0,
                rss_peak_mib: status_kib("VmHWM") as f64 / 1024.0,
                rss_drained_mib: 0.0,
                rss_idle_mib: 0.0,
                answered_after_newer: Percentiles::default(),
                answered_after_newer_over_1s: 0,
                background_cores: 0.0,
            })
        }
        Target::Threadql => {
            let store = BenchStore::create(args.store).await?;
            // Its keys (one dedupe key per message) are counted, then deleted with the guard.
            let prefix = RedisPrefix::new("threadql-bench");
            let mut fake = FakeSlackProcess::spawn()?;
            let outcome = threadql_ingress(args, &mut fake, factory, store.url(), prefix.as_str()).await;
            drop(fake);
            store.remove();
            let keys = if args.dedupe == DedupeKind::Redis {
                Some(prefix.count("dd:message:")?)
            } else {
                None
            };
            let mut result = outcome?;
            result.redis_message_keys = keys;
            Ok(result)
        }
    }
}

async fn threadql_ingress(
    args: &IngressRunArgs,
    fake: &mut FakeSlackProcess,
    factory: Arc<EventFactory>,
    database_url: &str,
    prefix: &str,
) -> anyhow::Result<IngressResult> {
    let mut extra = Vec::new();
    if args.dedupe == DedupeKind::Redis {
        extra.push(("REDIS_URL", SHARED_REDIS.to_string()));
        extra.push(("THREADQL_REDIS_PREFIX", prefix.to_string()));
    }
    let config = bench_config(&fake.api_url(), database_url, &extra)?;
    let application = Application::build(config).await.context("Failed to start threadql")?;
    let port = application.port();
    let handle = application.server_handle();
    let app = application.handle();
    actix_rt::spawn(application.run_until_stopped());
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    wait_until_serving(addr).await?;
    let mut metrics_reader = MetricsReader::connect(addr).await?;

    let started = Instant::now();
    let mut samples: Vec<(f64, u64)> = vec![(0.0, 0)];
    let arbiters = label_arbiters(std::thread::available_parallelism().map_or(2, |n| n.get()));
    let tids_of = |kind: &str| {
        let mut tids: Vec<i32> = arbiters.iter().filter(|(_, k)| **k == kind).map(|(t, _)| *t).collect();
        tids.sort_unstable();
        tids.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
    };
    println!(
        "  threads (for perf-summary): --actor-tids {} --http-tids {}",
        tids_of("actor-arbiters"),
        tids_of("http-workers")
    );
    let cpu = CpuWindow::start(arbiters.clone());
    let fake_ticks = fake.cpu_ticks();
    let mut load_done = start_load(addr, factory, &args.load);
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let load = loop {
        tokio::select! {
            outcome = &mut load_done => break outcome??,
            _ = tick.tick() => {
                let stats = fake.stats().await?;
                samples.push((started.elapsed().as_secs_f64(), stats.answered));
                report_every_second(started, &stats);
            }
        }
    };
    let burst_end = started.elapsed().as_secs_f64();
    let rss_burst_end_mib = status_kib("VmRSS") as f64 / 1024.0;
    let backlog_burst_end = app.backlog();
    let fake_burst = fake.cpu_ticks().saturating_sub(fake_ticks);
    let cpu_burst = cpu.finish(&[("loadgen", load.cpu_ticks), ("fake-slack(process)", fake_burst)]);
    let posts_during_burst = fake.stats().await?.answered;
    samples.push((burst_end, posts_during_burst));

    let cpu = CpuWindow::start(arbiters);
    let fake_ticks = fake.cpu_ticks();
    let accepted_of =
        |m: &HashMap<String, f64>| metric_sum(m, "threadql_slack_requests_total", &["outcome=\"accepted\""]) as u64;
    let accepted = accepted_of(&metrics_reader.scrape().await?);
    let drain_limit = Duration::from_secs(args.load.drain_timeout);
    let drain_started = Instant::now();
    let (mut last_posts, mut last_progress) = (posts_during_burst, Instant::now());
    let drain_seconds = loop {
        let stats = fake.stats().await?;
        let posts = stats.answered;
        if posts >= accepted {
            break Some(started.elapsed().as_secs_f64() - burst_end);
        }
        if posts != last_posts {
            (last_posts, last_progress) = (posts, Instant::now());
        }
        if drain_started.elapsed() > drain_limit || last_progress.elapsed() > Duration::from_secs(30) {
            break None;
        }
        tick.tick().await;
        samples.push((started.elapsed().as_secs_f64(), posts));
        report_every_second(started, &stats);
        if samples.len().is_multiple_of(20) {
            // Keeps the metrics connection from idling out (actix closes it after 5 s).
            metrics_reader.scrape().await?;
        }
    };
    let cpu_drain = cpu.finish(&[("fake-slack(process)", fake.cpu_ticks().saturating_sub(fake_ticks))]);
    // Late replies (errors after the count was reached) show up once every turn is over and
    // the outbox is empty.
    if tokio::time::timeout(Duration::from_secs(60), app.wait_until_idle())
        .await
        .is_err()
    {
        println!(
            "  still busy 60 s after the drain: {} turns under way, {} Slack calls queued",
            app.backlog(),
            app.outbox()
        );
    }
    let rss_drained_mib = status_kib("VmRSS") as f64 / 1024.0;
    // Idle actors passivate after the bench's THREADQL_IDLE_SECS, and the Slack client forgets
    // the pacing of channels quiet since the drain.
    let drained_at = Instant::now();
    let idle_deadline = drained_at + Duration::from_secs(BENCH_IDLE_SECS * 4);
    while (app.live_threads() > 0 && Instant::now() < idle_deadline)
        || drained_at.elapsed() < threadql::slack::web_api::QUIET_CHANNELS_FORGOTTEN_WITHIN
    {
        tick.tick().await;
        if samples.len().is_multiple_of(20) {
            metrics_reader.scrape().await?;
        }
    }
    let rss_idle_mib = status_kib("VmRSS") as f64 / 1024.0;
    if args.exit_when_idle {
        println!(
            "  idle: {rss_idle_mib:.0} MiB resident ({} MiB anonymous, {} MiB files), {} live threads; exiting \
             without freeing",
            status_kib("RssAnon") / 1024,
            status_kib("RssFile") / 1024,
            app.live_threads()
        );
        std::process::exit(0);
    }
    let metrics = metrics_reader.scrape().await?;
    let mut turns = BTreeMap::new();
    for (key, value) in metrics.iter().filter(|(_, value)| **value > 0.0) {
        if let Some(labels) = key.strip_prefix("threadql_turns_total{") {
            turns.insert(labels.trim_end_matches('}').to_string(), *value as u64);
        }
        if key.starts_with("threadql_slack_api_calls_total{") && !key.contains("outcome=\"ok\"") {
            turns.insert(format!("slack_api {key}"), *value as u64);
        }
    }
    let stats = fake.stats().await?;
    let posts_total = stats.answered;
    let late_us = answered_after_newer(&load.acked, &fake.first_posts().await?);
    let answered_after_newer_over_1s = late_us.iter().filter(|&&us| us > 1_000_000).count();
    let last_post_at = samples
        .iter()
        .find(|(_, p)| *p >= posts_total)
        .map_or(started.elapsed().as_secs_f64(), |(t, _)| *t);
    let mut peak: f64 = 0.0;
    for (i, (t, p)) in samples.iter().enumerate() {
        if let Some((t0, p0)) = samples[..i].iter().rev().find(|(t0, _)| t - t0 >= 1.0) {
            peak = peak.max((p - p0) as f64 / (t - t0));
        }
    }
    let rss_mib = status_kib("VmRSS") as f64 / 1024.0;
    handle.stop(false).await;
    let seconds = load.elapsed.as_secs_f64();
    let store = match args.store {
        StoreKind::Sqlite => "SQLite",
        StoreKind::Postgres => "Postgres",
    };
    let dedupe = match args.dedupe {
        DedupeKind::InProcess => "in-process dedupe",
        DedupeKind::Redis => "Redis dedupe+limits",
    };
    let load_shape = match args.load.rate {
        0 => format!("{} conns closed loop", args.load.connections),
        rate => format!("open loop {rate}/s"),
    };
    Ok(IngressResult {
        variant: format!("threadql, {store} store, {dedupe}, {load_shape}"),
        connections: args.load.connections,
        seconds,
        acks: load.ok,
        not_ok: load.other_status,
        errors: load.errors,
        first_error: load.first_error,
        acks_per_second: load.ok as f64 / seconds,
        ack: Percentiles::of(load.latencies_us),
        accepted: Some(accepted),
        posts_during_burst,
        answered: posts_total,
        answered_with_help: stats.answered_with_help,
        posts: stats.posts,
        load_error_posts: stats.load_errors,
        save_error_posts: stats.save_errors,
        other_slack_calls: stats.other_calls,
        drain_seconds,
        answer_seconds: last_post_at,
        peak_posts_per_second: peak,
        max_slack_connections: stats.max_connections,
        turns,
        redis_message_keys: None,
        cpu_burst,
        cpu_drain,
        rss_mib,
        rss_burst_end_mib,
        backlog_burst_end,
        rss_peak_mib: status_kib("VmHWM") as f64 / 1024.0,
        rss_drained_mib,
        rss_idle_mib,
        answered_after_newer: Percentiles::of(late_us),
        answered_after_newer_over_1s,
        background_cores: 0.0,
    })
}

// ---------------------------------------------------------------------------------------------
// Thread-actor scenarios (memory, activation): the registry driven directly
// ---------------------------------------------------------------------------------------------

/// Replies go nowhere: these scenarios measure the actors, not Slack.
struct NoopReplier;

#[async_trait::async_trait]
impl Replier for NoopReplier {
    async fn reply(&self, _thread: &ThreadKey, _reply: Reply) -> anyhow::Result<()> {
        Ok(())
    }
}

fn bench_thread(prefix: &str, i: usize) -> anyhow::Result<(ThreadKey, String)> {
    let ts = format!("{}.{:06}", 1_700_000_000 + i / 1_000_000, i % 1_000_000);
    let key = ThreadKey::parse(TEAM, &format!("C{prefix}{i:09}"), &ts).context("bench thread key")?;
    Ok((key, ts))
}

/// Sends `text` to `thread` and returns when its turn is over.
async fn send_and_wait(registry: &ThreadRegistry, thread: ThreadKey, ts: String, text: &str) -> anyhow::Result<()> {
    let (done, finished) = tokio::sync::oneshot::channel();
    registry.dispatch(
        thread,
        UserMessage::new("U0BENCH01", text, &ts, Origin::Mention).with_done(done),
    );
    tokio::time::timeout(Duration::from_secs(60), finished)
        .await
        .context("a turn took more than 60 s")?
        .context("a turn ended without reporting")
}

/// Sends one cheap message to each thread in `range`, `window` in flight at a time.
async fn dispatch_range(
    registry: &ThreadRegistry,
    prefix: &str,
    range: std::ops::Range<usize>,
    window: usize,
) -> anyhow::Result<()> {
    let mut in_flight = FuturesUnordered::new();
    for i in range {
        let (key, ts) = bench_thread(prefix, i)?;
        in_flight.push(send_and_wait(registry, key, ts, CHEAP_TEXT));
        if in_flight.len() >= window {
            if let Some(outcome) = in_flight.next().await {
                outcome?;
            }
        }
    }
    while let Some(outcome) = in_flight.next().await {
        outcome?;
    }
    Ok(())
}

fn process_cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| parse_stat(&s))
        .map_or(0.0, |(_, ticks)| ticks as f64 / TICKS_PER_SECOND)
}

// ---------------------------------------------------------------------------------------------
// Scenario 2: memory
// ---------------------------------------------------------------------------------------------

async fn memory(args: MemoryArgs) -> anyhow::Result<()> {
    let fake = LoopbackSlack::start()?;
    let store = BenchStore::create(args.store).await?;
    let outcome = memory_with(&args, &fake, store.url()).await;
    store.remove();
    outcome
}

async fn memory_with(args: &MemoryArgs, fake: &LoopbackSlack, database_url: &str) -> anyhow::Result<()> {
    let config = bench_config(&fake.api_url(), database_url, &[])?;
    let backends = Backends::build(&config).await?;
    let services = backends.thread_services(&config, Arc::new(NoopReplier));
    let arbiters = std::thread::available_parallelism().map_or(2, |n| n.get());
    let registry = ThreadRegistry::start(services, arbiters, 0);
    let prefix = uuid::Uuid::new_v4().simple().to_string()[..4].to_uppercase();

    dispatch_range(&registry, &prefix, 0..args.warmup, args.window).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (rss_before, anon_before) = (status_kib("VmRSS"), status_kib("RssAnon"));
    let started = Instant::now();
    dispatch_range(&registry, &prefix, args.warmup..args.warmup + args.threads, args.window).await?;
    let elapsed = started.elapsed();
    // Let the last turns' temporary allocations go.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (rss_after, anon_after) = (status_kib("VmRSS"), status_kib("RssAnon"));
    let live = registry.live_threads();

    let cpu_before = process_cpu_seconds();
    let idle_started = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.idle_secs)).await;
    let idle_cpu = (process_cpu_seconds() - cpu_before) / idle_started.elapsed().as_secs_f64();
    let rss_idle = status_kib("VmRSS");

    let per_thread = |before: u64, after: u64| after.saturating_sub(before) as f64 * 1024.0 / args.threads as f64;
    let store = match args.store {
        StoreKind::Sqlite => "SQLite",
        StoreKind::Postgres => "Postgres",
    };
    println!(
        "| live threads | store | RSS before (MiB) | RSS after (MiB) | bytes/thread (VmRSS) | bytes/thread (RssAnon) | \
         dispatch rate (threads/s) | idle CPU, {} s (cores) | RSS after idle (MiB) |",
        args.idle_secs
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {live} | {store} | {:.1} | {:.1} | {:.0} | {:.0} | {:.0} | {:.3} | {:.1} |",
        rss_before as f64 / 1024.0,
        rss_after as f64 / 1024.0,
        per_thread(rss_before, rss_after),
        per_thread(anon_before, anon_after),
        args.threads as f64 / elapsed.as_secs_f64(),
        idle_cpu,
        rss_idle as f64 / 1024.0,
    );
    println!(
        "(baseline after {} warm-up threads; each thread: one `help` turn, snapshot saved, no-op replier)",
        args.warmup
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Scenario 3: activation from snapshot, snapshot writes per second (Postgres)
// ---------------------------------------------------------------------------------------------

async fn activation(args: ActivationArgs) -> anyhow::Result<()> {
    let fake = LoopbackSlack::start()?;
    let store = BenchStore::create(StoreKind::Postgres).await?;
    let outcome = activation_with(&args, &fake, store.url()).await;
    store.remove();
    outcome
}

/// Writes for `seconds` from `writers` tasks; `update` rewrites each task's own threads (version
/// checked), otherwise every write inserts a new thread. Returns (writes, errors, latencies).
async fn snapshot_writes(
    store: Arc<dyn StateStore>,
    state: &threadql::domain::ThreadState,
    writers: usize,
    seconds: u64,
    prefix: &str,
    threads_per_writer: usize,
    update: bool,
) -> (u64, u64, Vec<u32>, Vec<Vec<(ThreadKey, i64)>>) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let tasks = FuturesUnordered::new();
    for writer in 0..writers {
        let store = store.clone();
        let state = state.clone();
        let prefix = prefix.to_string();
        tasks.push(async move {
            let mut own: Vec<(ThreadKey, i64)> = Vec::new();
            let (mut writes, mut errors, mut latencies) = (0u64, 0u64, Vec::new());
            let mut n = 0usize;
            while Instant::now() < deadline {
                let (key, expected) = if update && own.len() >= threads_per_writer.max(1) {
                    let slot = n % own.len();
                    own[slot].clone()
                } else {
                    let i = writer * 10_000_000 + n;
                    match bench_thread(&prefix, i) {
                        Ok((key, _)) => (key, 0),
                        Err(_) => break,
                    }
                };
                let started = Instant::now();
                match store.save_snapshot(&key, expected, &state).await {
                    Ok(version) => {
                        writes += 1;
                        latencies.push(micros(started.elapsed()));
                        if expected == 0 {
                            if own.len() < threads_per_writer {
                                own.push((key, version));
                            }
                        } else {
                            let slot = n % own.len();
                            own[slot].1 = version;
                        }
                    }
                    Err(_) => errors += 1,
                }
                n += 1;
            }
            (writes, errors, latencies, own)
        });
    }
    let results: Vec<_> = tasks.collect().await;
    let (mut writes, mut errors, mut latencies, mut owned) = (0, 0, Vec::new(), Vec::new());
    for (w, e, l, o) in results {
        writes += w;
        errors += e;
        latencies.extend(l);
        owned.push(o);
    }
    (writes, errors, latencies, owned)
}

async fn activation_with(args: &ActivationArgs, fake: &LoopbackSlack, database_url: &str) -> anyhow::Result<()> {
    let config = bench_config(&fake.api_url(), database_url, &[])?;
    let backends = Backends::build(&config).await?;
    let services = backends.thread_services(&config, Arc::new(NoopReplier));
    let arbiters = std::thread::available_parallelism().map_or(2, |n| n.get());

    // A realistic snapshot: the state of a thread after one real question.
    let seeding = ThreadRegistry::start(services.clone(), arbiters, 0);
    let (seed, seed_ts) = bench_thread("SEED", 0)?;
    send_and_wait(&seeding, seed.clone(), seed_ts, E2E_QUESTION).await?;
    let state = backends
        .store
        .load_snapshot(&seed)
        .await
        .map_err(|e| anyhow!("{e}"))?
        .context("the seed thread has no snapshot")?
        .state;
    let snapshot_bytes = serde_json::to_vec(&state)?.len();
    println!("snapshot of a thread after `{E2E_QUESTION}`: {snapshot_bytes} bytes of JSON");

    // Snapshot writes: through the store threadql uses (batched), then the plain Postgres store,
    // at each number of concurrent writers.
    let prefix = uuid::Uuid::new_v4().simple().to_string()[..4].to_uppercase();
    let plain: Arc<dyn StateStore> = Arc::new(PostgresStore::connect(database_url).await?);
    let secs = args.write_secs as f64;
    println!(
        "\n| snapshot writes ({} s each) | tasks | writes/s | errors | p50 ms | p99 ms |",
        args.write_secs
    );
    println!("|---|---|---|---|---|---|");
    let mut owned = Vec::new();
    for (level, &writers) in args.writers.iter().enumerate() {
        let keep = if level == 0 {
            (args.sequential + args.concurrent).div_ceil(writers.max(1)) + 1
        } else {
            0
        };
        let runs = [
            (
                "batched store (what threadql uses), new threads",
                backends.store.clone(),
                "I",
                keep,
                false,
            ),
            (
                "batched store, updates of existing threads",
                backends.store.clone(),
                "U",
                20,
                true,
            ),
            (
                "plain PostgresStore (one statement per write), new threads",
                plain.clone(),
                "P",
                0,
                false,
            ),
        ];
        for (name, store, tag, keep, update) in runs {
            let (writes, errors, latencies, kept) = snapshot_writes(
                store,
                &state,
                writers,
                args.write_secs,
                &format!("{prefix}{tag}{level}"),
                keep,
                update,
            )
            .await;
            if tag == "I" && level == 0 {
                owned = kept;
            }
            let p = Percentiles::of(latencies);
            println!(
                "| {name} | {writers} | {:.0} | {errors} | {:.2} | {:.2} |",
                writes as f64 / secs,
                p.p50,
                p.p99
            );
        }
    }

    // Its pool's connections are not needed any more (Postgres allows 100 in all).
    drop(plain);

    // Activation: a fresh registry, threads that exist only as snapshots.
    let persisted: Vec<ThreadKey> = owned.into_iter().flatten().map(|(key, _)| key).collect();
    if persisted.len() < args.sequential + args.concurrent {
        bail!(
            "only {} snapshots were written; lower --sequential/--concurrent",
            persisted.len()
        );
    }
    let registry = ThreadRegistry::start(services.clone(), arbiters, 0);
    let (mut cold, mut warm, mut extra) = (Vec::new(), Vec::new(), Vec::new());
    for key in &persisted[..args.sequential] {
        let ts = key.thread_ts().to_string();
        let started = Instant::now();
        send_and_wait(&registry, key.clone(), ts.clone(), CHEAP_TEXT).await?;
        let first = started.elapsed();
        cold.push(micros(first));
        let started = Instant::now();
        send_and_wait(&registry, key.clone(), ts, CHEAP_TEXT).await?;
        let second = started.elapsed();
        warm.push(micros(second));
        extra.push(micros(first.saturating_sub(second)));
    }
    // The store read an activation waits for, alone (threads the activations above did not use).
    let mut loads = Vec::new();
    for key in persisted.iter().rev().take(args.sequential) {
        let started = Instant::now();
        backends.store.load_snapshot(key).await.map_err(|e| anyhow!("{e}"))?;
        loads.push(micros(started.elapsed()));
    }
    let concurrent_keys = &persisted[args.sequential..args.sequential + args.concurrent];
    let started = Instant::now();
    let mut in_flight = FuturesUnordered::new();
    let mut concurrent = Vec::with_capacity(concurrent_keys.len());
    for key in concurrent_keys {
        let registry = &registry;
        in_flight.push(async move {
            let begun = Instant::now();
            send_and_wait(registry, key.clone(), key.thread_ts().to_string(), CHEAP_TEXT)
                .await
                .map(|_| micros(begun.elapsed()))
        });
        if in_flight.len() >= args.concurrency {
            if let Some(latency) = in_flight.next().await {
                concurrent.push(latency?);
            }
        }
    }
    while let Some(latency) = in_flight.next().await {
        concurrent.push(latency?);
    }
    let concurrent_rate = concurrent.len() as f64 / started.elapsed().as_secs_f64();
    let (cold, warm, concurrent) = (
        Percentiles::of(cold),
        Percentiles::of(warm),
        Percentiles::of(concurrent),
    );
    println!("\n| activation (Postgres store, `help` turn) | n | p50 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|");
    println!(
        "| first message to a passivated thread -> done (activation + turn), one at a time | {} | {:.2} | {:.2} | {:.1} |",
        cold.count, cold.p50, cold.p99, cold.max
    );
    println!(
        "| second message to the now live thread -> done (turn only) | {} | {:.2} | {:.2} | {:.1} |",
        warm.count, warm.p50, warm.p99, warm.max
    );
    println!(
        "| first message, {} in flight ({:.0} activations/s) | {} | {:.2} | {:.2} | {:.1} |",
        args.concurrency, concurrent_rate, concurrent.count, concurrent.p50, concurrent.p99, concurrent.max
    );
    let (extra, loads) = (Percentiles::of(extra), Percentiles::of(loads));
    println!(
        "| activation alone: first minus second message of the same thread | {} | {:.2} | {:.2} | {:.1} |",
        extra.count, extra.p50, extra.p99, extra.max
    );
    println!(
        "| the store read it waits for: load_snapshot of a persisted thread, one at a time | {} | {:.2} | {:.2} | {:.1} |",
        loads.count, loads.p50, loads.p99, loads.max
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Scenario 4: end to end
// ---------------------------------------------------------------------------------------------

/// Questions, each a new thread, from `concurrency` connections spread round robin over
/// `addresses` for `duration`; each connection waits for its question's answer before the
/// next. Returns the question → answer and ack latencies (µs) and the questions unanswered
/// within 30 s.
async fn closed_loop(
    addresses: &[SocketAddr],
    concurrency: usize,
    duration: Duration,
    fake: &Arc<LoopbackSlack>,
    factory: &Arc<EventFactory>,
    counter: &Arc<AtomicU64>,
) -> anyhow::Result<(Vec<u32>, Vec<u32>, u64)> {
    let deadline = Instant::now() + duration;
    let tasks = FuturesUnordered::new();
    for connection in 0..concurrency {
        let address = addresses[connection % addresses.len()];
        let (fake, factory, counter) = (fake.clone(), factory.clone(), counter.clone());
        tasks.push(async move {
            let secret = SecretString::from(SIGNING_SECRET);
            let mut stream = TcpStream::connect(address).await?;
            stream.set_nodelay(true)?;
            let (mut buf, mut body, mut request) = (Vec::new(), String::new(), Vec::new());
            let (mut e2e, mut acks, mut missing) = (Vec::new(), Vec::new(), 0u64);
            while Instant::now() < deadline {
                let seq = counter.fetch_add(1, Ordering::Relaxed);
                factory.render(seq, &mut body);
                build_request(&mut request, body.as_bytes(), &secret);
                let answered = fake.wait_for_post(&factory.channel(seq));
                let sent = Instant::now();
                let status = exchange(&mut stream, &request, &mut buf).await?;
                acks.push(micros(sent.elapsed()));
                if status != 200 {
                    bail!("the server answered HTTP {status}");
                }
                match tokio::time::timeout(Duration::from_secs(30), answered).await {
                    Ok(Ok(at)) => e2e.push(micros(at.saturating_duration_since(sent))),
                    _ => missing += 1,
                }
            }
            anyhow::Ok((e2e, acks, missing))
        });
    }
    let results: Vec<_> = tasks.collect().await;
    let (mut e2e, mut acks, mut missing) = (Vec::new(), Vec::new(), 0);
    for result in results {
        let (e, a, m) = result?;
        e2e.extend(e);
        acks.extend(a);
        missing += m;
    }
    Ok((e2e, acks, missing))
}

async fn e2e(args: E2eArgs) -> anyhow::Result<()> {
    let fake = Arc::new(LoopbackSlack::start()?);
    println!(
        "| store | in flight | questions | answered | e2e p50 ms | e2e p99 ms | e2e max ms | ack p50 ms | ack p99 ms | answers/s |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for kind in &args.stores {
        let store = BenchStore::create(*kind).await?;
        let outcome = e2e_with(&args, fake.clone(), *kind, store.url()).await;
        store.remove();
        outcome?;
    }
    let sample = fake
        .state
        .sample_answer
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    if let Some(sample) = sample {
        let text = serde_json::from_str::<Value>(&sample)
            .ok()
            .and_then(|v| v["text"].as_str().map(str::to_string))
            .unwrap_or_default();
        println!("(a posted answer's text: {text:?})");
    }
    Ok(())
}

async fn e2e_with(args: &E2eArgs, fake: Arc<LoopbackSlack>, kind: StoreKind, database_url: &str) -> anyhow::Result<()> {
    let config = bench_config(&fake.api_url(), database_url, &[])?;
    let application = Application::build(config).await.context("Failed to start threadql")?;
    let port = application.port();
    let handle = application.server_handle();
    actix_rt::spawn(application.run_until_stopped());
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    // Distinct users: the per-user rate limit and query caps never apply.
    let factory = Arc::new(EventFactory::new(E2E_QUESTION, u64::MAX)?);
    let counter = Arc::new(AtomicU64::new(0));
    for &concurrency in &args.concurrency {
        let started = Instant::now();
        let duration = Duration::from_secs(args.duration);
        let (e2e, acks, missing) = closed_loop(&[addr], concurrency, duration, &fake, &factory, &counter).await?;
        let elapsed = started.elapsed().as_secs_f64();
        let answered = e2e.len();
        let (e2e, acks) = (Percentiles::of(e2e), Percentiles::of(acks));
        println!(
            "| {:?} | {concurrency} | {} | {answered} | {:.2} | {:.2} | {:.1} | {:.2} | {:.2} | {:.0} |",
            kind,
            acks.count,
            e2e.p50,
            e2e.p99,
            e2e.max,
            acks.p50,
            acks.p99,
            answered as f64 / elapsed
        );
        if missing > 0 {
            println!("({missing} questions got no answer within 30 s)");
        }
    }
    handle.stop(false).await;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Profile summary: perf samples by thread and by the component that owns them
// ---------------------------------------------------------------------------------------------

/// Components, recognised by the frame nearest to the sampled instruction that names one of
/// them (so time in malloc, hashing or the kernel is charged to the component that asked).
const COMPONENTS: &[(&str, &[&str])] = &[
    ("perf sampling itself", &["perf_event", "perf_output"]),
    (
        "kernel: log file writes",
        &["ext4_", "ovl_", "generic_perform_write", "jbd2"],
    ),
    (
        "kernel: loopback TCP send/recv",
        &["tcp_", "sock_", "__sys_sendto", "__sys_recvfrom", "skb_", "ip_"],
    ),
    ("kernel: epoll waits", &["do_epoll_wait", "ep_poll", "ep_send_events"]),
    (
        "kernel: thread wake-ups, context switches",
        &["futex", "try_to_wake_up", "finish_task_switch", "__schedule"],
    ),
    (
        "kernel: page faults, heap growth",
        &["exc_page_fault", "mprotect", "do_mmap", "__x64_sys_munmap", "do_brk"],
    ),
    (
        "HMAC-SHA256 signature check",
        &["sha2::", "hmac::", "SignatureVerifier", "verify::sign"],
    ),
    ("dedupe (in-process map, prune)", &["SeenKeys"]),
    ("rate limiter", &["IngressGate", "LocalLimiter"]),
    ("Redis client", &["redis::"]),
    ("snapshot JSON encode/decode", &["encode_state", "decode_state"]),
    ("Postgres client (sqlx, rustls)", &["sqlx_", "rustls::"]),
    ("SQLite client (sqlx, libsqlite3)", &["sqlite3", "libsqlite"]),
    ("snapshot batcher", &["SnapshotBatcher", "write_batches"]),
    ("Block Kit rendering", &["slack::blocks"]),
    (
        "Slack Web API client (hyper, slack-morphism)",
        &["slack_morphism", "hyper_util", "hyper::", "SlackWebApi", "web_api::"],
    ),
    (
        "registry: route/spawn actor",
        &["ThreadRegistry", "start_in_arbiter", "ArbiterHandle"],
    ),
    (
        "thread actor + turn logic",
        &["TurnContext", "ThreadActor", "Command::parse", "conversation::"],
    ),
    ("actix actor runtime (contexts, mailboxes, timers)", &["actix::"]),
    (
        "tracing (spans, log lines)",
        &["tracing_subscriber", "tracing_actix_web", "tracing_core", "tracing::"],
    ),
    ("prometheus metrics", &["prometheus::"]),
    (
        "event handler: JSON parse + classify",
        &["slack::routes", "slack::events", "slack::ingress", "serde_json"],
    ),
    (
        "actix-web HTTP server (parse, respond, sockets)",
        &["actix_http", "actix_web", "actix_server", "httparse", "actix_service"],
    ),
    ("tokio runtime (polling, epoll, timers)", &["tokio::", "mio::", "epoll"]),
];

fn perf_summary(args: &PerfSummaryArgs) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(&args.script).with_context(|| format!("Failed to read {}", args.script.display()))?;
    // (thread group, component) -> (samples, samples whose leaf is in the kernel)
    let mut counts: BTreeMap<(String, String), (u64, u64)> = BTreeMap::new();
    let mut by_group: BTreeMap<String, u64> = BTreeMap::new();
    let mut total = 0u64;
    for sample in text.split("\n\n") {
        let mut lines = sample.lines().filter(|l| !l.trim().is_empty());
        let Some(header) = lines.next() else { continue };
        let tid: i32 = header
            .split_whitespace()
            .next()
            .and_then(|t| t.parse().ok())
            .unwrap_or(0);
        let frames: Vec<(bool, &str)> = lines
            .filter_map(|line| {
                let (ip, symbol) = line.trim().split_once(' ')?;
                Some((ip.len() >= 16 && ip.starts_with("ffff"), symbol))
            })
            .collect();
        let group = if args.actor_tids.contains(&tid) {
            "actor arbiters"
        } else if args.http_tids.contains(&tid) {
            "HTTP workers"
        } else if frames
            .iter()
            .any(|(_, s)| s.contains("connection_loop") || s.contains("start_load"))
        {
            "load generator"
        } else {
            "other threads (main/system, sqlx, tokio)"
        };
        let component = frames
            .iter()
            .find_map(|(_, symbol)| {
                COMPONENTS
                    .iter()
                    .find(|(_, markers)| markers.iter().any(|m| symbol.contains(m)))
                    .map(|(name, _)| *name)
            })
            .unwrap_or("unattributed (allocator/kernel, no owner frame)");
        let component = if group == "load generator" {
            "load generator"
        } else {
            component
        };
        let kernel = frames.first().is_some_and(|(k, _)| *k);
        let entry = counts
            .entry((group.to_string(), component.to_string()))
            .or_insert((0, 0));
        entry.0 += 1;
        entry.1 += u64::from(kernel);
        *by_group.entry(group.to_string()).or_insert(0) += 1;
        total += 1;
    }
    println!("{total} samples\n");
    println!("| thread group | component | share of all samples | of which in the kernel |");
    println!("|---|---|---|---|");
    let mut rows: Vec<_> = counts.into_iter().collect();
    rows.sort_by(|a, b| {
        let group_a = by_group.get(&a.0 .0).copied().unwrap_or(0);
        let group_b = by_group.get(&b.0 .0).copied().unwrap_or(0);
        group_b
            .cmp(&group_a)
            .then(a.0 .0.cmp(&b.0 .0))
            .then(b.1 .0.cmp(&a.1 .0))
    });
    for ((group, component), (n, kernel)) in rows {
        let share = n as f64 * 100.0 / total.max(1) as f64;
        if share < 0.5 {
            continue;
        }
        println!(
            "| {group} ({:.0}%) | {component} | {share:.1}% | {:.0}% |",
            by_group.get(&group).copied().unwrap_or(0) as f64 * 100.0 / total.max(1) as f64,
            kernel as f64 * 100.0 / n.max(1) as f64
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lateness_counts_only_threads_a_newer_one_overtook() {
        // Acked in the order 1, 2, 3, 4; answered 2 first, then 1 (5 ms after 2), 4, 3 (1 ms after 4).
        let acked = [(1, 100), (2, 200), (3, 300), (4, 400)];
        let answered = [(2, 1_000), (1, 6_000), (4, 7_000), (3, 8_000), (9, 50)];
        let mut late = answered_after_newer(&acked, &answered);
        late.sort_unstable();
        assert_eq!(late, vec![0, 0, 1_000, 5_000]);
    }
}
