//! The rules interpreter against the generated demo data set: each question (or refinement
//! sequence) is interpreted, compiled, passed through the SQL guard and run, and its rows are
//! compared with those of SQL written by hand for the same question. And the work interpreting
//! costs, counted by this binary's allocator, grows in proportion to the question's length.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use sqlx::{Column, Row, TypeInfo, ValueRef};
use threadql::interpret::{
    InterpretRequest, Interpretation, Interpreter, ProposedQuery, RulesInterpreter, SemanticModel,
};
use threadql::sql::Dialect;
use threadql::sql::SqlGuard;
use threadql::warehouse::demo::ensure_demo_warehouse;
use tokio::sync::OnceCell;

/// A Sunday: "last week" and "this week" are both visible in the data.
fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 22).unwrap()
}

/// One demo data set for the whole binary (generating it takes seconds).
async fn demo_path() -> &'static Path {
    static DEMO: OnceCell<(tempfile::TempDir, PathBuf)> = OnceCell::const_new();
    let (_, path) = DEMO
        .get_or_init(|| async {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("demo.db");
            ensure_demo_warehouse(&path, today()).await.unwrap();
            (dir, path)
        })
        .await;
    path
}

struct Demo {
    pool: SqlitePool,
    interpreter: RulesInterpreter,
}

/// Opens the demo data set in this test's runtime and builds the interpreter from the demo model
/// and the dimensions' distinct values, read the way the server reads them.
async fn demo() -> Demo {
    let options = SqliteConnectOptions::new().filename(demo_path().await).read_only(true);
    let pool = SqlitePoolOptions::new()
        .max_connections(2)
        .connect_with(options)
        .await
        .unwrap();
    let model = SemanticModel::demo().unwrap();
    let mut values = Vec::new();
    for dimension in &model.dimensions {
        let sql = model.distinct_values_sql(&dimension.name, Dialect::Sqlite).unwrap();
        let list: Vec<String> = sqlx::query_scalar(&sql).fetch_all(&pool).await.unwrap();
        assert!(!list.is_empty(), "dimension {} has values", dimension.name);
        values.push((dimension.name.clone(), list));
    }
    Demo {
        pool,
        interpreter: RulesInterpreter::new(model, values, Dialect::Sqlite),
    }
}

/// Column names, then rows with numbers rounded to two decimals.
type Rows = (Vec<String>, Vec<Vec<String>>);

async fn run(pool: &SqlitePool, sql: &str) -> Rows {
    let rows = match sqlx::query(sql).fetch_all(pool).await {
        Ok(rows) => rows,
        Err(error) => panic!("query failed: {error}\n{sql}"),
    };
    let columns = rows
        .first()
        .map(|row| row.columns().iter().map(|c| c.name().to_string()).collect())
        .unwrap_or_default();
    let cells = rows
        .iter()
        .map(|row| {
            (0..row.len())
                .map(|i| {
                    let raw = row.try_get_raw(i).unwrap();
                    if raw.is_null() {
                        return "NULL".to_string();
                    }
                    match raw.type_info().name() {
                        "INTEGER" => format!("{:.2}", row.get::<i64, _>(i) as f64),
                        "REAL" => format!("{:.2}", row.get::<f64, _>(i)),
                        _ => row.get::<String, _>(i),
                    }
                })
                .collect()
        })
        .collect();
    (columns, cells)
}

impl Demo {
    /// Interprets each text in turn as one thread would, each refining the previous answer.
    fn thread(&self, texts: &[&str]) -> ProposedQuery {
        let mut current: Option<ProposedQuery> = None;
        for text in texts {
            match self.interpreter.interpret_text(text, current.as_ref(), today()) {
                Interpretation::Query(query) => current = Some(*query),
                other => panic!("{texts:?}: '{text}' was not interpreted as a query: {other:?}"),
            }
        }
        current.unwrap()
    }

    /// The answer to the thread through the guard, compared with the hand-written SQL's rows.
    /// `ordered` also compares row order (for top N and time series).
    async fn assert_same(&self, texts: &[&str], expected_sql: &str, ordered: bool) -> ProposedQuery {
        let proposed = self.thread(texts);
        let guarded = match SqlGuard::new(Dialect::Sqlite, None).check(&proposed.sql, 100_000) {
            Ok(guarded) => guarded,
            Err(error) => panic!(
                "{texts:?}: the guard refused the compiled SQL ({error}):\n{}",
                proposed.sql
            ),
        };
        let (got_columns, mut got) = run(&self.pool, guarded.as_str()).await;
        let (want_columns, mut want) = run(&self.pool, expected_sql).await;
        assert!(
            !want.is_empty(),
            "{texts:?}: the hand-written SQL returns no rows, the case proves nothing"
        );
        assert_eq!(
            got_columns, want_columns,
            "{texts:?}: columns differ\ncompiled:\n{}",
            proposed.sql
        );
        if !ordered {
            got.sort();
            want.sort();
        }
        assert_eq!(
            got, want,
            "{texts:?}: rows differ\ncompiled:\n{}\nexpected:\n{expected_sql}",
            proposed.sql
        );
        proposed
    }

    fn not_understood(&self, texts: &[&str]) -> String {
        let (last, first) = texts.split_last().unwrap();
        let current = if first.is_empty() {
            None
        } else {
            Some(self.thread(first))
        };
        match self.interpreter.interpret_text(last, current.as_ref(), today()) {
            Interpretation::NotUnderstood(message) => message,
            other => panic!("{texts:?} should not be understood, got {other:?}"),
        }
    }
}

// Date ranges below are written out by hand for today = 2026-11-22 (data ends 2026-11-21).

#[tokio::test]
async fn revenue_by_region_last_month_matches_hand_written_sql() {
    let demo = demo().await;
    let proposed = demo
        .assert_same(
            &["revenue by region last month"],
            "SELECT c.region AS region, SUM(o.total) AS revenue FROM orders o JOIN customers c ON c.id = o.customer_id \
             WHERE o.status = 'completed' AND o.order_date BETWEEN '2026-10-01' AND '2026-10-31' GROUP BY c.region",
            false,
        )
        .await;
    assert_eq!(proposed.summary, "Revenue by region · last month (Oct 2026)");
}

#[tokio::test]
async fn only_emea_filters_the_region() {
    demo()
        .await
        .assert_same(
            &["revenue by region last month", "only EMEA"],
            "SELECT 'EMEA' AS region, SUM(o.total) AS revenue FROM orders o \
             WHERE o.status = 'completed' AND o.order_date LIKE '2026-10-%' \
             AND o.customer_id IN (SELECT id FROM customers WHERE region = 'EMEA')",
            false,
        )
        .await;
}

#[tokio::test]
async fn by_week_replaces_the_grouping_and_keeps_the_filter() {
    demo()
        .await
        .assert_same(
            &["revenue by region last month", "only EMEA", "by week"],
            "SELECT date(o.order_date, '-' || ((CAST(strftime('%w', o.order_date) AS INTEGER) + 6) % 7) || ' days') AS week, \
             SUM(o.total) AS revenue FROM orders o JOIN customers c ON c.id = o.customer_id \
             WHERE o.status = 'completed' AND o.order_date BETWEEN '2026-10-01' AND '2026-10-31' AND c.region = 'EMEA' \
             GROUP BY 1 ORDER BY 1",
            true,
        )
        .await;
}

#[tokio::test]
async fn top_5_after_by_week_keeps_the_five_best_weeks() {
    let proposed = demo()
        .await
        .assert_same(
            &["revenue by region last month", "only EMEA", "by week", "top 5"],
            "SELECT date(o.order_date, '-' || ((CAST(strftime('%w', o.order_date) AS INTEGER) + 6) % 7) || ' days') AS week, \
             SUM(o.total) AS revenue FROM orders o JOIN customers c ON c.id = o.customer_id \
             WHERE o.status = 'completed' AND o.order_date BETWEEN '2026-10-01' AND '2026-10-31' AND c.region = 'EMEA' \
             GROUP BY 1 ORDER BY 2 DESC LIMIT 5",
            true,
        )
        .await;
    assert_eq!(
        proposed.summary,
        "Revenue by week · last month (Oct 2026) · region: EMEA · top 5"
    );
}

#[tokio::test]
async fn orders_by_channel_this_year_counts_every_status() {
    demo()
        .await
        .assert_same(
            &["orders by channel this year"],
            "SELECT channel, COUNT(*) AS orders FROM orders WHERE order_date >= '2026-01-01' GROUP BY channel",
            false,
        )
        .await;
}

#[tokio::test]
async fn exclude_partner_adds_a_negated_filter() {
    demo()
        .await
        .assert_same(
            &["orders by channel this year", "exclude partner"],
            "SELECT channel, COUNT(*) AS orders FROM orders WHERE order_date >= '2026-01-01' AND channel <> 'partner' \
             GROUP BY channel",
            false,
        )
        .await;
}

#[tokio::test]
async fn a_second_exclusion_adds_to_the_first() {
    demo()
        .await
        .assert_same(
            &["orders by channel this year", "exclude partner", "without mobile"],
            "SELECT channel, COUNT(*) AS orders FROM orders WHERE strftime('%Y', order_date) = '2026' \
             AND channel = 'web' GROUP BY channel",
            false,
        )
        .await;
}

#[tokio::test]
async fn revenue_by_category_in_2025_uses_item_lines() {
    demo()
        .await
        .assert_same(
            &["revenue by category in 2025"],
            "SELECT p.category AS category, SUM(i.quantity * i.unit_price * (1 - i.discount)) AS revenue \
             FROM order_items i JOIN orders o ON o.id = i.order_id JOIN products p ON p.id = i.product_id \
             WHERE o.status = 'completed' AND strftime('%Y', o.order_date) = '2025' GROUP BY p.category",
            false,
        )
        .await;
}

#[tokio::test]
async fn revenue_by_category_adds_up_to_revenue_of_completed_orders() {
    let demo = demo().await;
    let by_category = demo.thread(&["revenue by category in 2025"]);
    let (_, rows) = run(&demo.pool, &format!("SELECT SUM(revenue) FROM ({})", by_category.sql)).await;
    let (_, total) = run(
        &demo.pool,
        "SELECT SUM(total) FROM orders WHERE status = 'completed' AND order_date BETWEEN '2025-01-01' AND '2025-12-31'",
    )
    .await;
    assert_eq!(rows, total);
}

#[tokio::test]
async fn units_by_product_top_10_orders_by_units() {
    demo()
        .await
        .assert_same(
            &["units by product top 10"],
            "SELECT p.name AS product, SUM(i.quantity) AS units FROM order_items i JOIN products p ON p.id = i.product_id \
             GROUP BY p.name ORDER BY units DESC, product LIMIT 10",
            true,
        )
        .await;
}

#[tokio::test]
async fn active_users_by_platform_last_7_days() {
    demo()
        .await
        .assert_same(
            &["active users by platform last 7 days"],
            "SELECT platform, SUM(active_users) AS active_users FROM app_metrics \
             WHERE day BETWEEN '2026-11-15' AND '2026-11-21' GROUP BY platform",
            false,
        )
        .await;
}

#[tokio::test]
async fn average_order_value_by_segment_in_q3_2025() {
    demo()
        .await
        .assert_same(
            &["average order value by segment Q3 2025"],
            "SELECT c.segment AS segment, SUM(o.total) / COUNT(*) AS average_order_value \
             FROM orders o JOIN customers c ON c.id = o.customer_id \
             WHERE o.status = 'completed' AND o.order_date BETWEEN '2025-07-01' AND '2025-09-30' GROUP BY c.segment",
            false,
        )
        .await;
}

#[tokio::test]
async fn refunds_by_month_since_march() {
    demo()
        .await
        .assert_same(
            &["refunds by month since March"],
            "SELECT substr(order_date, 1, 7) || '-01' AS month, COUNT(*) AS refunds FROM orders \
             WHERE status = 'refunded' AND order_date >= '2026-03-01' GROUP BY 1 ORDER BY 1",
            true,
        )
        .await;
}

#[tokio::test]
async fn revenue_by_country_in_emea() {
    demo()
        .await
        .assert_same(
            &["revenue by country in EMEA"],
            "SELECT c.country AS country, SUM(o.total) AS revenue FROM orders o JOIN customers c ON c.id = o.customer_id \
             WHERE o.status = 'completed' AND c.region = 'EMEA' GROUP BY c.country",
            false,
        )
        .await;
}

#[tokio::test]
async fn removing_the_region_filter_shows_every_country() {
    demo()
        .await
        .assert_same(
            &["revenue by country in EMEA", "remove the region filter"],
            "SELECT c.country AS country, SUM(o.total) AS revenue FROM orders o JOIN customers c ON c.id = o.customer_id \
             WHERE o.status = 'completed' GROUP BY c.country",
            false,
        )
        .await;
}

#[tokio::test]
async fn all_regions_removes_only_the_region_filter() {
    demo()
        .await
        .assert_same(
            &["revenue by country in EMEA for mobile", "all regions"],
            "SELECT c.country AS country, SUM(o.total) AS revenue FROM orders o JOIN customers c ON c.id = o.customer_id \
             WHERE o.status = 'completed' AND o.channel = 'mobile' GROUP BY c.country",
            false,
        )
        .await;
}

#[tokio::test]
async fn revenue_last_month_is_one_total() {
    demo()
        .await
        .assert_same(
            &["revenue last month"],
            "SELECT SUM(total) AS revenue FROM orders WHERE status = 'completed' AND order_date LIKE '2026-10-%'",
            false,
        )
        .await;
}

#[tokio::test]
async fn what_about_last_year_replaces_the_time_range() {
    let proposed = demo()
        .await
        .assert_same(
            &["revenue last month", "what about last year?"],
            "SELECT SUM(total) AS revenue FROM orders WHERE status = 'completed' AND order_date LIKE '2025-%'",
            false,
        )
        .await;
    assert_eq!(proposed.summary, "Revenue · last year (2025)");
}

#[tokio::test]
async fn removing_the_time_range_covers_all_time() {
    demo()
        .await
        .assert_same(
            &["revenue last month", "remove the time range"],
            "SELECT SUM(total) AS revenue FROM orders WHERE status = 'completed'",
            false,
        )
        .await;
}

#[tokio::test]
async fn sales_and_orders_by_region_count_their_own_rows() {
    demo()
        .await
        .assert_same(
            &["sales and orders by region"],
            "SELECT r.region, r.revenue, n.orders FROM \
             (SELECT c.region, SUM(o.total) AS revenue FROM orders o JOIN customers c ON c.id = o.customer_id \
              WHERE o.status = 'completed' GROUP BY c.region) r \
             JOIN (SELECT c.region, COUNT(*) AS orders FROM orders o JOIN customers c ON c.id = o.customer_id \
              GROUP BY c.region) n ON n.region = r.region",
            false,
        )
        .await;
}

#[tokio::test]
async fn revenue_and_refunds_by_channel_last_quarter() {
    demo()
        .await
        .assert_same(
            &["revenue and refunds by channel last quarter"],
            "SELECT r.channel, r.revenue, f.refunds FROM \
             (SELECT channel, SUM(total) AS revenue FROM orders WHERE status = 'completed' \
              AND order_date BETWEEN '2026-07-01' AND '2026-09-30' GROUP BY channel) r \
             JOIN (SELECT channel, SUM(status = 'refunded') AS refunds FROM orders \
              WHERE order_date BETWEEN '2026-07-01' AND '2026-09-30' GROUP BY channel) f ON f.channel = r.channel",
            false,
        )
        .await;
}

#[tokio::test]
async fn daily_active_users_last_week() {
    demo()
        .await
        .assert_same(
            &["daily active users last week"],
            "SELECT day, SUM(active_users) AS active_users FROM app_metrics \
             WHERE day BETWEEN '2026-11-09' AND '2026-11-15' GROUP BY day ORDER BY day",
            true,
        )
        .await;
}

#[tokio::test]
async fn sessions_by_platform_by_month_in_2025() {
    demo()
        .await
        .assert_same(
            &["sessions by platform by month in 2025"],
            "SELECT substr(day, 1, 7) || '-01' AS month, platform, SUM(sessions) AS sessions FROM app_metrics \
             WHERE day LIKE '2025-%' GROUP BY 1, 2",
            false,
        )
        .await;
}

#[tokio::test]
async fn crashes_yesterday_by_platform() {
    demo()
        .await
        .assert_same(
            &["crashes yesterday by platform"],
            "SELECT platform, crashes FROM app_metrics WHERE day = '2026-11-21'",
            false,
        )
        .await;
}

#[tokio::test]
async fn orders_by_status_last_month() {
    demo()
        .await
        .assert_same(
            &["orders by status last month"],
            "SELECT status, COUNT(*) AS orders FROM orders WHERE order_date LIKE '2026-10-%' GROUP BY status",
            false,
        )
        .await;
}

#[tokio::test]
async fn excluding_two_statuses_at_once() {
    demo()
        .await
        .assert_same(
            &["orders by status", "exclude cancelled and refunded"],
            "SELECT status, COUNT(*) AS orders FROM orders WHERE status = 'completed' GROUP BY status",
            false,
        )
        .await;
}

#[tokio::test]
async fn revenue_by_segment_and_channel_this_year() {
    demo()
        .await
        .assert_same(
            &["revenue by segment and channel this year"],
            "SELECT c.segment AS segment, o.channel AS channel, SUM(o.total) AS revenue \
             FROM orders o JOIN customers c ON c.id = o.customer_id \
             WHERE o.status = 'completed' AND o.order_date >= '2026-01-01' GROUP BY 1, 2",
            false,
        )
        .await;
}

#[tokio::test]
async fn revenue_in_two_regions_by_country_last_quarter() {
    demo()
        .await
        .assert_same(
            &["revenue in EMEA and APAC by country last quarter"],
            "SELECT c.country AS country, SUM(o.total) AS revenue FROM orders o JOIN customers c ON c.id = o.customer_id \
             WHERE o.status = 'completed' AND c.region IN ('APAC', 'EMEA') \
             AND o.order_date BETWEEN '2026-07-01' AND '2026-09-30' GROUP BY c.country",
            false,
        )
        .await;
}

#[tokio::test]
async fn bottom_3_countries_by_revenue_in_2025() {
    demo()
        .await
        .assert_same(
            &["bottom 3 countries by revenue in 2025"],
            "SELECT c.country AS country, SUM(o.total) AS revenue FROM orders o JOIN customers c ON c.id = o.customer_id \
             WHERE o.status = 'completed' AND o.order_date LIKE '2025-%' GROUP BY c.country \
             ORDER BY revenue ASC, country LIMIT 3",
            true,
        )
        .await;
}

#[tokio::test]
async fn a_multi_word_country_and_a_channel_are_both_filters() {
    demo()
        .await
        .assert_same(
            &["orders for mobile in united kingdom last month"],
            "SELECT COUNT(*) AS orders FROM orders o JOIN customers c ON c.id = o.customer_id \
             WHERE o.channel = 'mobile' AND c.country = 'United Kingdom' AND o.order_date LIKE '2026-10-%'",
            false,
        )
        .await;
}

#[tokio::test]
async fn units_by_category_refined_to_top_products_of_one_category() {
    demo()
        .await
        .assert_same(
            &["units by category", "only electronics", "by product instead", "top 5"],
            "SELECT p.name AS product, SUM(i.quantity) AS units FROM order_items i JOIN products p ON p.id = i.product_id \
             WHERE p.category = 'Electronics' GROUP BY p.name ORDER BY units DESC, product LIMIT 5",
            true,
        )
        .await;
}

#[tokio::test]
async fn revenue_by_month_in_2025_then_by_quarter() {
    demo()
        .await
        .assert_same(
            &["revenue by month in 2025", "by quarter instead"],
            "SELECT CASE WHEN order_date < '2025-04-01' THEN '2025-01-01' WHEN order_date < '2025-07-01' THEN '2025-04-01' \
             WHEN order_date < '2025-10-01' THEN '2025-07-01' ELSE '2025-10-01' END AS quarter, SUM(total) AS revenue \
             FROM orders WHERE status = 'completed' AND order_date LIKE '2025-%' GROUP BY 1 ORDER BY 1",
            true,
        )
        .await;
}

#[tokio::test]
async fn revenue_by_year_buckets_into_years() {
    demo()
        .await
        .assert_same(
            &["yearly revenue"],
            "SELECT substr(order_date, 1, 4) || '-01-01' AS year, SUM(total) AS revenue FROM orders \
             WHERE status = 'completed' GROUP BY 1 ORDER BY 1",
            true,
        )
        .await;
}

#[tokio::test]
async fn and_by_segment_adds_a_dimension() {
    demo()
        .await
        .assert_same(
            &["orders by region", "and by segment"],
            "SELECT c.region AS region, c.segment AS segment, COUNT(*) AS orders \
             FROM orders o JOIN customers c ON c.id = o.customer_id GROUP BY 1, 2",
            false,
        )
        .await;
}

#[tokio::test]
async fn orders_instead_replaces_the_metric() {
    demo()
        .await
        .assert_same(
            &["revenue by region last month", "orders instead"],
            "SELECT c.region AS region, COUNT(*) AS orders FROM orders o JOIN customers c ON c.id = o.customer_id \
             WHERE o.order_date LIKE '2026-10-%' GROUP BY c.region",
            false,
        )
        .await;
}

#[tokio::test]
async fn and_units_adds_a_metric_on_the_item_lines() {
    demo()
        .await
        .assert_same(
            &["revenue by category", "and units"],
            "SELECT p.category AS category, \
             SUM(CASE WHEN o.status = 'completed' THEN i.quantity * i.unit_price * (1 - i.discount) ELSE 0 END) AS revenue, \
             SUM(i.quantity) AS units \
             FROM order_items i JOIN orders o ON o.id = i.order_id JOIN products p ON p.id = i.product_id \
             GROUP BY p.category",
            false,
        )
        .await;
}

#[tokio::test]
async fn aov_by_channel_in_october() {
    demo()
        .await
        .assert_same(
            &["aov by channel in October"],
            "SELECT channel, AVG(total) AS average_order_value FROM orders \
             WHERE status = 'completed' AND order_date BETWEEN '2026-10-01' AND '2026-10-31' GROUP BY channel",
            false,
        )
        .await;
}

#[tokio::test]
async fn refunds_by_category_count_refunded_orders_per_category() {
    demo()
        .await
        .assert_same(
            &["refunds by category this year"],
            "SELECT p.category AS category, COUNT(DISTINCT o.id) AS refunds \
             FROM orders o JOIN order_items i ON i.order_id = o.id JOIN products p ON p.id = i.product_id \
             WHERE o.status = 'refunded' AND o.order_date >= '2026-01-01' GROUP BY p.category",
            false,
        )
        .await;
}

#[tokio::test]
async fn orders_by_product_in_a_category_with_an_ampersand() {
    demo()
        .await
        .assert_same(
            &["orders by product in Home & Kitchen last month"],
            "SELECT p.name AS product, COUNT(DISTINCT i.order_id) AS orders \
             FROM order_items i JOIN orders o ON o.id = i.order_id JOIN products p ON p.id = i.product_id \
             WHERE p.category = 'Home & Kitchen' AND o.order_date LIKE '2026-10-%' GROUP BY p.name",
            false,
        )
        .await;
}

#[tokio::test]
async fn enterprise_revenue_by_quarter_in_2025() {
    demo()
        .await
        .assert_same(
            &["Enterprise revenue by quarter in 2025"],
            "SELECT printf('2025-%02d-01', ((CAST(substr(o.order_date, 6, 2) AS INTEGER) - 1) / 3) * 3 + 1) AS quarter, \
             SUM(o.total) AS revenue FROM orders o JOIN customers c ON c.id = o.customer_id \
             WHERE o.status = 'completed' AND c.segment = 'Enterprise' AND o.order_date LIKE '2025-%' \
             GROUP BY 1 ORDER BY 1",
            true,
        )
        .await;
}

#[tokio::test]
async fn units_by_category_last_3_months() {
    demo()
        .await
        .assert_same(
            &["units by category last 3 months"],
            "SELECT p.category AS category, SUM(i.quantity) AS units \
             FROM order_items i JOIN orders o ON o.id = i.order_id JOIN products p ON p.id = i.product_id \
             WHERE o.order_date BETWEEN '2026-08-01' AND '2026-10-31' GROUP BY p.category",
            false,
        )
        .await;
}

#[tokio::test]
async fn and_apac_widens_an_only_filter() {
    demo()
        .await
        .assert_same(
            &["revenue by week last month", "only EMEA", "and APAC"],
            "SELECT date(o.order_date, '-' || ((CAST(strftime('%w', o.order_date) AS INTEGER) + 6) % 7) || ' days') AS week, \
             SUM(o.total) AS revenue FROM orders o JOIN customers c ON c.id = o.customer_id \
             WHERE o.status = 'completed' AND o.order_date LIKE '2026-10-%' AND c.region IN ('EMEA', 'APAC') \
             GROUP BY 1 ORDER BY 1",
            true,
        )
        .await;
}

#[tokio::test]
async fn web_is_a_platform_for_active_users() {
    demo()
        .await
        .assert_same(
            &["active users on web by month this year"],
            "SELECT substr(day, 1, 7) || '-01' AS month, SUM(active_users) AS active_users FROM app_metrics \
             WHERE platform = 'web' AND day >= '2026-01-01' GROUP BY 1 ORDER BY 1",
            true,
        )
        .await;
}

#[tokio::test]
async fn web_is_a_channel_for_revenue() {
    demo()
        .await
        .assert_same(
            &["revenue on web by month this year"],
            "SELECT substr(order_date, 1, 7) || '-01' AS month, SUM(total) AS revenue FROM orders \
             WHERE status = 'completed' AND channel = 'web' AND order_date >= '2026-01-01' GROUP BY 1 ORDER BY 1",
            true,
        )
        .await;
}

#[tokio::test]
async fn in_q3_2025_replaces_the_time_range_of_a_breakdown() {
    demo()
        .await
        .assert_same(
            &["revenue by region last month", "in Q3 2025"],
            "SELECT c.region AS region, SUM(o.total) AS revenue FROM orders o JOIN customers c ON c.id = o.customer_id \
             WHERE o.status = 'completed' AND o.order_date >= '2025-07-01' AND o.order_date <= '2025-09-30' \
             GROUP BY c.region",
            false,
        )
        .await;
}

#[tokio::test]
async fn top_5_products_by_revenue_last_year() {
    demo()
        .await
        .assert_same(
            &["top 5 products by revenue last year"],
            "SELECT p.name AS product, SUM(i.quantity * i.unit_price * (1 - i.discount)) AS revenue \
             FROM order_items i JOIN orders o ON o.id = i.order_id JOIN products p ON p.id = i.product_id \
             WHERE o.status = 'completed' AND o.order_date LIKE '2025-%' GROUP BY p.name \
             ORDER BY revenue DESC, product LIMIT 5",
            true,
        )
        .await;
}

#[tokio::test]
async fn sessions_and_crashes_by_platform_last_month() {
    demo()
        .await
        .assert_same(
            &["sessions and crashes by platform last month"],
            "SELECT platform, SUM(sessions) AS sessions, SUM(crashes) AS crashes FROM app_metrics \
             WHERE day LIKE '2026-10-%' GROUP BY platform",
            false,
        )
        .await;
}

#[tokio::test]
async fn a_product_named_without_its_parenthetical() {
    demo()
        .await
        .assert_same(
            &["units of analytics suite by month since September"],
            "SELECT substr(o.order_date, 1, 7) || '-01' AS month, SUM(i.quantity) AS units \
             FROM order_items i JOIN orders o ON o.id = i.order_id JOIN products p ON p.id = i.product_id \
             WHERE p.name = 'Analytics Suite (annual seat)' AND o.order_date >= '2026-09-01' GROUP BY 1 ORDER BY 1",
            true,
        )
        .await;
}

#[tokio::test]
async fn a_new_question_in_a_thread_does_not_carry_filters_over() {
    demo()
        .await
        .assert_same(
            &[
                "revenue by region last month",
                "only EMEA",
                "orders by channel this year",
            ],
            "SELECT channel, COUNT(*) AS orders FROM orders WHERE order_date >= '2026-01-01' GROUP BY channel",
            false,
        )
        .await;
}

#[tokio::test]
async fn the_interpreter_trait_answers_like_the_sync_core() {
    let demo = demo().await;
    let answer = demo
        .interpreter
        .interpret(InterpretRequest {
            text: "revenue by region last month",
            current: None,
            today: today(),
            history: &[],
            clarifying: None,
            access: None,
        })
        .await
        .unwrap();
    let Interpretation::Query(query) = answer else {
        panic!("{answer:?}")
    };
    assert_eq!(*query, demo.thread(&["revenue by region last month"]));
    assert!(demo.interpreter.help().contains("active users"));
}

#[tokio::test]
async fn unknown_words_are_named_in_the_reply() {
    let demo = demo().await;
    let message = demo.not_understood(&["revenue by planet"]);
    assert!(message.contains("\"planet\""), "{message}");
    assert!(message.contains("Metrics: revenue"), "{message}");
    let message = demo.not_understood(&["how many widgets did we sell last month"]);
    assert!(message.contains("\"widgets\" and \"sell\""), "{message}");
    let message = demo.not_understood(&["revenue by region", "adjusted for inflation"]);
    assert!(message.contains("\"adjusted\" and \"inflation\""), "{message}");
}

#[tokio::test]
async fn a_refinement_without_a_question_asks_for_one() {
    let message = demo().await.not_understood(&["only EMEA"]);
    assert!(message.contains("Ask one first"), "{message}");
}

#[tokio::test]
async fn metrics_from_different_tables_are_refused() {
    let message = demo().await.not_understood(&["revenue and active users last month"]);
    assert!(
        message.contains("revenue and active users are counted over different tables"),
        "{message}"
    );
}

#[tokio::test]
async fn a_dimension_the_metric_cannot_reach_is_refused() {
    let demo = demo().await;
    let message = demo.not_understood(&["active users by region"]);
    assert!(
        message.contains("cannot be broken down or filtered by region"),
        "{message}"
    );
    let message = demo.not_understood(&["average order value by category"]);
    assert!(
        message.contains("cannot be broken down or filtered by category"),
        "{message}"
    );
    let message = demo.not_understood(&["revenue by region", "for ios"]);
    assert!(message.contains("by platform"), "{message}");
}

/// The system allocator, counting the bytes each thread asks for: a test can then measure the
/// work a call does without timing it (timings flake; allocation totals do not).
struct CountingAllocator;

thread_local! {
    static BYTES_ALLOCATED: Cell<u64> = const { Cell::new(0) };
}

fn count_allocation(bytes: usize) {
    // A constant-initialised thread local without a destructor is always accessible; `try_with`
    // keeps the allocator from ever panicking regardless.
    let _ = BYTES_ALLOCATED.try_with(|total| total.set(total.get() + u64::try_from(bytes).unwrap_or(u64::MAX)));
}

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_allocation(layout.size());
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_allocation(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // Only the growth is new work: a vector doubling from n to 2n bytes asks for n more.
        count_allocation(new_size.saturating_sub(layout.size()));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Bytes this thread allocates while `work` runs.
fn bytes_allocated_by(work: impl FnOnce()) -> u64 {
    let before = BYTES_ALLOCATED.with(Cell::get);
    work();
    BYTES_ALLOCATED.with(Cell::get) - before
}

/// `sentence` repeated as often as fits in `length` characters.
fn question_of_length(sentence: &str, length: usize) -> String {
    sentence.repeat(length / sentence.len())
}

/// Questions reach the interpreter capped at 40,000 characters, and reading one must cost work
/// in proportion to its length. Copying the rest of the question at every word (the quadratic
/// mistake this guards against) allocates, so bytes allocated measure the work exactly where a
/// timing would flake. A nested scan that allocates nothing would go unnoticed.
#[tokio::test]
async fn interpreting_costs_work_in_proportion_to_the_question_length() {
    let demo = demo().await;
    for sentence in [
        // Read to the end; the unknown "customers" makes it a not-understood answer.
        "revenue by region last month for emea customers ",
        // Every word known: read, applied to a query and compiled.
        "revenue by region for emea and apac ",
    ] {
        let short = question_of_length(sentence, 5_000);
        let long = question_of_length(sentence, 40_000);

        let short_bytes = bytes_allocated_by(|| drop(demo.interpreter.interpret_text(&short, None, today())));
        let long_bytes = bytes_allocated_by(|| drop(demo.interpreter.interpret_text(&long, None, today())));

        // Eight times the text: linear work allocates about eight times the bytes, quadratic
        // work about 64 times.
        let growth = long_bytes as f64 / short_bytes as f64;
        assert!(
            growth < 12.0,
            "'{sentence}': 8 times the text allocated {growth:.1} times the bytes ({short_bytes} -> {long_bytes})"
        );
    }
}

// Issue 16 §3: the questions people ask next. Dates for today = 2026-11-22: this quarter is
// Oct 1 – Nov 22, this week Nov 16 – Nov 22, last week Nov 9 – Nov 15.

const WEEK_OF_DAY: &str = "date(day, '-' || ((CAST(strftime('%w', day) AS INTEGER) + 6) % 7) || ' days')";

#[tokio::test]
async fn a_superlative_answers_the_one_row_at_that_end_with_its_value() {
    let demo = demo().await;
    demo.assert_same(
        &["which segment had the highest average order value?"],
        "SELECT c.segment AS segment, AVG(o.total) AS average_order_value FROM orders o \
         JOIN customers c ON c.id = o.customer_id WHERE o.status = 'completed' \
         GROUP BY c.segment ORDER BY 2 DESC, 1 LIMIT 1",
        true,
    )
    .await;
    demo.assert_same(
        &["which platform crashed the most?"],
        "SELECT platform, SUM(crashes) AS crashes FROM app_metrics GROUP BY platform ORDER BY 2 DESC, 1 LIMIT 1",
        true,
    )
    .await;
    demo.assert_same(
        &["which country had the least revenue last year"],
        "SELECT c.country AS country, SUM(o.total) AS revenue FROM orders o JOIN customers c ON c.id = o.customer_id \
         WHERE o.status = 'completed' AND o.order_date LIKE '2025-%' GROUP BY 1 ORDER BY 2 ASC, 1 LIMIT 1",
        true,
    )
    .await;
    demo.assert_same(
        &["the biggest category by units"],
        "SELECT p.category AS category, SUM(i.quantity) AS units FROM order_items i JOIN products p ON p.id = i.product_id \
         GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 1",
        true,
    )
    .await;
    demo.assert_same(
        &["lowest refund rate by region"],
        "SELECT c.region AS region, \
         SUM(o.status = 'refunded') * 100.0 / COUNT(*) AS refund_rate \
         FROM orders o JOIN customers c ON c.id = o.customer_id GROUP BY 1 ORDER BY 2 ASC, 1 LIMIT 1",
        true,
    )
    .await;
    demo.assert_same(
        &["top 3 products in Apparel by revenue"],
        "SELECT p.name AS product, SUM(i.quantity * i.unit_price * (1 - i.discount)) AS revenue \
         FROM order_items i JOIN orders o ON o.id = i.order_id JOIN products p ON p.id = i.product_id \
         WHERE o.status = 'completed' AND p.category = 'Apparel' GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 3",
        true,
    )
    .await;
}

#[tokio::test]
async fn a_superlative_with_a_time_word_ranks_that_grain() {
    let demo = demo().await;
    demo.assert_same(
        &["what was the worst week for sessions?"],
        &format!(
            "SELECT {WEEK_OF_DAY} AS week, SUM(sessions) AS sessions FROM app_metrics \
             GROUP BY 1 ORDER BY 2 ASC, 1 LIMIT 1"
        ),
        true,
    )
    .await;
    // Crashes are bad: their worst week is the one with the most, their best the fewest.
    demo.assert_same(
        &["what was the worst week for crashes?"],
        &format!(
            "SELECT {WEEK_OF_DAY} AS week, SUM(crashes) AS crashes FROM app_metrics \
             GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 1"
        ),
        true,
    )
    .await;
    demo.assert_same(
        &["best platform for crashes this year"],
        "SELECT platform, SUM(crashes) AS crashes FROM app_metrics WHERE day >= '2026-01-01' \
         GROUP BY 1 ORDER BY 2 ASC, 1 LIMIT 1",
        true,
    )
    .await;
    demo.assert_same(
        &["best month for revenue this year"],
        "SELECT substr(order_date, 1, 7) || '-01' AS month, SUM(total) AS revenue FROM orders \
         WHERE status = 'completed' AND order_date >= '2026-01-01' GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 1",
        true,
    )
    .await;
}

#[tokio::test]
async fn two_periods_are_compared_side_by_side_with_the_change() {
    let demo = demo().await;
    // The hand-written columns of one compared metric; `_NOW` and `_BEFORE` are then renamed
    // after the periods.
    let compare = |metric: &str, expression: &str, current: &str, previous: &str| {
        let now = format!("SUM(CASE WHEN {current} THEN {expression} END)");
        let before = format!("SUM(CASE WHEN {previous} THEN {expression} END)");
        format!(
            "{now} AS {metric}_NOW, {before} AS {metric}_BEFORE, {now} - {before} AS {metric}_change, \
             ({now} - {before}) * 100.0 / NULLIF({before}, 0) AS {metric}_change_pct"
        )
    };
    let this_quarter = "order_date >= '2026-10-01' AND order_date < '2026-11-23'";
    let last_quarter = "order_date >= '2026-07-01' AND order_date < '2026-10-01'";
    demo.assert_same(
        &["orders this quarter vs last quarter"],
        &format!(
            "SELECT {} FROM orders",
            compare("orders", "1", this_quarter, last_quarter)
                .replace("orders_NOW", "orders_this_quarter")
                .replace("orders_BEFORE", "orders_last_quarter")
        ),
        false,
    )
    .await;
    let this_week = "day >= '2026-11-16' AND day < '2026-11-23'";
    let last_week = "day >= '2026-11-09' AND day < '2026-11-16'";
    demo.assert_same(
        &["crashes by platform this week compared to last week"],
        &format!(
            "SELECT platform, {} FROM app_metrics GROUP BY platform",
            compare("crashes", "crashes", this_week, last_week)
                .replace("crashes_NOW", "crashes_this_week")
                .replace("crashes_BEFORE", "crashes_last_week")
        ),
        false,
    )
    .await;
    let this_year = "o.order_date >= '2026-01-01' AND o.order_date < '2026-11-23'";
    let last_year = "o.order_date >= '2025-01-01' AND o.order_date < '2026-01-01'";
    demo.assert_same(
        &["revenue by region", "this year vs last year"],
        &format!(
            "SELECT c.region AS region, {} FROM orders o JOIN customers c ON c.id = o.customer_id \
             WHERE o.status = 'completed' GROUP BY 1",
            compare("revenue", "o.total", this_year, last_year)
                .replace("revenue_NOW", "revenue_this_year")
                .replace("revenue_BEFORE", "revenue_last_year")
        ),
        false,
    )
    .await;
    demo.assert_same(
        &["orders by channel last month", "compared with the year before"],
        &format!(
            "SELECT channel, {} FROM orders GROUP BY channel",
            compare(
                "orders",
                "1",
                "order_date LIKE '2026-10-%'",
                "order_date LIKE '2025-10-%'"
            )
            .replace("orders_NOW", "orders_last_month")
            .replace("orders_BEFORE", "orders_the_year_before")
        ),
        false,
    )
    .await;
}

#[tokio::test]
async fn growth_and_change_compare_with_the_period_before() {
    let demo = demo().await;
    let pair = |expression: &str, now: &str, before: &str| {
        (
            format!("SUM(CASE WHEN {now} THEN {expression} END)"),
            format!("SUM(CASE WHEN {before} THEN {expression} END)"),
        )
    };
    // This month so far against the same days of October.
    let (now, before) = pair(
        "total",
        "order_date >= '2026-11-01' AND order_date < '2026-11-23'",
        "order_date >= '2026-10-01' AND order_date < '2026-10-23'",
    );
    demo.assert_same(
        &["revenue growth this month"],
        &format!(
            "SELECT {now} AS revenue_this_month, {before} AS revenue_the_month_before, {now} - {before} AS revenue_change, \
             ({now} - {before}) * 100.0 / NULLIF({before}, 0) AS revenue_change_pct FROM orders WHERE status = 'completed'"
        ),
        false,
    )
    .await;
    let (now, before) = pair(
        "1",
        "order_date >= '2026-01-01' AND order_date < '2026-11-23'",
        "order_date >= '2025-01-01' AND order_date < '2025-11-23'",
    );
    demo.assert_same(
        &["change in orders this year"],
        &format!(
            "SELECT {now} AS orders_this_year, {before} AS orders_the_year_before, {now} - {before} AS orders_change, \
             ({now} - {before}) * 100.0 / NULLIF({before}, 0) AS orders_change_pct FROM orders"
        ),
        false,
    )
    .await;
    let (now, before) = pair(
        "sessions",
        "day >= '2026-11-09' AND day < '2026-11-16'",
        "day >= '2026-11-02' AND day < '2026-11-09'",
    );
    demo.assert_same(
        &["sessions growth by platform last week"],
        &format!(
            "SELECT platform, {now} AS sessions_last_week, {before} AS sessions_the_week_before, {now} - {before} AS sessions_change, \
             ({now} - {before}) * 100.0 / NULLIF({before}, 0) AS sessions_change_pct FROM app_metrics GROUP BY platform"
        ),
        false,
    )
    .await;
}

#[tokio::test]
async fn a_refinement_can_move_the_period_back() {
    let demo = demo().await;
    demo.assert_same(
        &["orders by region this year", "and the year before?"],
        "SELECT c.region AS region, COUNT(*) AS orders FROM orders o JOIN customers c ON c.id = o.customer_id \
         WHERE o.order_date LIKE '2025-%' GROUP BY 1",
        false,
    )
    .await;
    demo.assert_same(
        &["revenue in Q1 2025", "what about the previous quarter?"],
        "SELECT SUM(total) AS revenue FROM orders WHERE status = 'completed' \
         AND order_date >= '2024-10-01' AND order_date < '2025-01-01'",
        false,
    )
    .await;
    demo.assert_same(
        &["sessions by platform last week", "the week before"],
        "SELECT platform, SUM(sessions) AS sessions FROM app_metrics \
         WHERE day >= '2026-11-02' AND day < '2026-11-09' GROUP BY platform",
        false,
    )
    .await;
}

#[tokio::test]
async fn filters_sorts_and_limits_are_refined_relative_to_the_answer() {
    let demo = demo().await;
    demo.assert_same(
        &["revenue by country last month", "only EMEA", "same for APAC"],
        "SELECT c.country AS country, SUM(o.total) AS revenue FROM orders o JOIN customers c ON c.id = o.customer_id \
         WHERE o.status = 'completed' AND o.order_date LIKE '2026-10-%' AND c.region = 'APAC' GROUP BY 1",
        false,
    )
    .await;
    demo.assert_same(
        &["orders by channel this year", "only web and mobile"],
        "SELECT channel, COUNT(*) AS orders FROM orders WHERE order_date >= '2026-01-01' \
         AND channel IN ('web', 'mobile') GROUP BY channel",
        false,
    )
    .await;
    demo.assert_same(
        &["revenue by country", "sort by name"],
        "SELECT c.country AS country, SUM(o.total) AS revenue FROM orders o JOIN customers c ON c.id = o.customer_id \
         WHERE o.status = 'completed' GROUP BY 1 ORDER BY 1 ASC",
        true,
    )
    .await;
    demo.assert_same(
        &["revenue by country last year", "sort ascending"],
        "SELECT c.country AS country, SUM(o.total) AS revenue FROM orders o JOIN customers c ON c.id = o.customer_id \
         WHERE o.status = 'completed' AND o.order_date LIKE '2025-%' GROUP BY 1 ORDER BY 2 ASC",
        true,
    )
    .await;
    demo.assert_same(
        &["revenue by category top 3", "sort by name", "sort descending"],
        "SELECT * FROM (SELECT p.category AS category, SUM(i.quantity * i.unit_price * (1 - i.discount)) AS revenue \
         FROM order_items i JOIN orders o ON o.id = i.order_id JOIN products p ON p.id = i.product_id \
         WHERE o.status = 'completed' GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 3) ORDER BY category DESC",
        true,
    )
    .await;
    demo.assert_same(
        &["units by product top 5", "show all rows"],
        "SELECT p.name AS product, SUM(i.quantity) AS units FROM order_items i JOIN products p ON p.id = i.product_id \
         GROUP BY 1",
        false,
    )
    .await;
}

#[tokio::test]
async fn a_table_the_model_only_joins_is_countable() {
    let demo = demo().await;
    demo.assert_same(
        &["how many products do we sell?"],
        "SELECT COUNT(*) AS number_of_products FROM products",
        false,
    )
    .await;
    demo.assert_same(
        &["new customers by region this year"],
        "SELECT region, COUNT(*) AS customers FROM customers \
         WHERE signup_date >= '2026-01-01' AND signup_date < '2026-11-23' GROUP BY region",
        false,
    )
    .await;
    demo.assert_same(
        &["customers by segment"],
        "SELECT segment, COUNT(*) AS customers FROM customers GROUP BY segment",
        false,
    )
    .await;
    demo.assert_same(
        &["how many SMB customers"],
        "SELECT COUNT(*) AS customers FROM customers WHERE segment = 'SMB'",
        false,
    )
    .await;
    demo.assert_same(
        &["number of products by category"],
        "SELECT category, COUNT(*) AS number_of_products FROM products GROUP BY category",
        false,
    )
    .await;
}

#[tokio::test]
async fn ratios_and_shares_are_answered() {
    let demo = demo().await;
    demo.assert_same(
        &["refund rate by region"],
        "SELECT c.region AS region, SUM(o.status = 'refunded') * 100.0 / COUNT(*) AS refund_rate \
         FROM orders o JOIN customers c ON c.id = o.customer_id GROUP BY 1",
        false,
    )
    .await;
    demo.assert_same(
        &["share of revenue by channel"],
        "SELECT channel, SUM(total) AS revenue, SUM(total) * 100.0 / (SELECT SUM(total) FROM orders WHERE status = 'completed') \
         AS revenue_share_pct FROM orders WHERE status = 'completed' GROUP BY channel",
        false,
    )
    .await;
    demo.assert_same(
        &["orders by segment this year", "as a share"],
        "SELECT c.segment AS segment, COUNT(*) AS orders, COUNT(*) * 100.0 / \
         (SELECT COUNT(*) FROM orders WHERE order_date >= '2026-01-01') AS orders_share_pct \
         FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.order_date >= '2026-01-01' GROUP BY 1",
        false,
    )
    .await;
}

#[tokio::test]
async fn filters_can_be_phrased_through_the_entity_they_belong_to() {
    let demo = demo().await;
    demo.assert_same(
        &["orders for SMB customers"],
        "SELECT COUNT(*) AS orders FROM orders o JOIN customers c ON c.id = o.customer_id WHERE c.segment = 'SMB'",
        false,
    )
    .await;
    demo.assert_same(
        &["revenue from customers in Canada last year"],
        "SELECT SUM(o.total) AS revenue FROM orders o JOIN customers c ON c.id = o.customer_id \
         WHERE o.status = 'completed' AND c.country = 'Canada' AND o.order_date LIKE '2025-%'",
        false,
    )
    .await;
    demo.assert_same(
        &["customers who signed up in 2025 by segment"],
        "SELECT segment, COUNT(*) AS customers FROM customers WHERE signup_date LIKE '2025-%' GROUP BY segment",
        false,
    )
    .await;
    demo.assert_same(
        &["units sold to Enterprise customers by category"],
        "SELECT p.category AS category, SUM(i.quantity) AS units FROM order_items i \
         JOIN orders o ON o.id = i.order_id JOIN customers c ON c.id = o.customer_id JOIN products p ON p.id = i.product_id \
         WHERE c.segment = 'Enterprise' GROUP BY 1",
        false,
    )
    .await;
}

#[tokio::test]
async fn a_misspelt_question_gets_the_nearest_names() {
    let demo = demo().await;
    let message = demo.not_understood(&["revnue by contry"]);
    assert!(message.contains("\"revnue\" and \"contry\""), "{message}");
    assert!(message.contains("revenue (metric)"), "{message}");
    assert!(message.contains("country (breakdown)"), "{message}");
    assert!(!message.contains("Metrics:"), "{message}");
}
