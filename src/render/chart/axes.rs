//! The axes: which series goes on which value axis, the value ranges, how ticks and bar values
//! read, and where the x axis is labelled.
use std::ops::Range;

use chrono::{Datelike, NaiveDateTime};
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::coord::types::RangedCoordf64;

use super::plan::{Plan, Series, TimeGrain};
use crate::domain::{ColumnFormat, Value};
use crate::render::number::{format_value, group_thousands};

/// A series with its position in the plan, which picks its colour.
pub(super) type IndexedSeries<'a> = (usize, &'a Series);

/// The series drawn against the left axis and the one (if any) drawn against the right axis.
pub(super) fn split_axes(plan: &Plan) -> (Vec<IndexedSeries<'_>>, Vec<IndexedSeries<'_>>) {
    plan.series
        .iter()
        .enumerate()
        .partition(|(index, _)| plan.right_axis.is_none() || *index != 1)
}

pub(super) fn value_range_of(series: &[IndexedSeries<'_>], from_zero: bool) -> (f64, f64) {
    let values: Vec<f64> = series
        .iter()
        .flat_map(|(_, s)| s.values.iter().flatten().copied())
        .collect();
    value_range(&values, from_zero)
}

/// The value axis: from zero (bars always; lines unless the values sit far from zero) to a
/// little past the largest value.
fn value_range(values: &[f64], from_zero: bool) -> (f64, f64) {
    let (mut low, mut high) = values.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
        (lo.min(v), hi.max(v))
    });
    if !low.is_finite() || !high.is_finite() {
        return (0.0, 1.0);
    }
    let near_zero = (low >= 0.0 && low <= high * 0.5) || (high <= 0.0 && high >= low * 0.5);
    let anchored = from_zero || near_zero;
    if anchored {
        low = low.min(0.0);
        high = high.max(0.0);
    }
    let span = high - low;
    let pad = if span > 0.0 {
        span * 0.06
    } else {
        high.abs().max(1.0) * 0.1
    };
    let low = if low < 0.0 || !anchored { low - pad } else { low };
    let high = if high > 0.0 || !anchored { high + pad } else { high };
    (low, high)
}

/// Formats value-axis ticks with thousands separators and just enough decimals for the step.
pub(super) fn tick_formatter(low: f64, high: f64) -> impl Fn(&f64) -> String {
    let step = (high - low) / 8.0;
    let decimals = if step >= 1.0 || step <= 0.0 {
        0
    } else {
        usize::try_from((-step.log10()).ceil() as i64).unwrap_or(0).min(6)
    };
    move |value: &f64| {
        let text = format!("{value:.decimals$}");
        // "-0" and "-0.00" read as zero.
        let text = match text.strip_prefix('-') {
            Some(unsigned) if unsigned.chars().all(|c| c == '0' || c == '.') => unsigned.to_string(),
            _ => text,
        };
        group_thousands(&text)
    }
}

/// Value labels on bars read as rounded numbers; cents on a bar of millions are noise.
pub(super) fn bar_value_text(value: f64, format: ColumnFormat) -> String {
    let format = match format {
        ColumnFormat::Money if value.abs() >= 1_000.0 => ColumnFormat::Integer,
        other => other,
    };
    format_value(&Value::Float(value), format)
}

/// Which time buckets get a label: at most `room`, evenly spaced, and for months and long runs
/// of days or weeks on calendar boundaries (the first bucket of a month, quarter or year) so the
/// labels read as a calendar.
pub(super) fn label_positions(points: &[NaiveDateTime], seconds: &[f64], grain: TimeGrain, room: usize) -> Vec<f64> {
    let room = room.max(1);
    let month_of = |p: &NaiveDateTime| (p.year(), p.month());
    let calendar: Vec<(&NaiveDateTime, f64)> = match grain {
        TimeGrain::Month => points.iter().zip(seconds.iter().copied()).collect(),
        TimeGrain::Day if points.len() > room => points
            .iter()
            .zip(seconds.iter().copied())
            .enumerate()
            .filter(
                |(i, (p, _))| match i.checked_sub(1).and_then(|previous| points.get(previous)) {
                    Some(previous) => month_of(previous) != month_of(p),
                    None => true,
                },
            )
            .map(|(_, point)| point)
            .collect(),
        _ => Vec::new(),
    };
    let needed = calendar.len().div_ceil(room).max(1);
    if let Some(stride) = [1i64, 2, 3, 6, 12, 24, 60, 120]
        .into_iter()
        .find(|&s| s >= i64::try_from(needed).unwrap_or(i64::MAX))
    {
        let aligned: Vec<f64> = calendar
            .iter()
            .filter(|(p, _)| (i64::from(p.year()) * 12 + i64::from(p.month0())).rem_euclid(stride) == 0)
            .map(|(_, s)| *s)
            .collect();
        if aligned.len() >= 2 {
            return aligned;
        }
    }
    seconds
        .iter()
        .step_by(points.len().div_ceil(room).max(1))
        .copied()
        .collect()
}

/// A continuous axis labelled exactly at the given points (time buckets, category centres), so
/// the labels are the data's own and never crowd each other.
pub(super) struct LabelledAxis {
    inner: RangedCoordf64,
    labelled_at: Vec<f64>,
}

impl LabelledAxis {
    pub(super) fn new(range: Range<f64>, labelled_at: Vec<f64>) -> Self {
        LabelledAxis {
            inner: range.into(),
            labelled_at,
        }
    }
}

impl Ranged for LabelledAxis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.inner.map(value, limit)
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.labelled_at.clone()
        }
    }

    fn range(&self) -> Range<f64> {
        self.inner.range()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_axis_ticks_have_thousands_separators_and_decimals_only_when_needed() {
        let large = tick_formatter(0.0, 2_000_000.0);
        let small = tick_formatter(0.0, 0.4);

        assert_eq!(large(&1_250_000.0), "1,250,000");
        assert_eq!(small(&0.25), "0.25");
        assert_eq!(large(&-0.0), "0");
    }
}
