#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Thread ownership for several replicas (issue 13), in Postgres: a lease claimed by
//! compare-and-set, its epoch growing with every change of owner, renewed in one statement,
//! released for the next replica; and snapshot writes fenced by it, so a replica that lost a
//! thread (paused past its lease) can write nothing for it, directly or through the batcher.
use std::sync::Arc;
use std::time::Duration;

use threadql::domain::{ThreadKey, ThreadState};
use threadql::store::{
    Claim, Fence, PostgresStore, SnapshotBatcher, SnapshotWrite, SqliteStore, StateStore, StoreError, ThreadOwnership,
};
use threadql_testkit::{new_channel, new_ts, TestDatabase, TEAM};

const LEASE: Duration = Duration::from_secs(10);
/// A lease that has passed by the next statement: a replica paused past its lease, without a
/// test waiting for the clock.
const LAPSED: Duration = Duration::ZERO;
const A: &str = "replica-a";
const B: &str = "replica-b";
const A_URL: &str = "http://10.0.0.1:8081";
const B_URL: &str = "http://10.0.0.2:8081";

async fn store() -> (TestDatabase, PostgresStore) {
    let database = TestDatabase::create().await;
    let store = PostgresStore::connect(database.url()).await.unwrap();
    store.migrate().await.unwrap();
    (database, store)
}

fn thread() -> ThreadKey {
    ThreadKey::parse(TEAM, &new_channel(), &new_ts()).unwrap()
}

fn write(thread: &ThreadKey, expected: i64, fence: Option<(&str, i64)>) -> SnapshotWrite {
    SnapshotWrite {
        thread: thread.clone(),
        expected,
        state: ThreadState::default(),
        fence: fence.map(|(owner, epoch)| Fence {
            owner: owner.to_string(),
            epoch,
        }),
    }
}

#[tokio::test]
async fn a_claim_is_compare_and_set_and_the_epoch_grows_with_each_new_owner() {
    let (_database, store) = store().await;
    let thread = thread();

    assert_eq!(
        store.claim(&thread, A, A_URL, LEASE).await.unwrap(),
        Claim::Owned { epoch: 1 }
    );
    // Held: the other replica is told where to forward.
    assert_eq!(
        store.claim(&thread, B, B_URL, LEASE).await.unwrap(),
        Claim::OwnedBy {
            owner: A.into(),
            url: A_URL.into()
        }
    );
    // The owner claiming again renews, under the same epoch.
    assert_eq!(
        store.claim(&thread, A, A_URL, LAPSED).await.unwrap(),
        Claim::Owned { epoch: 1 }
    );
    // Its lease passed: the next replica takes the thread, under a new epoch.
    assert_eq!(
        store.claim(&thread, B, B_URL, LEASE).await.unwrap(),
        Claim::Owned { epoch: 2 }
    );
    assert_eq!(
        store.claim(&thread, A, A_URL, LEASE).await.unwrap(),
        Claim::OwnedBy {
            owner: B.into(),
            url: B_URL.into()
        }
    );
}

#[tokio::test]
async fn a_replica_that_lost_a_thread_can_write_nothing_for_it_and_its_new_owner_can() {
    let (_database, store) = store().await;
    let thread = thread();
    let Claim::Owned { epoch: first } = store.claim(&thread, A, A_URL, LAPSED).await.unwrap() else {
        panic!("an unowned thread is claimed");
    };
    assert_eq!(store.save_write(write(&thread, 0, Some((A, first)))).await.unwrap(), 1);

    // A is paused past its lease; B takes the thread over and reads version 1.
    let Claim::Owned { epoch: second } = store.claim(&thread, B, B_URL, LEASE).await.unwrap() else {
        panic!("a lapsed lease is taken over");
    };
    assert_eq!(second, first + 1);
    // A wakes with a write based on the right version: refused as fenced, not stale.
    let refused = store.save_write(write(&thread, 1, Some((A, first)))).await;
    assert!(
        matches!(refused, Err(StoreError::Fenced { epoch, .. }) if epoch == first),
        "{refused:?}"
    );
    assert_eq!(
        store.load_snapshot(&thread).await.unwrap().unwrap().version,
        1,
        "nothing written"
    );

    // The new owner writes; its own write from an older version is stale, not fenced.
    assert_eq!(store.save_write(write(&thread, 1, Some((B, second)))).await.unwrap(), 2);
    let stale = store.save_write(write(&thread, 1, Some((B, second)))).await;
    assert!(matches!(stale, Err(StoreError::StaleSnapshot { .. })), "{stale:?}");
    // A first write of a thread is fenced too: A never owned this one.
    let other = thread_owned_by(&store, B).await;
    let refused = store.save_write(write(&other, 0, Some((A, 1)))).await;
    assert!(matches!(refused, Err(StoreError::Fenced { .. })), "{refused:?}");
    assert!(store.load_snapshot(&other).await.unwrap().is_none());
}

async fn thread_owned_by(store: &PostgresStore, owner: &str) -> ThreadKey {
    let thread = thread();
    assert!(matches!(
        store.claim(&thread, owner, B_URL, LEASE).await.unwrap(),
        Claim::Owned { .. }
    ));
    thread
}

#[tokio::test]
async fn a_batch_of_writes_is_fenced_write_by_write_through_the_batcher() {
    let (_database, store) = store().await;
    let store = Arc::new(store);
    let (mine, lost, unowned) = (thread(), thread(), thread());
    store.claim(&mine, A, A_URL, LEASE).await.unwrap();
    store.claim(&lost, A, A_URL, LAPSED).await.unwrap();
    store.claim(&lost, B, B_URL, LEASE).await.unwrap();

    let results = store
        .save_snapshots(&[
            write(&mine, 0, Some((A, 1))),
            write(&lost, 0, Some((A, 1))),
            // A single replica's write carries no fence and is only version-checked.
            write(&unowned, 0, None),
        ])
        .await;
    assert!(matches!(results[0], Ok(1)), "{:?}", results[0]);
    assert!(matches!(results[1], Err(StoreError::Fenced { .. })), "{:?}", results[1]);
    assert!(matches!(results[2], Ok(1)), "{:?}", results[2]);

    // The server's batching layer carries the fence to the statement.
    let batcher = SnapshotBatcher::new(store.clone());
    assert_eq!(batcher.save_write(write(&mine, 1, Some((A, 1)))).await.unwrap(), 2);
    let refused = batcher.save_write(write(&lost, 0, Some((A, 1)))).await;
    assert!(matches!(refused, Err(StoreError::Fenced { .. })), "{refused:?}");
}

#[tokio::test]
async fn leases_are_renewed_in_one_statement_and_released_for_the_next_replica() {
    let (_database, store) = store().await;
    let (kept, taken, released) = (thread(), thread(), thread());
    store.claim(&kept, A, A_URL, LEASE).await.unwrap();
    store.claim(&taken, A, A_URL, LAPSED).await.unwrap();
    store.claim(&released, A, A_URL, LEASE).await.unwrap();
    store.claim(&taken, B, B_URL, LEASE).await.unwrap();

    store.release(A, Some(std::slice::from_ref(&released))).await.unwrap();
    let mut renewed = store.renew(A, LEASE).await.unwrap();
    renewed.sort_by_key(ToString::to_string);
    assert_eq!(
        renewed,
        std::slice::from_ref(&kept),
        "neither the thread taken over nor the one released"
    );

    // Released: the next replica claims it at once, under a new epoch.
    assert_eq!(
        store.claim(&released, B, B_URL, LEASE).await.unwrap(),
        Claim::Owned { epoch: 2 }
    );
    // A replica shutting down releases everything it holds.
    assert_eq!(store.release(A, None).await.unwrap(), 1);
    assert_eq!(
        store.claim(&kept, B, B_URL, LEASE).await.unwrap(),
        Claim::Owned { epoch: 2 }
    );
    assert!(store.renew(A, LEASE).await.unwrap().is_empty());
}

#[tokio::test]
async fn an_embedded_store_refuses_a_fenced_write_rather_than_write_it_unfenced() {
    let directory = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", directory.path().join("state.db").display());
    let store = SqliteStore::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    let thread = thread();
    let refused = store.save_write(write(&thread, 0, Some((A, 1)))).await;
    assert!(
        matches!(&refused, Err(StoreError::Unexpected(error)) if error.to_string().contains("Postgres")),
        "{refused:?}"
    );
    assert!(store.load_snapshot(&thread).await.unwrap().is_none());
    assert!(store.ownership().is_none());
}

#[tokio::test]
async fn the_inbox_keeps_a_message_once_until_its_turn_settles_it() {
    let (database, store) = store().await;
    let (busy, other) = (thread(), thread());
    let message = |ts: &str| (ts.to_string(), serde_json::json!({ "message_ts": ts }));

    assert_eq!(store.keep(&busy, &[message("1.1")]).await.unwrap(), 1);
    assert_eq!(store.keep(&busy, &[message("1.2")]).await.unwrap(), 1);
    assert_eq!(
        store.keep(&other, &[message("1.1")]).await.unwrap(),
        1,
        "keyed by thread and message"
    );
    // Slack's retry of a message taken at another replica while Redis was down.
    assert_eq!(store.keep(&busy, &[message("1.1")]).await.unwrap(), 0, "kept once");
    let pending: Vec<String> = store
        .pending(&busy)
        .await
        .unwrap()
        .iter()
        .map(|message| message["message_ts"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        pending,
        ["1.1", "1.2"],
        "oldest first, and still there after being read"
    );

    store.settle(&busy, "1.1").await.unwrap();
    assert_eq!(store.pending(&busy).await.unwrap().len(), 1);
    assert_eq!(
        store.pending(&other).await.unwrap().len(),
        1,
        "another thread's message stays"
    );

    // Not answered and nobody holds the thread: the sweep finds it once the message has waited
    // a moment (a message just taken is its replica's to claim).
    assert!(!store.orphaned_in_flight(100).await.unwrap().contains(&busy));
    let mut connection = database.connect().await;
    sqlx::query("UPDATE thread_inbox SET kept_at = kept_at - interval '1 minute'")
        .execute(&mut connection)
        .await
        .unwrap();
    assert!(store.orphaned_in_flight(100).await.unwrap().contains(&busy));
    store.claim(&busy, A, A_URL, LEASE).await.unwrap();
    assert!(
        !store.orphaned_in_flight(100).await.unwrap().contains(&busy),
        "held by a live replica"
    );
}
