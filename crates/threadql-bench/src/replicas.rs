//! Scenario `replicas`: several replicas over one Postgres (issue 13), in this process. Questions
//! (each a new thread, from distinct users) are spread round robin over one or three replicas
//! from the same closed-loop client; then the forwarding hop alone: follow-ups in threads the
//! first replica owns, sent to it or to another replica (which forwards them).
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use secrecy::SecretString;
use threadql::startup::Application;
use threadql_testkit::{free_port, thread_reply, ServerProcess, SIGNING_SECRET};
use tokio::net::TcpStream;

use crate::{
    bench_config, build_request, closed_loop, exchange, micros, BenchStore, EventFactory, LoopbackSlack, Percentiles,
    StoreKind, E2E_QUESTION,
};

#[derive(Args, Clone, Debug)]
pub struct ReplicasArgs {
    /// Seconds of load per variant.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Connections of the closed-loop client, spread over the replicas.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Follow-ups timed for the forwarding hop (half to the owner, half forwarded).
    #[arg(long, default_value_t = 200)]
    follow_ups: usize,
    /// Failovers timed: two `threadql serve` processes (the release binary beside this one),
    /// the owner of a thread killed with SIGKILL, its next message sent to the other.
    #[arg(long, default_value_t = 5)]
    failovers: usize,
    /// `THREADQL_LEASE_SECS` of the failover processes.
    #[arg(long, default_value_t = 10)]
    lease_secs: u64,
}

pub async fn run(args: ReplicasArgs) -> anyhow::Result<()> {
    let fake = Arc::new(LoopbackSlack::start()?);
    println!("| replicas | connections | questions | answered | ack p50 ms | ack p99 ms | e2e p50 ms | e2e p99 ms | acks/s | answers/s |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for (label, count, clustered) in [
        ("1 (single-replica mode)", 1, false),
        ("1 (cluster mode)", 1, true),
        ("3", 3, true),
    ] {
        let store = BenchStore::create(StoreKind::Postgres).await?;
        let outcome = variant(&args, &fake, label, count, clustered, store.url()).await;
        store.remove();
        outcome?;
    }
    if args.failovers > 0 {
        let store = BenchStore::create(StoreKind::Postgres).await?;
        let outcome = failover(&args, &fake, store.url()).await;
        store.remove();
        outcome?;
    }
    Ok(())
}

/// From SIGKILL of a thread's owner to the answer of the thread's next message, sent to the
/// other replica as soon as the owner is dead: the lease's remainder, the other replica's next
/// claim (every 0.5 s while the owner is out of reach) and one turn.
async fn failover(args: &ReplicasArgs, fake: &Arc<LoopbackSlack>, database_url: &str) -> anyhow::Result<()> {
    let binary = std::env::current_exe()?.with_file_name("threadql");
    if !binary.exists() {
        println!(
            "failover: skipped, no threadql binary at {} (cargo build --release)",
            binary.display()
        );
        return Ok(());
    }
    let binary = binary.to_string_lossy().to_string();
    let settings = |port: u16| {
        vec![
            ("THREADQL_ADVERTISE_URL", format!("http://127.0.0.1:{port}")),
            ("THREADQL_CLUSTER_SECRET", "bench-cluster-secret".to_string()),
            ("THREADQL_LEASE_SECS", args.lease_secs.to_string()),
        ]
    };
    let factory = EventFactory::new(E2E_QUESTION, u64::MAX)?;
    let mut body = String::new();
    let mut failovers = Vec::new();
    for seq in 0..args.failovers as u64 {
        let mut owner = ServerProcess::start(&binary, &fake.api_url(), database_url, &settings(free_port())).await;
        let other = ServerProcess::start(&binary, &fake.api_url(), database_url, &settings(free_port())).await;
        factory.render(seq, &mut body);
        let question: serde_json::Value = serde_json::from_str(&body)?;
        let channel = factory.channel(seq);
        let root = question["event"]["ts"].as_str().unwrap_or_default().to_string();
        let answered = fake.wait_for_post(&channel);
        owner.post_event(&question).await;
        tokio::time::timeout(Duration::from_secs(30), answered).await??;
        // The turn's last snapshot write follows its answer closely.
        tokio::time::sleep(Duration::from_millis(500)).await;

        owner.kill_9();
        let killed = Instant::now();
        let event = thread_reply(&format!("EvK{seq}"), &channel, &root, &format!("{root}1"), "show sql");
        let answered = fake.wait_for_post(&channel);
        other.post_event(&event).await;
        let patience = Duration::from_secs(args.lease_secs + 30);
        let at = tokio::time::timeout(patience, answered).await??;
        failovers.push(micros(at.saturating_duration_since(killed)));
    }
    let fastest = f64::from(failovers.iter().copied().min().unwrap_or_default()) / 1000.0;
    let failovers = Percentiles::of(failovers);
    println!(
        "failover after SIGKILL (lease {} s, {} runs): the next message answered after min {fastest:.0} / p50 {:.0} / max {:.0} ms",
        args.lease_secs, failovers.count, failovers.p50, failovers.max
    );
    Ok(())
}

async fn variant(
    args: &ReplicasArgs,
    fake: &Arc<LoopbackSlack>,
    label: &str,
    count: usize,
    clustered: bool,
    database_url: &str,
) -> anyhow::Result<()> {
    let mut addresses = Vec::new();
    let (mut handles, mut running) = (Vec::new(), Vec::new());
    for _ in 0..count {
        let mut extra = vec![("THREADQL_MAX_QUERIES", "1000".to_string())];
        if clustered {
            extra.push(("THREADQL_ADVERTISE_URL", format!("http://127.0.0.1:{}", free_port())));
            extra.push(("THREADQL_CLUSTER_SECRET", "bench-cluster-secret".to_string()));
        }
        let config = bench_config(&fake.api_url(), database_url, &extra)?;
        let application = Application::build(config).await.context("Failed to start threadql")?;
        addresses.push(format!("127.0.0.1:{}", application.port()).parse::<SocketAddr>()?);
        handles.push(application.server_handle());
        running.push(actix_rt::spawn(application.run_until_stopped()));
    }
    let factory = Arc::new(EventFactory::new(E2E_QUESTION, u64::MAX)?);
    let counter = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let duration = Duration::from_secs(args.duration);
    let (e2e, acks, missing) = closed_loop(&addresses, args.concurrency, duration, fake, &factory, &counter).await?;
    let elapsed = started.elapsed().as_secs_f64();
    if missing > 0 {
        println!("({missing} questions got no answer within 30 s)");
    }
    let answered = e2e.len();
    let (e2e, acks) = (Percentiles::of(e2e), Percentiles::of(acks));
    println!(
        "| {label} | {} | {} | {answered} | {:.2} | {:.2} | {:.2} | {:.2} | {:.0} | {:.0} |",
        args.concurrency,
        acks.count,
        acks.p50,
        acks.p99,
        e2e.p50,
        e2e.p99,
        acks.count as f64 / elapsed,
        answered as f64 / elapsed
    );
    if count > 1 {
        forwarding_hop(args, fake, &addresses).await?;
    }
    for handle in handles {
        handle.stop(false).await;
    }
    // Each replica drains and releases its leases before the next variant (and before the
    // runtime goes away under a Postgres call).
    for stopped in running {
        let _ = stopped.await;
    }
    Ok(())
}

/// Follow-ups in threads the first replica owns, one at a time: sent to it, or to the second
/// replica, which forwards them; the difference of the two is the hop.
async fn forwarding_hop(
    args: &ReplicasArgs,
    fake: &Arc<LoopbackSlack>,
    addresses: &[SocketAddr],
) -> anyhow::Result<()> {
    let secret = SecretString::from(SIGNING_SECRET);
    let factory = EventFactory::new(E2E_QUESTION, u64::MAX)?;
    let (mut buf, mut body, mut request) = (Vec::new(), String::new(), Vec::new());
    let mut owner = TcpStream::connect(addresses[0]).await?;
    let mut other = TcpStream::connect(addresses[1]).await?;
    let (mut local, mut forwarded) = (Vec::new(), Vec::new());
    for seq in 0..args.follow_ups as u64 {
        // The thread starts at the first replica, which claims it.
        factory.render(seq, &mut body);
        let channel = factory.channel(seq);
        let root = serde_json::from_str::<serde_json::Value>(&body)?["event"]["ts"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        build_request(&mut request, body.as_bytes(), &secret);
        let answered = fake.wait_for_post(&channel);
        exchange(&mut owner, &request, &mut buf).await?;
        tokio::time::timeout(Duration::from_secs(30), answered).await??;
        // Its follow-up: to the owner, or to the other replica.
        let ts = format!("{root}1");
        let event = thread_reply(&format!("EvF{seq}"), &channel, &root, &ts, "show sql");
        build_request(&mut request, &serde_json::to_vec(&event)?, &secret);
        let answered = fake.wait_for_post(&channel);
        let sent = Instant::now();
        let stream = if seq % 2 == 0 { &mut owner } else { &mut other };
        exchange(stream, &request, &mut buf).await?;
        let at = tokio::time::timeout(Duration::from_secs(30), answered).await??;
        let took = micros(at.saturating_duration_since(sent));
        if seq % 2 == 0 {
            local.push(took);
        } else {
            forwarded.push(took);
        }
    }
    let (local, forwarded) = (Percentiles::of(local), Percentiles::of(forwarded));
    println!(
        "forwarding hop: a follow-up answered in p50 {:.2} / p99 {:.2} ms sent to the thread's owner, \
         p50 {:.2} / p99 {:.2} ms sent to another replica ({} each)",
        local.p50, local.p99, forwarded.p50, forwarded.p99, local.count
    );
    Ok(())
}
