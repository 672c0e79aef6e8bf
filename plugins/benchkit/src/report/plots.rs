//! The plots, drawn with plotters to SVG strings: a latency distribution per workload, a
//! scaling curve per workload, and grouped bars of medians for throughput and space.
//!
//! Not here: what goes in which plot (`sections`), the axes (`axes`), and writing files
//! or embedding the SVG in the page (the report's `write`, `html`).

use plotters::backend::SVGBackend;
use plotters::chart::ChartBuilder;
use plotters::coord::Shift;
use plotters::drawing::{DrawingArea, DrawingAreaErrorKind, IntoDrawingArea};
use plotters::element::{Circle, EmptyElement, ErrorBar, PathElement, Rectangle, Text};
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{Color, IntoFont, RGBColor, TextStyle, WHITE};

use super::axes::{Fit, RowAxis, ValueAxis};
use super::numbers::human;
use super::sections::{
    params_text, row_label, scaling_param, series_name, shorten, Colors, Section,
};
use crate::results::Measurement;
use crate::stats::quantile_sorted;

const WIDTH: u32 = 960;
const FONT: &str = "sans-serif";
const INK: RGBColor = RGBColor(36, 41, 47);
const GRID: RGBColor = RGBColor(222, 226, 230);

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
type Drawn<T> = Result<T, DrawingAreaErrorKind<std::io::Error>>;

fn text_style(size: u32, anchor: HPos) -> TextStyle<'static> {
    (FONT, size)
        .into_font()
        .color(&INK)
        .pos(Pos::new(anchor, VPos::Center))
}

/// The pixels a label needs at the tick label size (a guess: the browser lays text out).
fn label_width(labels: &[String]) -> u32 {
    let chars = labels.iter().map(|l| l.chars().count()).max().unwrap_or(0);
    (chars as u32 * 8 + 24).clamp(60, 360)
}

/// Where the `k`-th sample of a row is drawn, off the row's centre: spread by the golden
/// ratio so that equal values do not hide each other.
fn jitter(k: usize) -> f64 {
    ((k as f64 * 0.618_033_988_75).fract() - 0.5) * 0.44
}

fn quartiles(samples: &[f64]) -> Option<(f64, f64)> {
    if samples.is_empty() || samples.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    Some((quantile_sorted(&s, 0.25), quantile_sorted(&s, 0.75)))
}

/// One row per measurement: its samples, quartiles, median interval, median and p95.
pub(super) fn latency_plot(title: &str, rows: &[&Measurement], colors: &Colors) -> Drawn<String> {
    let labels: Vec<String> = rows.iter().map(|m| row_label(m, None)).collect();
    let values = rows.iter().flat_map(|m| {
        let s = &m.summary;
        m.samples
            .iter()
            .copied()
            .chain([s.median, s.p95, s.median_ci.0, s.median_ci.1])
    });
    let x = ValueAxis::fit("s", values, Fit::Spread);
    let label_w = label_width(&labels);
    let height = 150 + 48 * rows.len() as u32;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE)?;
        let (top, key) = root.split_vertically(height - 34);
        let mut chart = ChartBuilder::on(&top)
            .caption(title, (FONT, 22))
            .margin(14)
            .margin_right(30)
            .x_label_area_size(48)
            .y_label_area_size(label_w)
            .build_cartesian_2d(x.clone(), RowAxis(labels))?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .bold_line_style(GRID)
            .x_labels(8)
            .y_labels(rows.len())
            .x_desc(x.desc.as_str())
            .label_style((FONT, 16))
            .axis_desc_style((FONT, 16))
            .draw()?;
        let area = chart.plotting_area();
        for (i, m) in rows.iter().enumerate() {
            let y = i as f64;
            let c = colors.of(m);
            let s = &m.summary;
            if let Some((q1, q3)) = quartiles(&m.samples) {
                let corners = [(q1, y - 0.32), (q3, y + 0.32)];
                area.draw(&Rectangle::new(corners, c.mix(0.14).filled()))?;
                area.draw(&Rectangle::new(corners, c.stroke_width(1)))?;
            }
            let band = [(s.median_ci.0, y - 0.09), (s.median_ci.1, y + 0.09)];
            area.draw(&Rectangle::new(band, c.mix(0.7).filled()))?;
            for (k, v) in m.samples.iter().enumerate() {
                area.draw(&Circle::new((*v, y + jitter(k)), 3, c.mix(0.55).filled()))?;
            }
            let bar = |v: f64, half: f64| vec![(v, y - half), (v, y + half)];
            area.draw(&PathElement::new(bar(s.p95, 0.24), INK.stroke_width(1)))?;
            area.draw(&PathElement::new(bar(s.median, 0.4), INK.stroke_width(3)))?;
        }
        latency_key(&key, label_w as i32 + 14)?;
        root.present()?;
    }
    Ok(svg)
}

/// The key under a latency plot: what the marks mean.
fn latency_key(area: &Area, x0: i32) -> Drawn<()> {
    let grey = RGBColor(110, 118, 129);
    let y = 14;
    let mut x = x0;
    let say = |x: &mut i32, text: &str| -> Drawn<()> {
        area.draw(&Text::new(
            text.to_owned(),
            (*x, y),
            text_style(14, HPos::Left),
        ))?;
        *x += text.chars().count() as i32 * 7 + 26;
        Ok(())
    };
    area.draw(&Circle::new((x + 4, y), 3, grey.mix(0.6).filled()))?;
    x += 14;
    say(&mut x, "sample")?;
    area.draw(&Rectangle::new(
        [(x, y - 7), (x + 18, y + 7)],
        grey.mix(0.2).filled(),
    ))?;
    area.draw(&Rectangle::new([(x, y - 7), (x + 18, y + 7)], grey))?;
    x += 24;
    say(&mut x, "quartiles")?;
    area.draw(&Rectangle::new(
        [(x, y - 2), (x + 18, y + 2)],
        grey.mix(0.8).filled(),
    ))?;
    x += 24;
    say(&mut x, "95% CI of the median")?;
    area.draw(&PathElement::new(
        vec![(x, y - 8), (x, y + 8)],
        INK.stroke_width(3),
    ))?;
    x += 8;
    say(&mut x, "median")?;
    area.draw(&PathElement::new(
        vec![(x, y - 6), (x, y + 6)],
        INK.stroke_width(1),
    ))?;
    x += 8;
    say(&mut x, "p95")
}

/// A legend: a swatch and a name per entry, down the left of `area`.
fn legend(area: &Area, entries: &[(String, RGBColor)], top: i32) -> Drawn<()> {
    for (i, (label, color)) in entries.iter().enumerate() {
        let y = top + i as i32 * 24;
        area.draw(&Rectangle::new([(6, y - 6), (20, y + 6)], color.filled()))?;
        area.draw(&Text::new(
            label.clone(),
            (28, y),
            text_style(16, HPos::Left),
        ))?;
    }
    Ok(())
}

/// The legend's entries for `rows`, once each.
fn legend_entries<'m>(
    rows: impl IntoIterator<Item = &'m Measurement>,
    label: impl Fn(&Measurement) -> String,
    colors: &Colors,
) -> Vec<(String, RGBColor)> {
    let mut entries: Vec<(String, RGBColor)> = Vec::new();
    for m in rows {
        let l = label(m);
        if !entries.iter().any(|(e, _)| *e == l) {
            entries.push((l, colors.of(m)));
        }
    }
    entries
}

/// The pixels a legend needs beside its plot.
fn legend_width(entries: &[(String, RGBColor)]) -> u32 {
    let labels: Vec<String> = entries.iter().map(|(l, _)| l.clone()).collect();
    label_width(&labels) + 20
}

/// One series' medians against a scaling parameter.
#[derive(Debug)]
struct Curve<'m> {
    label: String,
    color: RGBColor,
    points: Vec<(f64, &'m Measurement)>,
}

/// One curve per (tool, driver, other parameters): medians and their intervals against the
/// scaling parameter.
pub(super) fn scaling_plot(
    title: &str,
    unit: &str,
    rows: &[&Measurement],
    colors: &Colors,
) -> Drawn<String> {
    let param = rows
        .iter()
        .find_map(|m| scaling_param(m))
        .map_or("n", |(p, _)| p);
    let mut curves: Vec<Curve> = Vec::new();
    for m in rows {
        let Some((_, x)) = scaling_param(m) else {
            continue;
        };
        let label = row_label(m, Some(param));
        match curves.iter_mut().find(|c| c.label == label) {
            Some(c) => c.points.push((x, m)),
            None => curves.push(Curve {
                label,
                color: colors.of(m),
                points: vec![(x, m)],
            }),
        }
    }
    for c in &mut curves {
        c.points.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    let points = || curves.iter().flat_map(|c| c.points.iter());
    let x = ValueAxis::parameter(param, points().map(|(x, _)| *x));
    let y = ValueAxis::fit(
        unit,
        points().flat_map(|(_, m)| {
            let s = &m.summary;
            [s.median, s.median_ci.0, s.median_ci.1]
        }),
        Fit::FromZero,
    );
    let entries: Vec<(String, RGBColor)> =
        curves.iter().map(|c| (c.label.clone(), c.color)).collect();
    let legend_w = legend_width(&entries);
    let height = 480;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE)?;
        let (left, right) = root.split_horizontally(WIDTH.saturating_sub(legend_w));
        let mut chart = ChartBuilder::on(&left)
            .caption(title, (FONT, 22))
            .margin(14)
            .x_label_area_size(48)
            .y_label_area_size(76)
            .build_cartesian_2d(x.clone(), y.clone())?;
        chart
            .configure_mesh()
            .bold_line_style(GRID)
            .light_line_style(RGBColor(240, 242, 244))
            .x_labels(10)
            .y_labels(8)
            .x_desc(x.desc.as_str())
            .y_desc(y.desc.as_str())
            .label_style((FONT, 16))
            .axis_desc_style((FONT, 16))
            .draw()?;
        let area = chart.plotting_area();
        for Curve { color, points, .. } in &curves {
            let line: Vec<(f64, f64)> =
                points.iter().map(|(x, m)| (*x, m.summary.median)).collect();
            area.draw(&PathElement::new(line, color.stroke_width(2)))?;
            for (x, m) in points {
                let s = &m.summary;
                area.draw(&ErrorBar::new_vertical(
                    *x,
                    s.median_ci.0,
                    s.median,
                    s.median_ci.1,
                    color.filled().stroke_width(2),
                    10,
                ))?;
            }
        }
        legend(&right, &entries, 64)?;
        root.present()?;
    }
    Ok(svg)
}

/// Horizontal bars of medians: a group per workload and parameters, a bar per (tool,
/// driver), whiskers at the median's interval, the value written at the end.
pub(super) fn bars_plot(
    title: &str,
    unit: &str,
    sections: &[&Section],
    colors: &Colors,
) -> Drawn<String> {
    let mut groups: Vec<(String, Vec<&Measurement>)> = Vec::new();
    for s in sections {
        for m in &s.rows {
            let params = params_text(m, None);
            let label = if params.is_empty() {
                s.workload.to_owned()
            } else {
                format!("{} · {params}", s.workload)
            };
            let label = shorten(&label, 48);
            match groups.iter_mut().find(|g| g.0 == label) {
                Some(g) => g.1.push(m),
                None => groups.push((label, vec![m])),
            }
        }
    }
    let per_group = groups.iter().map(|g| g.1.len()).max().unwrap_or(1).max(1);
    let all = || groups.iter().flat_map(|g| g.1.iter());
    let x = ValueAxis::fit(
        unit,
        all().flat_map(|m| [0.0, m.summary.median, m.summary.median_ci.1]),
        Fit::Bars,
    );
    let entries = legend_entries(all().copied(), series_name, colors);
    let legend_w = legend_width(&entries);
    let labels: Vec<String> = groups.iter().map(|g| g.0.clone()).collect();
    let label_w = label_width(&labels);
    let height = 140 + groups.len() as u32 * (per_group as u32 * 22 + 18);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE)?;
        let (left, right) = root.split_horizontally(WIDTH.saturating_sub(legend_w));
        let mut chart = ChartBuilder::on(&left)
            .caption(title, (FONT, 22))
            .margin(14)
            .x_label_area_size(48)
            .y_label_area_size(label_w)
            .build_cartesian_2d(x.clone(), RowAxis(labels))?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .bold_line_style(GRID)
            .x_labels(8)
            .y_labels(groups.len())
            .x_desc(x.desc.as_str())
            .label_style((FONT, 16))
            .axis_desc_style((FONT, 16))
            .draw()?;
        let area = chart.plotting_area();
        for (i, (_, bars)) in groups.iter().enumerate() {
            let t = 0.8 / bars.len() as f64;
            for (j, m) in bars.iter().enumerate() {
                let s = &m.summary;
                let y0 = i as f64 - 0.4 + j as f64 * t;
                let (y1, yc) = (y0 + t * 0.9, y0 + t * 0.45);
                let c = colors.of(m);
                area.draw(&Rectangle::new([(0.0, y0), (s.median, y1)], c.filled()))?;
                let cap = t * 0.22;
                for path in [
                    vec![(s.median_ci.0, yc), (s.median_ci.1, yc)],
                    vec![(s.median_ci.0, yc - cap), (s.median_ci.0, yc + cap)],
                    vec![(s.median_ci.1, yc - cap), (s.median_ci.1, yc + cap)],
                ] {
                    area.draw(&PathElement::new(path, INK.stroke_width(1)))?;
                }
                let end = s.median.max(s.median_ci.1);
                area.draw(
                    &(EmptyElement::at((end, yc))
                        + Text::new(human(unit, s.median), (6, 0), text_style(14, HPos::Left))),
                )?;
            }
        }
        legend(&right, &entries, 64)?;
        root.present()?;
    }
    Ok(svg)
}
