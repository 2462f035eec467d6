//! A Postgres database per test, dropped with its guard.
use sqlx::{Connection, Executor, PgConnection};

/// The local server the tests and the benchmark use (user `postgres`, trust authentication).
pub const POSTGRES_SERVER: &str = "postgres://postgres@127.0.0.1:5432";

/// A database of one test (`threadql_test_<uuid>`) or benchmark run (`threadql_bench_<uuid>`).
/// Dropping the guard drops the database `WITH (FORCE)`, closing the connections a server under
/// test still holds, also when the test panicked first. `.ci/run` drops what a killed run left.
#[derive(Debug)]
pub struct TestDatabase {
    name: String,
    url: String,
}

impl TestDatabase {
    /// A fresh, empty database for a test.
    pub async fn create() -> Self {
        Self::try_create("threadql_test_")
            .await
            .expect("Postgres must run on 127.0.0.1:5432 (user postgres, trust)")
    }

    /// A fresh database named `prefix` + a uuid.
    pub async fn try_create(prefix: &str) -> anyhow::Result<Self> {
        let name = format!("{prefix}{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&format!("{POSTGRES_SERVER}/postgres")).await?;
        admin.execute(format!(r#"CREATE DATABASE "{name}""#).as_str()).await?;
        admin.close().await?;
        Ok(Self {
            url: format!("{POSTGRES_SERVER}/{name}"),
            name,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// A connection with every right, for arranging data and reading what the server wrote.
    pub async fn connect(&self) -> PgConnection {
        PgConnection::connect(&self.url).await.unwrap()
    }

    /// Moves the database to a new guard, leaving this one owning nothing (a test app handing
    /// its state store on to the server that replaces it).
    pub(crate) fn take(&mut self) -> Self {
        Self {
            name: std::mem::take(&mut self.name),
            url: std::mem::take(&mut self.url),
        }
    }

    /// Runs one or more statements (for arranging data).
    pub async fn execute(&self, statements: &str) {
        let mut connection = self.connect().await;
        sqlx::raw_sql(statements)
            .execute(&mut connection)
            .await
            .unwrap_or_else(|e| panic!("arranging {}: {e}", self.name));
        connection.close().await.ok();
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if self.name.is_empty() {
            return; // handed on (see `take`)
        }
        // Drop cannot await, and the test's runtime may be shutting down: a thread of its own
        // with its own runtime drops the database, and the test waits for it.
        let name = self.name.clone();
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(async {
                let mut admin = PgConnection::connect(&format!("{POSTGRES_SERVER}/postgres")).await?;
                admin
                    .execute(format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#).as_str())
                    .await?;
                admin.close().await?;
                anyhow::Ok(())
            })
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(error)) => eprintln!("warning: failed to drop test database {}: {error:#}", self.name),
            Err(_) => eprintln!("warning: dropping test database {} panicked", self.name),
        }
    }
}
