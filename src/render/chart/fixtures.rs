//! Query results the chart tests draw, and helpers to draw and decode them.
use chrono::{Datelike, Duration, NaiveDate};
use rust_decimal::Decimal;

use super::{render_chart, Chart};
use crate::domain::{Column, ColumnFormat, QueryResult, Value};

pub(super) fn column(name: &str, format: ColumnFormat) -> Column {
    Column {
        name: name.to_string(),
        format,
    }
}

pub(super) fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap_or_default()
}

pub(super) fn text(value: &str) -> Value {
    Value::Text(value.to_string())
}

/// A chart's PNG decoded: what was actually drawn, pixel by pixel, for tests that check the
/// drawing rather than the file.
pub(super) struct Picture {
    pub(super) width: u32,
    pub(super) height: u32,
    /// Three bytes (RGB) per pixel, row by row.
    rgb: Vec<u8>,
}

/// A run of adjacent columns that each hold at least one pixel of a colour: a bar, a legend
/// swatch, or a stretch of line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Block {
    pub(super) left: u32,
    /// The last column of the run.
    pub(super) right: u32,
    /// The highest and lowest rows holding the colour within the run.
    pub(super) top: u32,
    pub(super) bottom: u32,
}

impl Block {
    pub(super) fn width(&self) -> u32 {
        self.right - self.left + 1
    }
}

/// A horizontal line of one colour: where it is and how far it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct HorizontalLine {
    pub(super) y: u32,
    pub(super) left: u32,
    /// The last column of the line.
    pub(super) right: u32,
}

impl Picture {
    /// Decodes `png`, failing the test when it is not an 8-bit RGB PNG.
    pub(super) fn decode(png: &[u8]) -> Picture {
        let decoder = png::Decoder::new(png);
        let mut reader = match decoder.read_info() {
            Ok(reader) => reader,
            Err(error) => panic!("the chart is not a PNG: {error}"),
        };
        let mut rgb = vec![0; reader.output_buffer_size()];
        let info = match reader.next_frame(&mut rgb) {
            Ok(info) => info,
            Err(error) => panic!("the chart's pixels do not decode: {error}"),
        };
        assert_eq!(
            (info.color_type, info.bit_depth),
            (png::ColorType::Rgb, png::BitDepth::Eight),
            "the chart is not 8-bit RGB"
        );
        rgb.truncate(info.buffer_size());
        Picture {
            width: info.width,
            height: info.height,
            rgb,
        }
    }

    pub(super) fn pixel(&self, x: u32, y: u32) -> [u8; 3] {
        let at = usize::try_from((u64::from(y) * u64::from(self.width) + u64::from(x)) * 3).unwrap_or(usize::MAX);
        match self.rgb.get(at..at + 3) {
            Some([r, g, b]) => [*r, *g, *b],
            _ => panic!("({x}, {y}) is outside the {}×{} chart", self.width, self.height),
        }
    }

    /// How many pixels in the rectangle `[left, right) × [top, bottom)` are not `background`.
    pub(super) fn count_other_than(
        &self,
        background: [u8; 3],
        (left, right): (u32, u32),
        (top, bottom): (u32, u32),
    ) -> usize {
        (top..bottom)
            .flat_map(|y| (left..right).map(move |x| (x, y)))
            .filter(|&(x, y)| self.pixel(x, y) != background)
            .count()
    }

    /// The runs of adjacent columns in `[left, right)` that hold `colour`, left to right.
    pub(super) fn blocks(&self, colour: [u8; 3], (left, right): (u32, u32)) -> Vec<Block> {
        let mut blocks: Vec<Block> = Vec::new();
        for x in left..right.min(self.width) {
            let rows: Vec<u32> = (0..self.height).filter(|&y| self.pixel(x, y) == colour).collect();
            let (Some(&top), Some(&bottom)) = (rows.first(), rows.last()) else {
                continue;
            };
            match blocks.last_mut() {
                Some(block) if block.right + 1 == x => {
                    block.right = x;
                    block.top = block.top.min(top);
                    block.bottom = block.bottom.max(bottom);
                }
                _ => blocks.push(Block {
                    left: x,
                    right: x,
                    top,
                    bottom,
                }),
            }
        }
        blocks
    }

    /// Every horizontal line of `colour` at least `min_length` pixels long, top to bottom (the
    /// longest on a row when a row has several).
    pub(super) fn horizontal_lines(&self, colour: [u8; 3], min_length: u32) -> Vec<HorizontalLine> {
        let mut lines = Vec::new();
        for y in 0..self.height {
            let mut longest: Option<HorizontalLine> = None;
            let mut start: Option<u32> = None;
            for x in 0..=self.width {
                let on = x < self.width && self.pixel(x, y) == colour;
                match (on, start) {
                    (true, None) => start = Some(x),
                    (false, Some(left)) => {
                        let line = HorizontalLine { y, left, right: x - 1 };
                        if longest.is_none_or(|l| line.right - line.left > l.right - l.left) {
                            longest = Some(line);
                        }
                        start = None;
                    }
                    _ => {}
                }
            }
            if let Some(line) = longest.filter(|l| l.right - l.left + 1 >= min_length) {
                lines.push(line);
            }
        }
        lines
    }
}

pub(super) fn render(result: &QueryResult, title: &str) -> Chart {
    match render_chart(result, title) {
        Ok(chart) => chart,
        Err(error) => panic!("{title}: the chart was not drawn: {error}"),
    }
}

/// Monthly revenue and orders over two years, the way SQLite returns it (ISO text).
pub(super) fn monthly_revenue() -> QueryResult {
    let rows = (0..24)
        .map(|i| {
            let month = day(2023 + i / 12, u32::try_from(i % 12).unwrap_or(0) + 1, 1);
            let seasonal = if i % 12 >= 10 { 1.6 } else { 1.0 };
            let revenue = (180_000.0 + 6_500.0 * f64::from(i)) * seasonal;
            vec![
                text(&month.format("%Y-%m-%d").to_string()),
                Value::Float(revenue),
                Value::Int(i64::from(2_400 + 90 * i)),
            ]
        })
        .collect();
    QueryResult {
        columns: vec![
            column("month", ColumnFormat::Date),
            column("revenue", ColumnFormat::Money),
            column("orders", ColumnFormat::Integer),
        ],
        rows,
    }
}

/// Weekly active users per platform: one metric split by a second dimension.
pub(super) fn weekly_users_by_platform() -> QueryResult {
    let start = day(2024, 1, 1);
    let mut rows = Vec::new();
    for week in 0..40i64 {
        for (platform, base) in [("ios", 5_200), ("android", 6_100), ("web", 2_300)] {
            let date = start + Duration::weeks(week);
            rows.push(vec![
                Value::Date(date),
                text(platform),
                Value::Int(base + 37 * week + (week % 5) * 120),
            ]);
        }
    }
    QueryResult {
        columns: vec![
            column("week", ColumnFormat::Date),
            column("platform", ColumnFormat::Text),
            column("active_users", ColumnFormat::Integer),
        ],
        rows,
    }
}

pub(super) fn revenue_by_region() -> QueryResult {
    let rows = [
        ("North America", "1843201.55"),
        ("EMEA", "1210933.10"),
        ("APAC", "988412.00"),
        ("LATAM", "301877.45"),
    ]
    .iter()
    .map(|(region, revenue)| vec![text(region), Value::Decimal(revenue.parse().unwrap_or(Decimal::ZERO))])
    .collect();
    QueryResult {
        columns: vec![
            column("region", ColumnFormat::Text),
            column("revenue", ColumnFormat::Money),
        ],
        rows,
    }
}

pub(super) fn revenue_by_region_and_channel() -> QueryResult {
    let mut rows = Vec::new();
    for (region, scale) in [("North America", 1.0), ("EMEA", 0.7), ("APAC", 0.55), ("LATAM", 0.2)] {
        for (channel, share) in [("web", 0.55), ("mobile", 0.35), ("marketplace", 0.1)] {
            rows.push(vec![
                text(region),
                text(channel),
                Value::Float(1_800_000.0 * scale * share),
            ]);
        }
    }
    QueryResult {
        columns: vec![
            column("region", ColumnFormat::Text),
            column("channel", ColumnFormat::Text),
            column("revenue", ColumnFormat::Money),
        ],
        rows,
    }
}

pub(super) fn many_products(count: usize) -> QueryResult {
    let rows = (0..count)
        .map(|i| {
            let units = i64::try_from((i * 7_919) % 1_000).unwrap_or(0) * 13 + 50;
            vec![
                text(&format!("Product with a fairly long name #{i}")),
                Value::Int(units),
            ]
        })
        .collect();
    QueryResult {
        columns: vec![
            column("product", ColumnFormat::Text),
            column("units_sold", ColumnFormat::Integer),
        ],
        rows,
    }
}

/// Two years of daily orders with weekly and yearly seasonality (730 points).
pub(super) fn daily_orders() -> QueryResult {
    let start = day(2023, 1, 1);
    let rows = (0..730i64)
        .map(|i| {
            let date = start + Duration::days(i);
            let weekly = if date.weekday().number_from_monday() >= 6 {
                1.3
            } else {
                1.0
            };
            let yearly = if date.month() >= 11 { 1.5 } else { 1.0 };
            let orders = (60.0 + i as f64 * 0.05) * weekly * yearly;
            vec![text(&date.format("%Y-%m-%d").to_string()), Value::Int(orders as i64)]
        })
        .collect();
    QueryResult {
        columns: vec![
            column("day", ColumnFormat::Date),
            column("orders", ColumnFormat::Integer),
        ],
        rows,
    }
}

pub(super) fn revenue_by_category() -> QueryResult {
    let rows = [
        ("Electronics", 912_334.5),
        ("Home & Kitchen", 543_120.25),
        ("Sports & Outdoors", 321_877.0),
        ("Books", 120_443.9),
        ("Toys & Games", 210_009.1),
        ("Beauty & Personal Care", 188_500.0),
        ("Clothing, Shoes & Jewelry", 402_312.7),
        ("Garden", 99_120.0),
        ("Office Products", 75_400.3),
        ("Pet Supplies", 133_761.0),
        ("Automotive", 64_200.0),
        ("Health & Household", 154_900.0),
    ]
    .iter()
    .map(|(category, revenue)| vec![text(category), Value::Float(*revenue)])
    .collect();
    QueryResult {
        columns: vec![
            column("category", ColumnFormat::Text),
            column("revenue", ColumnFormat::Money),
        ],
        rows,
    }
}

pub(super) fn profit_by_country() -> QueryResult {
    let rows = [
        ("United States", 120_400),
        ("Germany", 54_300),
        ("France", -12_800),
        ("Japan", 33_900),
        ("Brazil", -4_100),
        ("Australia", 18_700),
    ]
    .iter()
    .map(|(country, profit)| vec![text(country), Value::Int(*profit)])
    .collect();
    QueryResult {
        columns: vec![
            column("country", ColumnFormat::Text),
            column("profit", ColumnFormat::Integer),
        ],
        rows,
    }
}

pub(super) fn segment_orders_and_refunds() -> QueryResult {
    QueryResult {
        columns: vec![
            column("segment", ColumnFormat::Text),
            column("orders", ColumnFormat::Integer),
            column("refunds", ColumnFormat::Integer),
        ],
        rows: vec![
            vec![text("consumer"), Value::Int(41_000), Value::Int(1_900)],
            vec![text("small business"), Value::Int(17_500), Value::Int(600)],
            vec![text("enterprise"), Value::Int(4_200), Value::Int(95)],
        ],
    }
}
