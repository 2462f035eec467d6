//! Drawing a plan with plotters into an RGB pixel buffer (header, legend, lines or bars, the
//! axes built by `axes`), and encoding the buffer as PNG. Text is drawn with DejaVu Sans compiled
//! into the binary, so rendering needs no system fonts and no fontconfig.
use std::collections::HashMap;
use std::sync::OnceLock;

use chrono::NaiveDateTime;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::FontStyle;

use super::axes::{bar_value_text, label_positions, split_axes, tick_formatter, value_range_of, LabelledAxis};
use super::plan::{Plan, TimeGrain, XAxis, MAX_SERIES};
use super::{ChartError, CHART_HEIGHT, CHART_WIDTH};

/// Font family name the embedded font is registered under.
const FONT: &str = "sans-serif";
/// Tableau 10: distinct, colour-blind friendly, and readable on white.
const PALETTE: [RGBColor; MAX_SERIES] = [
    RGBColor(0x4E, 0x79, 0xA7),
    RGBColor(0xF2, 0x8E, 0x2B),
    RGBColor(0xE1, 0x57, 0x59),
    RGBColor(0x59, 0xA1, 0x4F),
    RGBColor(0x76, 0xB7, 0xB2),
    RGBColor(0xB0, 0x7A, 0xA1),
    RGBColor(0xED, 0xC9, 0x48),
    RGBColor(0x9C, 0x75, 0x5F),
];
const TEXT: RGBColor = RGBColor(0x22, 0x22, 0x22);
const MUTED: RGBColor = RGBColor(0x66, 0x66, 0x66);
const GRID: RGBColor = RGBColor(0xE4, 0xE4, 0xE4);

type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;

const TITLE_SIZE: f64 = 24.0;
const NOTE_SIZE: f64 = 15.0;
const LABEL_SIZE: f64 = 14.0;
const DESC_SIZE: f64 = 16.0;
const LEGEND_SIZE: f64 = 15.0;
/// Height of the band above the plot holding the title, and the note under it when there is one.
const HEADER_HEIGHT: u32 = 52;
const HEADER_WITH_NOTE_HEIGHT: u32 = 76;
const LEGEND_MAX_WIDTH: u32 = 240;
/// Longest category label, in pixels, before it is cut with an ellipsis.
const CATEGORY_LABEL_MAX_WIDTH: u32 = 160;

pub(super) fn pixel_buffer_len(width: u32, height: u32) -> usize {
    // Three bytes (RGB) per pixel.
    usize::try_from(u64::from(width) * u64::from(height) * 3).unwrap_or(0)
}

fn draw_error(error: impl std::fmt::Display) -> ChartError {
    ChartError::Draw(error.to_string())
}

/// Registers the embedded font once per process; plotters looks fonts up by family name.
fn ensure_font() -> Result<(), ChartError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular()).is_ok()
            && plotters::style::register_font(FONT, FontStyle::Bold, dejavu::sans::bold()).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(ChartError::Draw("the embedded font could not be loaded".to_string()))
    }
}

fn font(size: f64) -> TextStyle<'static> {
    (FONT, size).into_font().color(&TEXT)
}

fn bold(size: f64) -> TextStyle<'static> {
    (FONT, size, FontStyle::Bold).into_font().color(&TEXT)
}

fn text_width(area: &Area<'_>, text: &str, style: &TextStyle<'_>) -> u32 {
    area.estimate_text_size(text, style).map(|(w, _)| w).unwrap_or(0)
}

/// Cuts `text` with an ellipsis so that it fits in `max_width` pixels.
fn fit_text(area: &Area<'_>, text: &str, style: &TextStyle<'_>, max_width: u32) -> String {
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text_width(area, &text, style) <= max_width {
        return text;
    }
    let chars: Vec<char> = text.chars().collect();
    let (mut low, mut high) = (0usize, chars.len());
    // Binary search for the longest prefix that fits with the ellipsis.
    while low < high {
        let middle = (low + high).div_ceil(2);
        let candidate: String = chars.iter().take(middle).collect::<String>() + "…";
        if text_width(area, &candidate, style) <= max_width {
            low = middle;
        } else {
            high = middle - 1;
        }
    }
    chars.iter().take(low).collect::<String>().trim_end().to_string() + "…"
}

/// Cuts `text` in the middle so that it fits in `max_width` pixels: category names often share
/// a prefix ("Product …") and differ at the end, so both ends are kept.
fn fit_text_middle(area: &Area<'_>, text: &str, style: &TextStyle<'_>, max_width: u32) -> String {
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text_width(area, &text, style) <= max_width {
        return text;
    }
    let chars: Vec<char> = text.chars().collect();
    let shortened = |kept: usize| {
        let tail = kept * 2 / 5;
        let head: String = chars.iter().take(kept - tail).collect();
        let tail: String = chars.iter().skip(chars.len() - tail).collect();
        format!("{}…{}", head.trim_end(), tail.trim_start())
    };
    let (mut low, mut high) = (0usize, chars.len());
    while low < high {
        let middle = (low + high).div_ceil(2);
        if text_width(area, &shortened(middle), style) <= max_width {
            low = middle;
        } else {
            high = middle - 1;
        }
    }
    shortened(low)
}

/// Draws `plan` under `title` into `pixels` (RGB, [`CHART_WIDTH`] × [`CHART_HEIGHT`]).
pub(super) fn draw_plan(plan: &Plan, title: &str, pixels: &mut [u8]) -> Result<(), ChartError> {
    ensure_font()?;
    let root = BitMapBackend::with_buffer(pixels, (CHART_WIDTH, CHART_HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(draw_error)?;

    let header_height = if plan.notes.is_empty() {
        HEADER_HEIGHT
    } else {
        HEADER_WITH_NOTE_HEIGHT
    };
    let (header, body) = root.split_vertically(header_height);
    draw_header(&header, title, &plan.notes)?;

    let legend: Vec<String> = plan
        .series
        .iter()
        .enumerate()
        .map(|(index, series)| match (&plan.right_axis, index) {
            (Some(_), 1) => format!("{} (right axis)", series.name),
            _ => series.name.clone(),
        })
        .collect();
    let legend_width = if legend.len() > 1 {
        let widest = legend
            .iter()
            .map(|l| text_width(&body, l, &font(LEGEND_SIZE)))
            .max()
            .unwrap_or(0);
        (widest + 44).min(LEGEND_MAX_WIDTH)
    } else {
        0
    };
    let (plot, legend_area) = body.split_horizontally(CHART_WIDTH - legend_width);
    match &plan.x {
        XAxis::Time { points, grain } => draw_lines(&plot, plan, points, *grain)?,
        XAxis::Categories(labels) => draw_bars(&plot, plan, labels)?,
    }
    if legend_width > 0 {
        draw_legend(&legend_area, &legend, legend_width)?;
    }
    root.present().map_err(draw_error)
}

fn draw_header(area: &Area<'_>, title: &str, notes: &[String]) -> Result<(), ChartError> {
    let max_width = CHART_WIDTH - 40;
    let title_style = bold(TITLE_SIZE);
    let title = fit_text(area, title, &title_style, max_width);
    area.draw(&Text::new(title, (20, 16), title_style))
        .map_err(draw_error)?;
    if !notes.is_empty() {
        let note_style = font(NOTE_SIZE).color(&MUTED);
        let note = notes.join("; ");
        let mut chars = note.chars();
        let note = match chars.next() {
            Some(first) => first.to_uppercase().chain(chars).collect::<String>() + ".",
            None => note,
        };
        let note = fit_text(area, &note, &note_style, max_width);
        area.draw(&Text::new(note, (20, 48), note_style)).map_err(draw_error)?;
    }
    Ok(())
}

fn draw_legend(area: &Area<'_>, labels: &[String], width: u32) -> Result<(), ChartError> {
    let style = font(LEGEND_SIZE);
    for (index, (label, color)) in labels.iter().zip(PALETTE.iter()).enumerate() {
        let y = 14 + 26 * i32::try_from(index).unwrap_or(0);
        area.draw(&Rectangle::new([(4, y), (18, y + 14)], color.filled()))
            .map_err(draw_error)?;
        let text = fit_text(area, label, &style, width.saturating_sub(36));
        area.draw(&Text::new(
            text,
            (26, y + 7),
            style.pos(Pos::new(HPos::Left, VPos::Center)),
        ))
        .map_err(draw_error)?;
    }
    Ok(())
}

/// Width of a value axis's label area: the widest tick label, the tick marks and the rotated
/// axis description.
fn value_label_area_width(area: &Area<'_>, (low, high): (f64, f64)) -> u32 {
    let format = tick_formatter(low, high);
    let widest = [low, high, (low + high) / 2.0]
        .iter()
        .map(|v| text_width(area, &format(v), &font(LABEL_SIZE)))
        .max()
        .unwrap_or(0);
    widest + 46
}

/// Builds the plot: a labelled x axis, the left value axis with grid lines, and the right
/// value axis when the plan has one.
fn build_chart<'a, 'b>(
    area: &'a Area<'b>,
    plan: &Plan,
    x_axis: LabelledAxis,
    x_label_height: u32,
    left: (f64, f64),
    right: Option<(f64, f64)>,
    x_format: &dyn Fn(&f64) -> String,
) -> Result<DualChart<'a, 'b>, ChartError> {
    let x_range = x_axis.range();
    let right_range = right.unwrap_or(left);
    let mut chart = ChartBuilder::on(area)
        .margin_left(12)
        .margin_right(if right.is_some() { 12 } else { 28 })
        .margin_top(10)
        .margin_bottom(8)
        .x_label_area_size(x_label_height)
        .y_label_area_size(value_label_area_width(area, left))
        .right_y_label_area_size(if right.is_some() {
            value_label_area_width(area, right_range)
        } else {
            0
        })
        .build_cartesian_2d(x_axis, left.0..left.1)
        .map_err(draw_error)?
        .set_secondary_coord(x_range.clone(), right_range.0..right_range.1);
    let left_format = tick_formatter(left.0, left.1);
    chart
        .configure_mesh()
        .disable_x_mesh()
        .bold_line_style(GRID)
        .light_line_style(WHITE)
        .axis_style(MUTED)
        .y_labels(8)
        .x_label_formatter(x_format)
        .y_label_formatter(&left_format)
        .label_style(font(LABEL_SIZE))
        .axis_desc_style(font(DESC_SIZE))
        .x_desc(plan.x_name.as_str())
        .y_desc(plan.y_name.as_str())
        .draw()
        .map_err(draw_error)?;
    if left.0 < 0.0 && left.1 > 0.0 {
        // Values on both sides of zero: a baseline shows which are which.
        let baseline = [(x_range.start, 0.0), (x_range.end, 0.0)];
        chart
            .draw_series(LineSeries::new(baseline, MUTED.stroke_width(1)))
            .map_err(draw_error)?;
    }
    if let (Some((low, high)), Some(name)) = (right, &plan.right_axis) {
        let right_format = tick_formatter(low, high);
        chart
            .configure_secondary_axes()
            .axis_style(MUTED)
            .y_labels(8)
            .y_label_formatter(&right_format)
            .label_style(font(LABEL_SIZE))
            .axis_desc_style(font(DESC_SIZE))
            .y_desc(name.as_str())
            .draw()
            .map_err(draw_error)?;
    }
    Ok(chart)
}

type DualChart<'a, 'b> = plotters::chart::DualCoordChartContext<
    'a,
    BitMapBackend<'b>,
    Cartesian2d<LabelledAxis, RangedCoordf64>,
    Cartesian2d<RangedCoordf64, RangedCoordf64>,
>;

fn draw_lines(area: &Area<'_>, plan: &Plan, points: &[NaiveDateTime], grain: TimeGrain) -> Result<(), ChartError> {
    let (left_series, right_series) = split_axes(plan);
    let left = value_range_of(&left_series, false);
    let right = (!right_series.is_empty()).then(|| value_range_of(&right_series, false));
    let seconds: Vec<f64> = points.iter().map(|p| p.and_utc().timestamp() as f64).collect();
    let first = seconds.first().copied().unwrap_or(0.0);
    let last = seconds.last().copied().unwrap_or(1.0);
    let pad = ((last - first) * 0.02).max(1.0);

    // Label as many buckets as fit side by side, evenly spaced.
    let widest = points
        .iter()
        .map(|p| text_width(area, &grain.label(p), &font(LABEL_SIZE)))
        .max()
        .unwrap_or(60);
    let (plot_width, _) = area.dim_in_pixel();
    let room = usize::try_from(plot_width.saturating_sub(160) / (widest + 28))
        .unwrap_or(1)
        .max(2);
    let labelled_at = label_positions(points, &seconds, grain, room);
    let labels: HashMap<i64, String> = points
        .iter()
        .zip(&seconds)
        .map(|(p, s)| (*s as i64, grain.label(p)))
        .collect();
    let x_format = |x: &f64| labels.get(&(*x as i64)).cloned().unwrap_or_default();
    let x_axis = LabelledAxis::new(first - pad..last + pad, labelled_at);
    let mut chart = build_chart(area, plan, x_axis, 58, left, right, &x_format)?;

    let markers = points.len() <= 60;
    // Thick lines over hundreds of points turn into a solid band.
    let stroke = match points.len() {
        0..=120 => 3,
        121..=300 => 2,
        _ => 1,
    };
    for (index, series) in plan.series.iter().enumerate() {
        let color = PALETTE.get(index % PALETTE.len()).copied().unwrap_or(BLACK);
        let on_right = right_series.iter().any(|(i, _)| *i == index);
        // A missing value breaks the line rather than bridging the gap.
        let pairs: Vec<(Option<f64>, f64)> = series.values.iter().copied().zip(seconds.iter().copied()).collect();
        for run in pairs.split(|(value, _)| value.is_none()) {
            let run: Vec<(f64, f64)> = run.iter().filter_map(|(v, x)| v.map(|v| (*x, v))).collect();
            let line = LineSeries::new(run.iter().copied(), color.stroke_width(stroke));
            let dots = run
                .iter()
                .filter(|_| markers || run.len() == 1)
                .map(|&point| Circle::new(point, 4, color.filled()));
            if on_right {
                chart.draw_secondary_series(line).map_err(draw_error)?;
                chart.draw_secondary_series(dots).map_err(draw_error)?;
            } else {
                chart.draw_series(line).map_err(draw_error)?;
                chart.draw_series(dots).map_err(draw_error)?;
            }
        }
    }
    Ok(())
}

fn draw_bars(area: &Area<'_>, plan: &Plan, labels: &[String]) -> Result<(), ChartError> {
    let (left_series, right_series) = split_axes(plan);
    let left = value_range_of(&left_series, true);
    let right = (!right_series.is_empty()).then(|| value_range_of(&right_series, true));
    let count = labels.len().max(1);
    let (area_width, _) = area.dim_in_pixel();
    let axes_width = value_label_area_width(area, left) + right.map(|r| value_label_area_width(area, r)).unwrap_or(0);
    let slot = area_width.saturating_sub(axes_width + 40) / u32::try_from(count).unwrap_or(1);

    // Labels sit flat when they all fit under their bar; otherwise they are turned to read
    // upwards and shortened, so neighbours never overlap.
    let label_style = font(LABEL_SIZE);
    let flat = labels.iter().all(|l| text_width(area, l, &label_style) + 8 <= slot);
    let shown: Vec<String> = if flat {
        labels.to_vec()
    } else {
        labels
            .iter()
            .map(|l| fit_text_middle(area, l, &label_style, CATEGORY_LABEL_MAX_WIDTH))
            .collect()
    };
    let x_label_height = if flat {
        58
    } else {
        shown
            .iter()
            .map(|l| text_width(area, l, &label_style))
            .max()
            .unwrap_or(0)
            + 50
    };
    // Categories sit at 0.5, 1.5, ...; flat labels come from the mesh, turned ones are drawn
    // below, because plotters places turned tick labels poorly.
    let x_format = |x: &f64| {
        let index = (x - 0.5).round();
        if !flat || index < 0.0 {
            return String::new();
        }
        shown.get(index as usize).cloned().unwrap_or_default()
    };
    let centres: Vec<f64> = (0..count).map(|i| i as f64 + 0.5).collect();
    let x_axis = LabelledAxis::new(0.0..count as f64, centres.clone());
    let mut chart = build_chart(area, plan, x_axis, x_label_height, left, right, &x_format)?;

    if !flat {
        let (base_x, base_y) = area.get_base_pixel();
        let turned = label_style
            .transform(FontTransform::Rotate270)
            .pos(Pos::new(HPos::Right, VPos::Center));
        for (centre, label) in centres.iter().zip(&shown) {
            let (x, y) = chart.backend_coord(&(*centre, left.0));
            area.draw(&Text::new(label.clone(), (x - base_x, y - base_y + 10), turned.clone()))
                .map_err(draw_error)?;
        }
    }

    let series_count = plan.series.len().max(1);
    let bar_width = 0.8 / series_count as f64;
    for (index, series) in plan.series.iter().enumerate() {
        let color = PALETTE.get(index % PALETTE.len()).copied().unwrap_or(BLACK);
        let offset = 0.1 + index as f64 * bar_width;
        let bars = series.values.iter().enumerate().filter_map(|(i, value)| {
            let value = (*value)?;
            let left = i as f64 + offset;
            Some(Rectangle::new([(left, 0.0), (left + bar_width, value)], color.filled()))
        });
        if right_series.iter().any(|(i, _)| *i == index) {
            chart.draw_secondary_series(bars).map_err(draw_error)?;
        } else {
            chart.draw_series(bars).map_err(draw_error)?;
        }
    }

    // With one series and room above each bar, write the value on it.
    if let [series] = plan.series.as_slice() {
        let value_style = font(LABEL_SIZE).color(&MUTED);
        let texts: Vec<(f64, f64, String)> = series
            .values
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.map(|v| (i as f64 + 0.5, v, bar_value_text(v, plan.y_format))))
            .collect();
        if texts
            .iter()
            .all(|(_, _, t)| text_width(area, t, &value_style) + 8 <= slot)
        {
            let labels = texts.into_iter().map(|(x, value, text)| {
                let (vertical, offset) = if value >= 0.0 {
                    (VPos::Bottom, -5)
                } else {
                    (VPos::Top, 5)
                };
                let style = value_style.pos(Pos::new(HPos::Center, vertical));
                EmptyElement::at((x, value)) + Text::new(text, (0, offset), style)
            });
            chart.draw_series(labels).map_err(draw_error)?;
        }
    }
    Ok(())
}

pub(super) fn encode_png(pixels: &[u8], width: u32, height: u32) -> Result<Vec<u8>, ChartError> {
    let mut png = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut png, width, height);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().map_err(draw_error)?;
        writer.write_image_data(pixels).map_err(draw_error)?;
        writer.finish().map_err(draw_error)?;
    }
    Ok(png)
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;
    use crate::domain::{ColumnFormat, QueryResult, Value};
    use crate::render::chart::fixtures::*;
    use crate::render::chart::{Chart, ChartKind, MAX_CATEGORIES};

    fn rgb(colour: RGBColor) -> [u8; 3] {
        [colour.0, colour.1, colour.2]
    }

    fn drawn(result: &QueryResult, title: &str) -> (Chart, Picture) {
        let chart = render(result, title);
        let picture = Picture::decode(&chart.png);
        assert_eq!((picture.width, picture.height), (CHART_WIDTH, CHART_HEIGHT), "{title}");
        (chart, picture)
    }

    /// The x axis: the lowest long line in the axis colour (a zero line, drawn when values go
    /// below zero, sits higher).
    fn x_axis(picture: &Picture) -> HorizontalLine {
        match picture.horizontal_lines(rgb(MUTED), picture.width / 2).last() {
            Some(axis) => *axis,
            None => panic!("no x axis was drawn"),
        }
    }

    /// The pixel column of `at` on an x axis that runs from 0 to `count` (categories sit in the
    /// slots between whole numbers).
    fn column_of(axis: &HorizontalLine, count: usize, at: f64) -> f64 {
        f64::from(axis.left) + at / count as f64 * f64::from(axis.right - axis.left)
    }

    fn assert_near(actual: u32, expected: f64, what: &str) {
        assert!(
            (f64::from(actual) - expected).abs() <= 3.0,
            "{what}: at {actual}, expected {expected:.1}"
        );
    }

    /// The top row of the tallest bar of `colour` on the plot.
    fn tallest_bar_top(picture: &Picture, axis: &HorizontalLine, colour: [u8; 3]) -> u32 {
        match picture
            .blocks(colour, (axis.left, axis.right + 1))
            .iter()
            .map(|bar| bar.top)
            .min()
        {
            Some(top) => top,
            None => panic!("no bar of colour {colour:?} was drawn"),
        }
    }

    /// Asserts that `bars` are solid, stand on `axis`, fill `[slot + start, slot + start + width]`
    /// of their category slot, and are as tall as `fractions` of the bar whose top is at
    /// `tallest_top`.
    fn assert_bars(
        picture: &Picture,
        axis: &HorizontalLine,
        (colour, bars): ([u8; 3], &[Block]),
        (start, width): (f64, f64),
        fractions: &[f64],
        tallest_top: u32,
    ) {
        assert_eq!(bars.len(), fractions.len(), "one bar per category: {bars:?}");
        let tallest = f64::from(axis.y - tallest_top);
        for (slot, (bar, fraction)) in bars.iter().zip(fractions).enumerate() {
            let what = format!("bar {slot} of colour {colour:?}");
            let left = column_of(axis, fractions.len(), slot as f64 + start);
            assert_near(bar.left, left, &format!("{what}, left edge"));
            let right = column_of(axis, fractions.len(), slot as f64 + start + width);
            assert_near(bar.right, right, &format!("{what}, right edge"));
            assert!(
                bar.bottom < axis.y && bar.bottom + 3 >= axis.y,
                "{what} stands on the x axis (row {}): {bar:?}",
                axis.y
            );
            let height = f64::from(axis.y - bar.top) / tallest;
            assert!(
                (height - fraction).abs() <= 0.015,
                "{what} is {height:.3} of the tallest bar, its value {fraction:.3}"
            );
            let inside = picture.count_other_than(colour, (bar.left, bar.right + 1), (bar.top, bar.bottom + 1));
            assert_eq!(inside, 0, "{what} is solid");
        }
    }

    /// Asserts that `colour` is drawn as a line across the plot: from its first point (2 % in
    /// from the left, minus a marker's radius) to its last, missing at most a few columns (where
    /// a later series is drawn over it).
    fn assert_line_across(picture: &Picture, axis: &HorizontalLine, colour: [u8; 3], what: &str) {
        let columns: Vec<u32> = picture
            .blocks(colour, (axis.left, axis.right + 1))
            .iter()
            .flat_map(|block| block.left..=block.right)
            .collect();
        let (Some(&first), Some(&last)) = (columns.first(), columns.last()) else {
            panic!("{what}: no line of colour {colour:?} was drawn");
        };
        let inset = 0.03 * f64::from(axis.right - axis.left) + 5.0;
        assert!(
            f64::from(first) <= f64::from(axis.left) + inset,
            "{what} starts at {first}, the axis at {}",
            axis.left
        );
        assert!(
            f64::from(last) >= f64::from(axis.right) - inset,
            "{what} ends at {last}, the axis at {}",
            axis.right
        );
        let coverage = columns.len() as f64 / f64::from(last - first + 1);
        assert!(
            coverage >= 0.95,
            "{what} is broken: {coverage:.2} of its columns are drawn"
        );
    }

    #[test]
    fn a_category_result_is_drawn_as_solid_bars_in_their_slots_as_tall_as_their_values() {
        // Arrange
        let values = [1_843_201.55, 1_210_933.10, 988_412.00, 301_877.45];
        let fractions: Vec<f64> = values.iter().map(|v| v / values[0]).collect();

        // Act
        let (chart, picture) = drawn(&revenue_by_region(), "Revenue by region");

        // Assert
        assert_eq!(chart.kind, ChartKind::Bars);
        let axis = x_axis(&picture);
        let colour = rgb(PALETTE[0]);
        let bars = picture.blocks(colour, (0, picture.width));
        let tallest_top = tallest_bar_top(&picture, &axis, colour);
        assert_bars(&picture, &axis, (colour, &bars), (0.1, 0.8), &fractions, tallest_top);
    }

    #[test]
    fn grouped_bars_stand_side_by_side_in_series_order_with_a_legend_swatch_each() {
        // Arrange: revenue is 1,800,000 × the region's scale × the channel's share.
        let scales = [1.0, 0.7, 0.55, 0.2];
        let shares = [0.55, 0.35, 0.1];

        // Act
        let (chart, picture) = drawn(&revenue_by_region_and_channel(), "Revenue by region and channel");

        // Assert
        assert_eq!(chart.kind, ChartKind::GroupedBars);
        let axis = x_axis(&picture);
        let width = 0.8 / shares.len() as f64;
        let tallest_top = tallest_bar_top(&picture, &axis, rgb(PALETTE[0]));
        for (series, share) in shares.iter().enumerate() {
            let colour = rgb(PALETTE[series]);
            // Heights are compared with the tallest bar of all: the first region's first series.
            let fractions: Vec<f64> = scales.iter().map(|scale| scale * share / shares[0]).collect();
            let bars = picture.blocks(colour, (axis.left, axis.right + 1));
            let start = 0.1 + series as f64 * width;
            assert_bars(
                &picture,
                &axis,
                (colour, &bars),
                (start, width),
                &fractions,
                tallest_top,
            );
            let swatches = picture.blocks(colour, (axis.right + 1, picture.width));
            assert!(
                matches!(swatches.as_slice(), [swatch] if swatch.width() == 14 && swatch.bottom - swatch.top == 13),
                "series {series} has one 14-pixel legend swatch right of the plot: {swatches:?}"
            );
        }
    }

    #[test]
    fn negative_values_hang_below_the_zero_line_and_positive_ones_stand_on_it() {
        // Arrange
        let values = [120_400.0, 54_300.0, -12_800.0, 33_900.0, -4_100.0, 18_700.0];

        // Act
        let (_, picture) = drawn(&profit_by_country(), "Profit by country");

        // Assert
        let axis = x_axis(&picture);
        let zero = match picture.horizontal_lines(rgb(MUTED), picture.width / 4).as_slice() {
            [zero, bottom] if *bottom == axis => *zero,
            other => panic!("expected a zero line above the x axis: {other:?}"),
        };
        let bars = picture.blocks(rgb(PALETTE[0]), (axis.left, axis.right + 1));
        assert_eq!(bars.len(), values.len(), "{bars:?}");
        for (slot, (bar, value)) in bars.iter().zip(values).enumerate() {
            let left = column_of(&axis, values.len(), slot as f64 + 0.1);
            assert_near(bar.left, left, &format!("bar {slot}"));
            if value > 0.0 {
                assert!(
                    bar.bottom < zero.y,
                    "bar {slot} ({value}) stands on the zero line: {bar:?}"
                );
            } else {
                assert!(
                    bar.top >= zero.y,
                    "bar {slot} ({value}) hangs from the zero line: {bar:?}"
                );
            }
        }
    }

    #[test]
    fn two_hundred_categories_are_drawn_as_thirty_bars() {
        let (_, picture) = drawn(&many_products(200), "Units sold by product");

        let axis = x_axis(&picture);
        let bars = picture.blocks(rgb(PALETTE[0]), (axis.left, axis.right + 1));
        assert_eq!(bars.len(), MAX_CATEGORIES, "{bars:?}");
        for (slot, bar) in bars.iter().enumerate() {
            let what = format!("bar {slot}");
            assert_near(bar.left, column_of(&axis, MAX_CATEGORIES, slot as f64 + 0.1), &what);
            assert_near(bar.right, column_of(&axis, MAX_CATEGORIES, slot as f64 + 0.9), &what);
        }
    }

    #[test]
    fn a_time_series_is_drawn_as_one_unbroken_line_per_metric_across_the_plot() {
        let (chart, picture) = drawn(&monthly_revenue(), "Revenue and orders by month");

        assert_eq!(chart.kind, ChartKind::Line);
        let axis = x_axis(&picture);
        assert_line_across(&picture, &axis, rgb(PALETTE[0]), "revenue");
        assert_line_across(&picture, &axis, rgb(PALETTE[1]), "orders");
    }

    #[test]
    fn a_time_bucket_with_a_second_dimension_is_drawn_as_one_line_per_value() {
        let (chart, picture) = drawn(&weekly_users_by_platform(), "Weekly active users by platform");

        assert_eq!(chart.kind, ChartKind::Line);
        let axis = x_axis(&picture);
        for (index, platform) in ["ios", "android", "web"].iter().enumerate() {
            assert_line_across(&picture, &axis, rgb(PALETTE[index]), platform);
        }
    }

    #[test]
    fn a_long_daily_series_is_drawn_as_one_thin_unbroken_line() {
        let (_, picture) = drawn(&daily_orders(), "Orders per day");

        let axis = x_axis(&picture);
        assert_line_across(&picture, &axis, rgb(PALETTE[0]), "orders");
    }

    #[test]
    fn a_missing_value_breaks_the_line_rather_than_bridging_the_gap() {
        // Arrange: 48 hours, with hours 3, 13, 23, 33 and 43 missing.
        let start = NaiveDate::from_ymd_opt(2024, 3, 1)
            .and_then(|day| day.and_hms_opt(0, 0, 0))
            .unwrap_or_default();
        let result = QueryResult {
            columns: vec![
                column("hour", ColumnFormat::Text),
                column("sessions", ColumnFormat::Integer),
            ],
            rows: (0..48i64)
                .map(|hour| {
                    let sessions = if hour % 10 == 3 {
                        Value::Null
                    } else {
                        Value::Int(100 + hour * 3)
                    };
                    vec![Value::Timestamp(start + chrono::Duration::hours(hour)), sessions]
                })
                .collect(),
        };

        // Act
        let (_, picture) = drawn(&result, "Sessions per hour");

        // Assert
        let axis = x_axis(&picture);
        let pieces = picture.blocks(rgb(PALETTE[0]), (axis.left, axis.right + 1));
        assert_eq!(pieces.len(), 6, "five gaps make six pieces: {pieces:?}");
    }

    #[test]
    fn long_titles_and_labels_are_shortened_to_fit() {
        // Arrange
        let mut result = revenue_by_region();
        if let Some(Value::Text(name)) = result.rows.first_mut().and_then(|row| row.first_mut()) {
            *name = "A region whose name goes on and on and on well past any sensible length".to_string();
        }
        let title = "How much revenue did each region bring in ".repeat(5);

        // Act
        let (_, picture) = drawn(&result, &title);

        // Assert: the title is drawn and stops at the 20-pixel margin instead of running off.
        let white = rgb(WHITE);
        let header = (0, HEADER_HEIGHT);
        assert!(
            picture.count_other_than(white, (20, 120), header) > 0,
            "no title was drawn"
        );
        assert_eq!(
            picture.count_other_than(white, (CHART_WIDTH - 19, CHART_WIDTH), header),
            0,
            "the title runs into the right margin"
        );
        let axis = x_axis(&picture);
        assert_eq!(picture.blocks(rgb(PALETTE[0]), (axis.left, axis.right + 1)).len(), 4);
    }

    /// Writes the example charts to `target/chart-examples/` for a person to look at:
    /// `cargo test --lib render::chart -- --ignored`.
    #[test]
    #[ignore = "writes PNG files for manual review"]
    fn example_charts_are_written_for_review() {
        let directory = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/chart-examples");
        if let Err(error) = std::fs::create_dir_all(&directory) {
            panic!("cannot create {}: {error}", directory.display());
        }
        let examples = [
            (
                "monthly_revenue",
                monthly_revenue(),
                "What was revenue and the number of orders by month over the last two years?",
            ),
            (
                "weekly_users",
                weekly_users_by_platform(),
                "Weekly active users by platform",
            ),
            ("revenue_by_region", revenue_by_region(), "Revenue by region"),
            (
                "region_channel",
                revenue_by_region_and_channel(),
                "Revenue by region and channel",
            ),
            ("products_200", many_products(200), "Units sold by product"),
            ("products_12", many_products(12), "Units sold by product"),
            ("daily_orders", daily_orders(), "Orders per day"),
            (
                "categories",
                revenue_by_category(),
                "Revenue by product category, last 12 months",
            ),
            ("profit", profit_by_country(), "Profit by country"),
            (
                "segment_orders_refunds",
                segment_orders_and_refunds(),
                "Orders and refunds by segment",
            ),
        ];
        for (name, result, title) in examples {
            let chart = render(&result, title);
            let path = directory.join(format!("{name}.png"));
            if let Err(error) = std::fs::write(&path, &chart.png) {
                panic!("cannot write {}: {error}", path.display());
            }
        }
    }
}
