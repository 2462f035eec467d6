//! A MariaDB (or MySQL) database per test, dropped with its guard.
use sqlx::{Connection, Executor, MySqlConnection};

/// The local MariaDB server the tests use (user `root`, no password).
pub const MARIADB_SERVER: &str = "mysql://root@127.0.0.1:3306";

/// A MariaDB database of one test (`threadql_test_<uuid>`). Dropping the guard drops the
/// database, also when the test panicked first; `.ci/run` drops what a killed run left.
#[derive(Debug)]
pub struct TestMySqlDatabase {
    name: String,
    url: String,
}

impl TestMySqlDatabase {
    /// A fresh, empty database for a test.
    pub async fn create() -> Self {
        Self::try_create("threadql_test_")
            .await
            .expect("MariaDB must run on 127.0.0.1:3306 (user root, no password)")
    }

    /// A fresh database named `prefix` + a uuid.
    pub async fn try_create(prefix: &str) -> anyhow::Result<Self> {
        let name = format!("{prefix}{}", uuid::Uuid::new_v4().simple());
        let mut admin = MySqlConnection::connect(MARIADB_SERVER).await?;
        admin.execute(format!("CREATE DATABASE `{name}`").as_str()).await?;
        admin.close().await?;
        Ok(Self {
            url: format!("{MARIADB_SERVER}/{name}"),
            name,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// A connection with every right, for arranging data and reading what the server did.
    pub async fn connect(&self) -> MySqlConnection {
        MySqlConnection::connect(&self.url).await.unwrap()
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

impl Drop for TestMySqlDatabase {
    fn drop(&mut self) {
        // Drop cannot await, and the test's runtime may be shutting down: a thread of its own
        // with its own runtime drops the database, and the test waits for it.
        let name = self.name.clone();
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(async {
                let mut admin = MySqlConnection::connect(MARIADB_SERVER).await?;
                admin
                    .execute(format!("DROP DATABASE IF EXISTS `{name}`").as_str())
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
