//! The embedded demo data set: a small e-commerce warehouse in SQLite, so threadql answers
//! questions out of the box without any warehouse configured.
//!
//! The data is generated, deterministically for a given generation day (the random generator is
//! seeded with the day), and covers the 730 days up to yesterday: customers, products, orders with
//! their lines, and daily app metrics. It has the shapes people ask about: growth over time,
//! weekday and seasonal effects (a November/December peak, Black Friday), a regional mix that
//! shifts towards APAC, refunds and cancellations, discounts, and a few crash incidents.
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use chrono::{Datelike, Duration, NaiveDate, Utc, Weekday};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{Connection, Executor, QueryBuilder, Sqlite, SqliteConnection};

/// Table whose row marks a completely generated demo data set.
pub const DEMO_META_TABLE: &str = "threadql_demo_meta";

/// Tables the generator writes; a file holding only these (or nothing) may be regenerated.
const DEMO_TABLES: [&str; 6] = [
    "customers",
    "products",
    "orders",
    "order_items",
    "app_metrics",
    DEMO_META_TABLE,
];

/// Days of history, ending yesterday.
const HISTORY_DAYS: i64 = 730;
const CUSTOMER_COUNT: usize = 3_200;
const TARGET_ORDERS: f64 = 60_000.0;
/// Rows per multi-row INSERT; well under SQLite's limit of 32,766 bound variables.
const INSERT_CHUNK: usize = 1_000;

const SCHEMA: &str = r#"
CREATE TABLE customers (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    country TEXT NOT NULL,
    region TEXT NOT NULL,
    segment TEXT NOT NULL,
    signup_date TEXT NOT NULL
);
CREATE TABLE products (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    category TEXT NOT NULL,
    unit_price REAL NOT NULL
);
CREATE TABLE orders (
    id INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL REFERENCES customers(id),
    order_date TEXT NOT NULL,
    status TEXT NOT NULL,
    channel TEXT NOT NULL,
    total REAL NOT NULL
);
CREATE TABLE order_items (
    id INTEGER PRIMARY KEY,
    order_id INTEGER NOT NULL REFERENCES orders(id),
    product_id INTEGER NOT NULL REFERENCES products(id),
    quantity INTEGER NOT NULL,
    unit_price REAL NOT NULL,
    discount REAL NOT NULL
);
CREATE TABLE app_metrics (
    day TEXT NOT NULL,
    platform TEXT NOT NULL,
    active_users INTEGER NOT NULL,
    sessions INTEGER NOT NULL,
    crashes INTEGER NOT NULL,
    PRIMARY KEY (day, platform)
);
CREATE TABLE threadql_demo_meta (
    generated_for TEXT NOT NULL,
    generated_at TEXT NOT NULL
);
"#;

/// Created after the bulk insert, which is faster than maintaining them row by row.
const INDEXES: &str = r#"
CREATE INDEX idx_customers_signup_date ON customers(signup_date);
CREATE INDEX idx_customers_region ON customers(region);
CREATE INDEX idx_orders_customer_id ON orders(customer_id);
CREATE INDEX idx_orders_order_date ON orders(order_date);
CREATE INDEX idx_order_items_order_id ON order_items(order_id);
CREATE INDEX idx_order_items_product_id ON order_items(product_id);
CREATE INDEX idx_app_metrics_day ON app_metrics(day);
ANALYZE;
"#;

/// Makes sure a complete demo data set exists at `path`: reuses a complete one (whatever day it
/// was generated for), otherwise generates one for `today` into a temporary file next to `path`
/// and renames it into place, so a crash never leaves a half-written data set behind.
///
/// Refuses to replace a file that is not a SQLite database, or one holding tables the generator
/// does not write: `THREADQL_DEMO_WAREHOUSE` pointed at the wrong file must not destroy it.
pub async fn ensure_demo_warehouse(path: &Path, today: NaiveDate) -> anyhow::Result<()> {
    match inspect_existing(path).await? {
        Existing::Complete => {
            tracing::debug!(path = %path.display(), "reusing the demo data set");
            return Ok(());
        }
        Existing::Missing => {}
        Existing::Incomplete => {
            tracing::warn!(path = %path.display(), "the demo data set is incomplete; regenerating it");
        }
    }
    let started = std::time::Instant::now();
    generate(path, today).await?;
    tracing::info!(
        path = %path.display(),
        generated_for = %today,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "generated the demo data set"
    );
    Ok(())
}

/// The day the demo data set at `path` was generated for, when it is complete.
pub async fn demo_generated_for(path: &Path) -> anyhow::Result<Option<NaiveDate>> {
    if !path_exists(path).await? {
        return Ok(None);
    }
    let mut conn = open_read_only(path).await?;
    let has_meta: Option<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?1")
            .bind(DEMO_META_TABLE)
            .fetch_optional(&mut conn)
            .await
            .with_context(|| format!("Failed to read the demo data set at {}", path.display()))?;
    if has_meta.is_none() {
        return Ok(None);
    }
    let day: Option<String> = sqlx::query_scalar("SELECT generated_for FROM threadql_demo_meta LIMIT 1")
        .fetch_optional(&mut conn)
        .await
        .with_context(|| format!("Failed to read the demo data set at {}", path.display()))?;
    conn.close().await.ok();
    day.map(|day| {
        NaiveDate::parse_from_str(&day, "%Y-%m-%d")
            .with_context(|| format!("Failed to parse the demo generation day {day:?}"))
    })
    .transpose()
}

enum Existing {
    Missing,
    Incomplete,
    Complete,
}

async fn path_exists(path: &Path) -> anyhow::Result<bool> {
    tokio::fs::try_exists(path)
        .await
        .with_context(|| format!("Failed to check whether {} exists", path.display()))
}

async fn open_read_only(path: &Path) -> anyhow::Result<SqliteConnection> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .create_if_missing(false);
    SqliteConnection::connect_with(&options)
        .await
        .with_context(|| format!("Failed to open the demo data set at {}", path.display()))
}

async fn inspect_existing(path: &Path) -> anyhow::Result<Existing> {
    if !path_exists(path).await? {
        return Ok(Existing::Missing);
    }
    let metadata = tokio::fs::metadata(path)
        .await
        .with_context(|| format!("Failed to read the metadata of {}", path.display()))?;
    if metadata.len() == 0 {
        return Ok(Existing::Incomplete);
    }
    let mut conn = open_read_only(path).await?;
    let tables: Vec<String> = sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table'")
        .fetch_all(&mut conn)
        .await
        .with_context(|| {
            format!(
                "Refusing to replace {}: it is not a readable SQLite database",
                path.display()
            )
        })?;
    let foreign: Vec<&String> = tables
        .iter()
        .filter(|t| !t.starts_with("sqlite_") && !DEMO_TABLES.contains(&t.as_str()))
        .collect();
    if !foreign.is_empty() {
        bail!(
            "Refusing to replace {}: it is not a threadql demo data set (it has tables {:?})",
            path.display(),
            foreign
        );
    }
    let complete = if tables.iter().any(|t| t == DEMO_META_TABLE) {
        let markers: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM threadql_demo_meta")
            .fetch_one(&mut conn)
            .await
            .with_context(|| format!("Failed to read the demo data set at {}", path.display()))?;
        markers > 0
    } else {
        false
    };
    conn.close().await.ok();
    Ok(if complete {
        Existing::Complete
    } else {
        Existing::Incomplete
    })
}

/// Generates into a temporary file in the same directory (so the rename stays on one file
/// system and is atomic), then renames it over `path`.
async fn generate(path: &Path, today: NaiveDate) -> anyhow::Result<()> {
    let temp = temp_path(path)?;
    let result = write_data_set(&temp, today).await;
    if let Err(error) = result {
        // Best effort: the temporary file is useless after a failure.
        let _ = tokio::fs::remove_file(&temp).await;
        return Err(error);
    }
    let renamed = tokio::fs::rename(&temp, path).await.with_context(|| {
        format!(
            "Failed to move the demo data set from {} to {}",
            temp.display(),
            path.display()
        )
    });
    if renamed.is_err() {
        let _ = tokio::fs::remove_file(&temp).await;
        return renamed;
    }
    sync_parent_dir(path);
    Ok(())
}

fn temp_path(path: &Path) -> anyhow::Result<PathBuf> {
    let file_name = path
        .file_name()
        .with_context(|| format!("The demo data set path {} has no file name", path.display()))?
        .to_string_lossy();
    Ok(path.with_file_name(format!(".{file_name}.{}.tmp", uuid::Uuid::new_v4().simple())))
}

/// Makes the rename durable; failing here only weakens crash safety, so it is not an error.
fn sync_parent_dir(path: &Path) {
    #[cfg(unix)]
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        if let Ok(handle) = std::fs::File::open(dir) {
            let _ = handle.sync_all();
        }
    }
}

async fn write_data_set(temp: &Path, today: NaiveDate) -> anyhow::Result<()> {
    let data = DemoData::generate(today);
    // Durability during generation is pointless (the file is renamed into place only when
    // complete), so skip the journal's fsyncs; the file itself is synced before the rename.
    let options = SqliteConnectOptions::new()
        .filename(temp)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Memory)
        .synchronous(SqliteSynchronous::Off);
    let mut conn = SqliteConnection::connect_with(&options)
        .await
        .with_context(|| format!("Failed to create the demo data set at {}", temp.display()))?;
    let mut tx = conn
        .begin()
        .await
        .context("Failed to begin the demo data transaction")?;
    tx.execute(SCHEMA).await.context("Failed to create the demo tables")?;
    insert_all(&mut tx, &data).await?;
    tx.execute(INDEXES).await.context("Failed to index the demo tables")?;
    sqlx::query("INSERT INTO threadql_demo_meta (generated_for, generated_at) VALUES (?1, ?2)")
        .bind(today.format("%Y-%m-%d").to_string())
        .bind(Utc::now().to_rfc3339())
        .execute(&mut *tx)
        .await
        .context("Failed to write the demo completion marker")?;
    tx.commit().await.context("Failed to commit the demo data set")?;
    conn.close().await.context("Failed to close the demo data set")?;
    let file = std::fs::File::open(temp).with_context(|| format!("Failed to open {} for syncing", temp.display()))?;
    file.sync_all()
        .with_context(|| format!("Failed to sync {} to disk", temp.display()))?;
    Ok(())
}

async fn insert_all(conn: &mut SqliteConnection, data: &DemoData) -> anyhow::Result<()> {
    for chunk in data.customers.chunks(INSERT_CHUNK) {
        let mut insert =
            QueryBuilder::<Sqlite>::new("INSERT INTO customers (id, name, country, region, segment, signup_date) ");
        insert.push_values(chunk, |mut row, c| {
            row.push_bind(c.id)
                .push_bind(c.name.as_str())
                .push_bind(c.country)
                .push_bind(c.region.name())
                .push_bind(c.segment.name())
                .push_bind(data.date_text(c.signup_day));
        });
        insert
            .build()
            .execute(&mut *conn)
            .await
            .context("Failed to insert demo customers")?;
    }

    let mut insert = QueryBuilder::<Sqlite>::new("INSERT INTO products (id, name, category, unit_price) ");
    insert.push_values(PRODUCTS.iter().enumerate(), |mut row, (index, product)| {
        row.push_bind(product_id(index))
            .push_bind(product.name)
            .push_bind(product.category.name())
            .push_bind(cents_to_amount(product.price_cents));
    });
    insert
        .build()
        .execute(&mut *conn)
        .await
        .context("Failed to insert demo products")?;

    for chunk in data.orders.chunks(INSERT_CHUNK) {
        let mut insert =
            QueryBuilder::<Sqlite>::new("INSERT INTO orders (id, customer_id, order_date, status, channel, total) ");
        insert.push_values(chunk, |mut row, o| {
            row.push_bind(o.id)
                .push_bind(o.customer_id)
                .push_bind(data.date_text(o.day))
                .push_bind(o.status)
                .push_bind(o.channel)
                .push_bind(cents_to_amount(o.total_cents));
        });
        insert
            .build()
            .execute(&mut *conn)
            .await
            .context("Failed to insert demo orders")?;
    }

    for chunk in data.items.chunks(INSERT_CHUNK) {
        let mut insert = QueryBuilder::<Sqlite>::new(
            "INSERT INTO order_items (id, order_id, product_id, quantity, unit_price, discount) ",
        );
        insert.push_values(chunk, |mut row, i| {
            row.push_bind(i.id)
                .push_bind(i.order_id)
                .push_bind(i.product_id)
                .push_bind(i.quantity)
                .push_bind(cents_to_amount(i.unit_price_cents))
                .push_bind(f64::from(i.discount_percent) / 100.0);
        });
        insert
            .build()
            .execute(&mut *conn)
            .await
            .context("Failed to insert demo order items")?;
    }

    for chunk in data.metrics.chunks(INSERT_CHUNK) {
        let mut insert =
            QueryBuilder::<Sqlite>::new("INSERT INTO app_metrics (day, platform, active_users, sessions, crashes) ");
        insert.push_values(chunk, |mut row, m| {
            row.push_bind(data.date_text(m.day))
                .push_bind(m.platform)
                .push_bind(m.active_users)
                .push_bind(m.sessions)
                .push_bind(m.crashes);
        });
        insert
            .build()
            .execute(&mut *conn)
            .await
            .context("Failed to insert demo app metrics")?;
    }
    Ok(())
}

/// Amounts are computed in integer cents and stored as REAL with two decimals.
fn cents_to_amount(cents: i64) -> f64 {
    cents as f64 / 100.0
}

fn product_id(index: usize) -> i64 {
    index as i64 + 1
}

// ---------------------------------------------------------------------------------------------
// Reference data

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Region {
    Emea,
    Amer,
    Apac,
}

impl Region {
    fn name(self) -> &'static str {
        match self {
            Region::Emea => "EMEA",
            Region::Amer => "AMER",
            Region::Apac => "APAC",
        }
    }

    /// Countries with their share of the region's customers.
    fn countries(self) -> &'static [(&'static str, f64)] {
        match self {
            Region::Emea => &[
                ("United Kingdom", 24.0),
                ("Germany", 22.0),
                ("France", 16.0),
                ("Netherlands", 10.0),
                ("Spain", 9.0),
                ("Italy", 8.0),
                ("Sweden", 6.0),
                ("South Africa", 5.0),
            ],
            Region::Amer => &[
                ("United States", 62.0),
                ("Canada", 14.0),
                ("Brazil", 10.0),
                ("Mexico", 7.0),
                ("Argentina", 3.0),
                ("Chile", 2.0),
                ("Colombia", 2.0),
            ],
            Region::Apac => &[
                ("Japan", 24.0),
                ("Australia", 22.0),
                ("India", 20.0),
                ("Singapore", 10.0),
                ("South Korea", 10.0),
                ("New Zealand", 7.0),
                ("Indonesia", 7.0),
            ],
        }
    }
}

const REGIONS: [(Region, f64); 3] = [(Region::Amer, 42.0), (Region::Emea, 36.0), (Region::Apac, 22.0)];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Segment {
    Enterprise,
    Smb,
    Consumer,
}

impl Segment {
    fn name(self) -> &'static str {
        match self {
            Segment::Enterprise => "Enterprise",
            Segment::Smb => "SMB",
            Segment::Consumer => "Consumer",
        }
    }

    fn index(self) -> usize {
        match self {
            Segment::Enterprise => 0,
            Segment::Smb => 1,
            Segment::Consumer => 2,
        }
    }
}

const SEGMENTS: [(Segment, f64); 3] = [
    (Segment::Enterprise, 12.0),
    (Segment::Smb, 33.0),
    (Segment::Consumer, 55.0),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Category {
    Electronics,
    Software,
    OfficeSupplies,
    HomeKitchen,
    Apparel,
    SportsOutdoors,
}

impl Category {
    fn name(self) -> &'static str {
        match self {
            Category::Electronics => "Electronics",
            Category::Software => "Software",
            Category::OfficeSupplies => "Office Supplies",
            Category::HomeKitchen => "Home & Kitchen",
            Category::Apparel => "Apparel",
            Category::SportsOutdoors => "Sports & Outdoors",
        }
    }

    /// How much each segment favours the category: businesses buy software and office
    /// supplies, consumers buy apparel and sports gear.
    fn segment_affinity(self, segment: Segment) -> f64 {
        let [enterprise, smb, consumer] = match self {
            Category::Electronics => [1.2, 1.0, 1.0],
            Category::Software => [3.0, 1.8, 0.4],
            Category::OfficeSupplies => [2.0, 2.0, 0.4],
            Category::HomeKitchen => [0.3, 0.6, 1.5],
            Category::Apparel => [0.2, 0.4, 1.8],
            Category::SportsOutdoors => [0.2, 0.4, 1.4],
        };
        match segment {
            Segment::Enterprise => enterprise,
            Segment::Smb => smb,
            Segment::Consumer => consumer,
        }
    }
}

struct Product {
    name: &'static str,
    category: Category,
    /// Always a whole multiple of 10 cents, so a 10% or 20% discount stays exact to the cent.
    price_cents: i64,
    /// Relative popularity within the catalogue.
    popularity: f64,
}

const fn product(name: &'static str, category: Category, price_cents: i64, popularity: f64) -> Product {
    Product {
        name,
        category,
        price_cents,
        popularity,
    }
}

const PRODUCTS: [Product; 50] = [
    product("Wireless Mouse", Category::Electronics, 2_990, 9.0),
    product("Mechanical Keyboard", Category::Electronics, 8_990, 6.0),
    product("27-inch 4K Monitor", Category::Electronics, 39_990, 3.0),
    product("Noise-Cancelling Headphones", Category::Electronics, 24_990, 5.0),
    product("USB-C Docking Station", Category::Electronics, 14_990, 4.0),
    product("1080p Webcam", Category::Electronics, 6_990, 5.0),
    product("Portable SSD 1TB", Category::Electronics, 10_990, 4.0),
    product("Smart Speaker", Category::Electronics, 9_990, 3.0),
    product("Tablet 11-inch", Category::Electronics, 54_990, 2.0),
    product("Analytics Suite (annual seat)", Category::Software, 49_900, 3.0),
    product("Cloud Backup (annual)", Category::Software, 11_990, 5.0),
    product("Password Manager (annual)", Category::Software, 3_600, 6.0),
    product("Antivirus Pro (annual)", Category::Software, 4_990, 5.0),
    product("Design Studio (annual seat)", Category::Software, 29_990, 2.0),
    product("Project Planner (annual seat)", Category::Software, 9_600, 4.0),
    product("Video Editor Pro", Category::Software, 19_990, 2.0),
    product("Office Productivity Pack", Category::Software, 14_990, 4.0),
    product("Ergonomic Office Chair", Category::OfficeSupplies, 32_990, 2.0),
    product("Standing Desk", Category::OfficeSupplies, 45_990, 1.5),
    product("Printer Paper (5 reams)", Category::OfficeSupplies, 2_490, 8.0),
    product("Gel Pens (12 pack)", Category::OfficeSupplies, 990, 9.0),
    product("Desk Organizer", Category::OfficeSupplies, 2_290, 4.0),
    product("Whiteboard 120x90", Category::OfficeSupplies, 8_990, 2.0),
    product("Laser Printer", Category::OfficeSupplies, 21_990, 2.0),
    product("Notebook Set (3 pack)", Category::OfficeSupplies, 1_490, 7.0),
    product("Espresso Machine", Category::HomeKitchen, 29_990, 2.0),
    product("Chef's Knife", Category::HomeKitchen, 7_990, 4.0),
    product("Cast Iron Skillet", Category::HomeKitchen, 4_490, 4.0),
    product("Blender", Category::HomeKitchen, 8_990, 3.0),
    product("Ceramic Mug Set", Category::HomeKitchen, 3_290, 6.0),
    product("Air Fryer", Category::HomeKitchen, 12_990, 4.0),
    product("Bamboo Cutting Board", Category::HomeKitchen, 2_490, 5.0),
    product("Cotton Bed Sheets", Category::HomeKitchen, 6_990, 3.0),
    product("Classic T-Shirt", Category::Apparel, 1_990, 9.0),
    product("Hooded Sweatshirt", Category::Apparel, 4_990, 6.0),
    product("Rain Jacket", Category::Apparel, 11_990, 3.0),
    product("Running Shoes", Category::Apparel, 12_990, 5.0),
    product("Wool Socks (3 pack)", Category::Apparel, 1_890, 7.0),
    product("Denim Jeans", Category::Apparel, 7_990, 5.0),
    product("Baseball Cap", Category::Apparel, 2_490, 4.0),
    product("Leather Belt", Category::Apparel, 3_990, 3.0),
    product("Yoga Mat", Category::SportsOutdoors, 3_490, 6.0),
    product("Adjustable Dumbbells", Category::SportsOutdoors, 19_990, 2.0),
    product("Camping Tent (2 person)", Category::SportsOutdoors, 17_990, 2.0),
    product("Insulated Water Bottle", Category::SportsOutdoors, 2_990, 8.0),
    product("Hiking Backpack 30L", Category::SportsOutdoors, 8_990, 3.0),
    product("Bike Helmet", Category::SportsOutdoors, 5_990, 3.0),
    product("Fitness Tracker", Category::SportsOutdoors, 9_990, 4.0),
    product("Trail Running Poles", Category::SportsOutdoors, 6_990, 1.5),
    product("Resistance Bands Set", Category::SportsOutdoors, 2_290, 5.0),
];

const COMPANY_PREFIXES: [&str; 32] = [
    "Northwind",
    "Blue Harbor",
    "Summit",
    "Evergreen",
    "Ironclad",
    "Brightline",
    "Silver Oak",
    "Crescent",
    "Redwood",
    "Pioneer",
    "Atlas",
    "Lighthouse",
    "Granite",
    "Maple",
    "Horizon",
    "Cobalt",
    "Juniper",
    "Sterling",
    "Orchid",
    "Falcon",
    "Keystone",
    "Riverbend",
    "Quantum",
    "Harborview",
    "Meridian",
    "Aurora",
    "Bluebird",
    "Copperfield",
    "Driftwood",
    "Elm Street",
    "Foxglove",
    "Larkspur",
];

const COMPANY_SUFFIXES: [&str; 20] = [
    "Labs",
    "Logistics",
    "Foods",
    "Analytics",
    "Consulting",
    "Systems",
    "Retail",
    "Partners",
    "Holdings",
    "Studios",
    "Manufacturing",
    "Health",
    "Energy",
    "Media",
    "Software",
    "Supply Co.",
    "Group",
    "Ventures",
    "Trading",
    "Works",
];

const FIRST_NAMES: [&str; 40] = [
    "Olivia", "Liam", "Emma", "Noah", "Ava", "Lucas", "Sofia", "Mateo", "Mia", "Hugo", "Aisha", "Kenji", "Priya",
    "Arjun", "Chloe", "Lena", "Jonas", "Camila", "Diego", "Yuki", "Hannah", "Omar", "Fatima", "Leo", "Isabella",
    "Ethan", "Zoe", "Min-jun", "Ananya", "Lucia", "Elias", "Nora", "Samuel", "Amelia", "Rafael", "Ingrid", "Thabo",
    "Grace", "Mei", "Oscar",
];

const LAST_NAMES: [&str; 40] = [
    "Smith",
    "Müller",
    "Martin",
    "Garcia",
    "Rossi",
    "Tanaka",
    "Patel",
    "Kim",
    "Silva",
    "Johnson",
    "Schmidt",
    "Dubois",
    "Lopez",
    "Bianchi",
    "Suzuki",
    "Sharma",
    "Park",
    "Santos",
    "Brown",
    "Fischer",
    "Bernard",
    "Fernandez",
    "Ricci",
    "Sato",
    "Gupta",
    "Lee",
    "Oliveira",
    "Wilson",
    "Weber",
    "Moreau",
    "Ramirez",
    "Romano",
    "Ito",
    "Singh",
    "Choi",
    "Costa",
    "O'Brien",
    "Andersson",
    "Nkosi",
    "Nguyen",
];

// ---------------------------------------------------------------------------------------------
// Generation

struct Customer {
    id: i64,
    name: String,
    country: &'static str,
    region: Region,
    segment: Segment,
    /// Days relative to the first day of history; negative for customers who signed up before.
    signup_day: i64,
    /// Relative ordering frequency.
    activity: f64,
}

struct Order {
    id: i64,
    customer_id: i64,
    day: i64,
    status: &'static str,
    channel: &'static str,
    total_cents: i64,
}

struct OrderItem {
    id: i64,
    order_id: i64,
    product_id: i64,
    quantity: i64,
    unit_price_cents: i64,
    discount_percent: u8,
}

struct AppMetric {
    day: i64,
    platform: &'static str,
    active_users: i64,
    sessions: i64,
    crashes: i64,
}

struct DemoData {
    /// ISO text for days from `-365` (earliest signup) to the last day of history.
    dates: Vec<String>,
    customers: Vec<Customer>,
    orders: Vec<Order>,
    items: Vec<OrderItem>,
    metrics: Vec<AppMetric>,
}

/// Customers who signed up before the history window did so within this many days of it.
const PRE_HISTORY_DAYS: i64 = 365;

impl DemoData {
    fn generate(today: NaiveDate) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(u64::from(today.num_days_from_ce().unsigned_abs()));
        let start = today - Duration::days(HISTORY_DAYS);
        let dates = (-PRE_HISTORY_DAYS..HISTORY_DAYS)
            .map(|offset| (start + Duration::days(offset)).format("%Y-%m-%d").to_string())
            .collect();
        let customers = generate_customers(&mut rng);
        let (orders, items) = generate_orders(&mut rng, start, &customers);
        let metrics = generate_metrics(&mut rng, start);
        Self {
            dates,
            customers,
            orders,
            items,
            metrics,
        }
    }

    fn date_text(&self, day: i64) -> &str {
        let index = usize::try_from(day + PRE_HISTORY_DAYS).unwrap_or(0);
        self.dates.get(index).map(String::as_str).unwrap_or("")
    }
}

fn pick<T: Copy>(rng: &mut ChaCha8Rng, choices: &[(T, f64)]) -> T {
    let total: f64 = choices.iter().map(|(_, w)| w).sum();
    let mut r = rng.gen::<f64>() * total;
    for (choice, weight) in choices {
        if r < *weight {
            return *choice;
        }
        r -= weight;
    }
    // Only reachable through float rounding at the very top of the range; the choice tables
    // are non-empty constants.
    choices[choices.len().saturating_sub(1)].0
}

/// Index into `cumulative` (running totals of weights) drawn in proportion to the weights of the
/// first `len` entries.
fn pick_cumulative(rng: &mut ChaCha8Rng, cumulative: &[f64], len: usize) -> usize {
    let total = cumulative.get(len.saturating_sub(1)).copied().unwrap_or(0.0);
    let r = rng.gen::<f64>() * total;
    cumulative[..len]
        .partition_point(|c| *c <= r)
        .min(len.saturating_sub(1))
}

/// Draws x in [0, 1) with density proportional to `a + x`: signups that grow over time, more
/// steeply for a small `a`.
fn growing(rng: &mut ChaCha8Rng, a: f64) -> f64 {
    let u = rng.gen::<f64>();
    (-a + (a * a + 2.0 * u * (a + 0.5)).sqrt()).clamp(0.0, 0.999_999)
}

fn generate_customers(rng: &mut ChaCha8Rng) -> Vec<Customer> {
    let mut customers: Vec<Customer> = (0..CUSTOMER_COUNT)
        .map(|_| {
            let region = pick(rng, &REGIONS);
            let country = pick(rng, region.countries());
            let segment = pick(rng, &SEGMENTS);
            // APAC is the young, fast-growing region: fewer long-standing customers and
            // signups skewed towards recent months.
            let (pre_history_share, growth_a) = match region {
                Region::Apac => (0.12, 0.1),
                Region::Emea | Region::Amer => (0.35, 0.6),
            };
            let signup_day = if rng.gen_bool(pre_history_share) {
                -rng.gen_range(1..=PRE_HISTORY_DAYS)
            } else {
                (growing(rng, growth_a) * HISTORY_DAYS as f64) as i64
            };
            let name = match segment {
                Segment::Consumer => format!(
                    "{} {}",
                    FIRST_NAMES[rng.gen_range(0..FIRST_NAMES.len())],
                    LAST_NAMES[rng.gen_range(0..LAST_NAMES.len())]
                ),
                Segment::Enterprise | Segment::Smb => format!(
                    "{} {}",
                    COMPANY_PREFIXES[rng.gen_range(0..COMPANY_PREFIXES.len())],
                    COMPANY_SUFFIXES[rng.gen_range(0..COMPANY_SUFFIXES.len())]
                ),
            };
            let segment_rate = match segment {
                Segment::Enterprise => 5.0,
                Segment::Smb => 2.0,
                Segment::Consumer => 1.0,
            };
            let u = rng.gen::<f64>();
            let activity = segment_rate * (0.2 + 1.6 * u * u);
            Customer {
                id: 0,
                name,
                country,
                region,
                segment,
                signup_day,
                activity,
            }
        })
        .collect();
    // Ids follow signup order, as an auto-increment key would; it also lets the order
    // generator find everyone signed up by a day as a prefix of the list.
    customers.sort_by_key(|c| c.signup_day);
    for (index, customer) in customers.iter_mut().enumerate() {
        customer.id = index as i64 + 1;
    }
    customers
}

/// The Friday after the fourth Thursday of November.
fn black_friday(year: i32) -> Option<NaiveDate> {
    let thanksgiving = NaiveDate::from_weekday_of_month_opt(year, 11, Weekday::Thu, 4)?;
    Some(thanksgiving + Duration::days(1))
}

/// Expected relative order volume on a day, before noise.
fn order_volume(date: NaiveDate, day: i64) -> f64 {
    let growth = 1.0 + 1.1 * day as f64 / HISTORY_DAYS as f64;
    let weekday = match date.weekday() {
        Weekday::Mon => 1.05,
        Weekday::Tue | Weekday::Wed => 1.1,
        Weekday::Thu => 1.05,
        Weekday::Fri => 1.0,
        Weekday::Sat => 0.8,
        Weekday::Sun => 0.72,
    };
    let season = match date.month() {
        1 => 0.88,
        2 => 0.92,
        3 | 4 => 1.0,
        5 => 1.02,
        6 => 0.97,
        7 => 0.93,
        8 => 0.88,
        9 => 1.02,
        10 => 1.06,
        11 => 1.22,
        _ => 1.3,
    };
    let holiday = match black_friday(date.year()) {
        Some(bf) if date == bf => 2.6,
        // Cyber Monday.
        Some(bf) if date == bf + Duration::days(3) => 2.0,
        Some(bf) if date > bf && date < bf + Duration::days(3) => 1.5,
        _ => 1.0,
    };
    growth * weekday * season * holiday
}

fn is_holiday_sale(date: NaiveDate) -> bool {
    black_friday(date.year())
        .map(|bf| date >= bf && date <= bf + Duration::days(3))
        .unwrap_or(false)
}

fn generate_orders(rng: &mut ChaCha8Rng, start: NaiveDate, customers: &[Customer]) -> (Vec<Order>, Vec<OrderItem>) {
    let volumes: Vec<f64> = (0..HISTORY_DAYS)
        .map(|day| order_volume(start + Duration::days(day), day) * rng.gen_range(0.85..1.15))
        .collect();
    let scale = TARGET_ORDERS / volumes.iter().sum::<f64>();

    let mut cumulative_activity = Vec::with_capacity(customers.len());
    let mut running = 0.0;
    for customer in customers {
        running += customer.activity;
        cumulative_activity.push(running);
    }

    // Per segment: running totals of product weights (popularity times category affinity).
    let product_weights: Vec<Vec<f64>> = [Segment::Enterprise, Segment::Smb, Segment::Consumer]
        .iter()
        .map(|segment| {
            let mut running = 0.0;
            PRODUCTS
                .iter()
                .map(|p| {
                    running += p.popularity * p.category.segment_affinity(*segment);
                    running
                })
                .collect()
        })
        .collect();

    let mut orders = Vec::with_capacity(TARGET_ORDERS as usize + 1_000);
    let mut items = Vec::with_capacity(orders.capacity() * 2);
    let mut eligible = 0;
    for (day, volume) in (0_i64..).zip(volumes) {
        let date = start + Duration::days(day);
        while eligible < customers.len() && customers[eligible].signup_day <= day {
            eligible += 1;
        }
        if eligible == 0 {
            continue;
        }
        let count = (volume * scale).round() as usize;
        let progress = day as f64 / HISTORY_DAYS as f64;
        let sale = is_holiday_sale(date);
        for _ in 0..count {
            let customer = &customers[pick_cumulative(rng, &cumulative_activity, eligible)];
            let order_id = orders.len() as i64 + 1;
            // Mobile's share grows over the two years; partners sell mostly to businesses.
            let partner_share = match customer.segment {
                Segment::Enterprise => 0.35,
                Segment::Smb => 0.15,
                Segment::Consumer => 0.03,
            };
            let mobile_share = 0.22 + 0.18 * progress;
            let channel = pick(
                rng,
                &[
                    ("partner", partner_share),
                    ("mobile", (1.0 - partner_share) * mobile_share),
                    ("web", (1.0 - partner_share) * (1.0 - mobile_share)),
                ],
            );
            let cancelled_share = if channel == "mobile" { 0.085 } else { 0.06 };
            let status = pick(
                rng,
                &[("completed", 0.85), ("refunded", 0.08), ("cancelled", cancelled_share)],
            );

            let lines = pick(rng, &[(1_usize, 45.0), (2, 30.0), (3, 15.0), (4, 10.0)]);
            let weights = &product_weights[customer.segment.index()];
            let mut chosen: Vec<usize> = Vec::with_capacity(lines);
            let mut total_cents = 0;
            while chosen.len() < lines {
                let index = pick_cumulative(rng, weights, weights.len());
                if chosen.contains(&index) {
                    continue;
                }
                chosen.push(index);
                let product = &PRODUCTS[index];
                let quantity = match customer.segment {
                    Segment::Consumer => pick(rng, &[(1_i64, 70.0), (2, 20.0), (3, 10.0)]),
                    Segment::Smb => rng.gen_range(1..=5),
                    Segment::Enterprise => {
                        let u = rng.gen::<f64>();
                        1 + (u * u * 12.0) as i64
                    }
                };
                let (plain, ten, twenty) = match customer.segment {
                    Segment::Enterprise => (45.0, 35.0, 20.0),
                    Segment::Smb => (70.0, 22.0, 8.0),
                    Segment::Consumer => (85.0, 12.0, 3.0),
                };
                let discount_percent: u8 = if sale {
                    pick(rng, &[(0, plain * 0.5), (10, ten), (20, twenty + 30.0)])
                } else {
                    pick(rng, &[(0, plain), (10, ten), (20, twenty)])
                };
                // Exact: prices are multiples of 10 cents, so price * (100 - 10 or 20) / 100
                // is a whole number of cents.
                let line_cents = quantity * product.price_cents * (100 - i64::from(discount_percent)) / 100;
                total_cents += line_cents;
                items.push(OrderItem {
                    id: items.len() as i64 + 1,
                    order_id,
                    product_id: product_id(index),
                    quantity,
                    unit_price_cents: product.price_cents,
                    discount_percent,
                });
            }
            orders.push(Order {
                id: order_id,
                customer_id: customer.id,
                day,
                status,
                channel,
                total_cents,
            });
        }
    }
    (orders, items)
}

fn generate_metrics(rng: &mut ChaCha8Rng, start: NaiveDate) -> Vec<AppMetric> {
    // A few bad releases: (platform, first day, length in days, crash multiplier).
    let incidents: Vec<(&str, i64, i64, f64)> = [("android", 4, 6.0), ("ios", 2, 5.0), ("web", 1, 4.0)]
        .iter()
        .flat_map(|(platform, count, multiplier)| {
            (0..*count)
                .map(|_| {
                    (
                        *platform,
                        rng.gen_range(0..HISTORY_DAYS),
                        rng.gen_range(1..=3),
                        *multiplier,
                    )
                })
                .collect::<Vec<_>>()
        })
        .collect();

    let mut metrics = Vec::with_capacity(HISTORY_DAYS as usize * 3);
    for day in 0..HISTORY_DAYS {
        let date = start + Duration::days(day);
        let progress = day as f64 / HISTORY_DAYS as f64;
        let weekend = matches!(date.weekday(), Weekday::Sat | Weekday::Sun);
        for platform in ["ios", "android", "web"] {
            let (base_users, growth, weekend_factor, sessions_per_user, crash_rate) = match platform {
                "ios" => (5_200.0, 0.8, 1.1, (1.6, 2.4), 0.8),
                "android" => (6_100.0, 0.9, 1.12, (1.5, 2.3), 1.5),
                _ => (3_800.0, 0.35, 0.7, (1.2, 1.6), 0.3),
            };
            let weekday_factor = if weekend { weekend_factor } else { 1.0 };
            let active_users =
                (base_users * (1.0 + growth * progress) * weekday_factor * rng.gen_range(0.95..1.05)).round();
            let sessions = (active_users * rng.gen_range(sessions_per_user.0..sessions_per_user.1)).round();
            let incident = incidents
                .iter()
                .filter(|(p, first, length, _)| *p == platform && day >= *first && day < first + length)
                .map(|(_, _, _, multiplier)| *multiplier)
                .fold(1.0, f64::max);
            let crashes = (sessions * crash_rate / 1_000.0 * incident * rng.gen_range(0.7..1.3)).round();
            metrics.push(AppMetric {
                day,
                platform,
                active_users: active_users as i64,
                sessions: sessions as i64,
                crashes: crashes as i64,
            });
        }
    }
    metrics
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_amount_is_a_whole_number_of_cents() {
        let data = DemoData::generate(NaiveDate::from_ymd_opt(2025, 3, 1).unwrap());
        for item in &data.items {
            let gross = item.quantity * item.unit_price_cents;
            assert_eq!(gross * (100 - i64::from(item.discount_percent)) % 100, 0);
        }
    }

    #[test]
    fn orders_never_precede_the_customers_signup() {
        let data = DemoData::generate(NaiveDate::from_ymd_opt(2025, 3, 1).unwrap());
        for order in &data.orders {
            let customer = &data.customers[usize::try_from(order.customer_id - 1).unwrap_or(0)];
            assert!(
                customer.signup_day <= order.day,
                "order {} precedes its signup",
                order.id
            );
        }
        assert_eq!(data.date_text(0), "2023-03-02");
        assert_eq!(data.date_text(HISTORY_DAYS - 1), "2025-02-28");
    }

    #[test]
    fn product_prices_are_multiples_of_ten_cents_and_categories_are_few() {
        let mut categories: Vec<&str> = PRODUCTS.iter().map(|p| p.category.name()).collect();
        categories.sort_unstable();
        categories.dedup();
        assert_eq!(categories.len(), 6);
        assert!(PRODUCTS.iter().all(|p| p.price_cents % 10 == 0 && p.price_cents > 0));
    }

    #[test]
    fn no_region_has_more_than_eight_countries() {
        for (region, _) in REGIONS {
            assert!(region.countries().len() <= 8, "{}", region.name());
        }
    }
}
