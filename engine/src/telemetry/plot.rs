//! The percentile-distribution plot, drawn as SVG (no system fonts or libraries needed).
//!
//! x: percentile on the usual HdrHistogram log scale, `log10(1/(1−p))`, so 0 is p0, 1 is p90,
//! 2 is p99, 3 is p99.9 and so on: each step right is a tenfold rarer tail. y: latency, log scale.
//! One line per hop. `f64` is used here for drawing only.

use hdrhistogram::Histogram;
use plotters::prelude::*;

use super::error::TelemetryError;

/// Pixel size of the default plot.
pub const PLOT_SIZE: (u32, u32) = (1100, 650);

/// Line colours (Tableau 10, dark enough on white); the end-to-end line is drawn in black.
const COLOURS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];

/// Steps per decade of the x axis at which each line is sampled.
const STEPS_PER_DECADE: u32 = 50;

/// The points `(log10(1/(1−p)), latency ns)` of one histogram's percentile curve: sampled along
/// the axis up to the last sample's percentile, ending at the maximum. Empty for an empty one.
pub fn percentile_curve(hist: &Histogram<u64>) -> Vec<(f64, f64)> {
    let count = hist.len();
    if count == 0 {
        return Vec::new();
    }
    // The highest percentile distinguishable from the max is 1 − 1/count.
    let x_last = (count as f64).log10();
    let steps = (x_last * f64::from(STEPS_PER_DECADE)).ceil() as u32;
    let mut points = Vec::with_capacity(steps as usize + 2);
    for k in 0..steps {
        let x = f64::from(k) / f64::from(STEPS_PER_DECADE);
        let q = 1.0 - 10f64.powf(-x);
        points.push((x, hist.value_at_quantile(q).max(1) as f64));
    }
    points.push((x_last, hist.max().max(1) as f64));
    points
}

/// The x-axis label for position `x`: `0%`, `90%`, `99%`, `99.9%`, … at whole decades.
pub fn percentile_label(x: f64) -> String {
    let k = x.round();
    if (x - k).abs() > 1e-6 {
        return format!("{:.4}%", 100.0 * (1.0 - 10f64.powf(-x)));
    }
    match k as i64 {
        i64::MIN..=0 => "0%".to_owned(),
        1 => "90%".to_owned(),
        2 => "99%".to_owned(),
        n => format!("99.{}%", "9".repeat((n - 2) as usize)),
    }
}

/// A round latency for an axis tick: `100ns`, `2.5us`, `10ms`.
fn axis_ns(ns: f64) -> String {
    let (v, unit) = if ns < 1e3 {
        (ns, "ns")
    } else if ns < 1e6 {
        (ns / 1e3, "us")
    } else if ns < 1e9 {
        (ns / 1e6, "ms")
    } else {
        (ns / 1e9, "s")
    };
    let text = format!("{v:.2}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}{unit}")
}

/// Draws one line per `(name, histogram)` and returns the SVG document.
pub fn percentile_plot_svg(
    lines: &[(&str, &Histogram<u64>)],
    title: &str,
    size: (u32, u32),
) -> Result<String, TelemetryError> {
    let curves: Vec<(&str, Vec<(f64, f64)>)> = lines
        .iter()
        .map(|(name, h)| (*name, percentile_curve(h)))
        .filter(|(_, c)| !c.is_empty())
        .collect();
    if curves.is_empty() {
        return Err(TelemetryError::Plot(
            "no hop has samples; nothing to draw".to_owned(),
        ));
    }
    let x_max = curves
        .iter()
        .flat_map(|(_, c)| c.last().map(|p| p.0))
        .fold(1.0f64, f64::max)
        .ceil()
        .max(2.0);
    let (y_lo, y_hi) = curves
        .iter()
        .flat_map(|(_, c)| c.iter().map(|p| p.1))
        .fold((f64::MAX, 1.0f64), |(lo, hi), y| (lo.min(y), hi.max(y)));
    // Whole decades around the data, so the log axis gets round labels.
    let y_lo = 10f64.powf(y_lo.log10().floor());
    let y_hi = 10f64.powf(y_hi.log10().ceil()).max(y_lo * 10.0);

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        draw(&root, &curves, title, x_max, (y_lo, y_hi))
            .map_err(|e| TelemetryError::Plot(e.to_string()))?;
        root.present()
            .map_err(|e| TelemetryError::Plot(e.to_string()))?;
    }
    Ok(svg)
}

type DrawResult<B> = Result<(), DrawingAreaErrorKind<<B as DrawingBackend>::ErrorType>>;

fn draw<B: DrawingBackend>(
    root: &DrawingArea<B, plotters::coord::Shift>,
    curves: &[(&str, Vec<(f64, f64)>)],
    title: &str,
    x_max: f64,
    (y_lo, y_hi): (f64, f64),
) -> DrawResult<B> {
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 24))
        .margin(20)
        .margin_right(70)
        .x_label_area_size(50)
        .y_label_area_size(80)
        .build_cartesian_2d(0f64..x_max, (y_lo..y_hi).log_scale())?;
    chart
        .configure_mesh()
        .x_labels(x_max as usize + 1)
        .x_label_formatter(&|x| percentile_label(*x))
        .y_label_formatter(&|y| axis_ns(*y))
        .x_desc("percentile")
        .y_desc("latency")
        .axis_desc_style(("sans-serif", 16))
        .label_style(("sans-serif", 14))
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    let mut next_colour = COLOURS.iter().cycle();
    for (name, points) in curves {
        let style = if *name == "e2e" {
            BLACK.stroke_width(3)
        } else {
            next_colour.next().unwrap_or(&BLACK).stroke_width(2)
        };
        chart
            .draw_series(LineSeries::new(points.iter().copied(), style))?
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], style));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font(("sans-serif", 15))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::recorder::new_histogram;

    #[test]
    fn labels_are_the_percentile_decades() {
        let labels: Vec<_> = (0..6).map(|k| percentile_label(f64::from(k))).collect();
        assert_eq!(labels, ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"]);
        assert_eq!(percentile_label(0.5), "68.3772%");
    }

    #[test]
    fn axis_labels_are_round() {
        assert_eq!(axis_ns(100.0), "100ns");
        assert_eq!(axis_ns(1e4), "10us");
        assert_eq!(axis_ns(2.5e6), "2.5ms");
        assert_eq!(axis_ns(1e9), "1s");
    }

    #[test]
    fn curve_rises_to_the_max() {
        let mut h = new_histogram().unwrap();
        for v in 1..=10_000u64 {
            h.record(v * 10).unwrap();
        }
        let c = percentile_curve(&h);
        assert!(c.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1));
        let last = c.last().unwrap();
        assert!((last.0 - 4.0).abs() < 1e-9);
        assert!(h.equivalent(last.1 as u64, 100_000));
        assert!(percentile_curve(&new_histogram().unwrap()).is_empty());
    }

    #[test]
    fn svg_names_every_hop() {
        let mut a = new_histogram().unwrap();
        let mut b = new_histogram().unwrap();
        for v in 0..5_000u64 {
            a.record(300 + v % 700).unwrap();
            b.record(2_000 + v * 3).unwrap();
        }
        let svg = percentile_plot_svg(&[("feed", &a), ("e2e", &b)], "test run", PLOT_SIZE).unwrap();
        assert!(svg.starts_with("<svg"));
        for needle in ["feed", "e2e", "test run", "99.9%", "<polyline"] {
            assert!(svg.contains(needle), "{needle} missing");
        }
        let empty = new_histogram().unwrap();
        assert!(matches!(
            percentile_plot_svg(&[("x", &empty)], "t", PLOT_SIZE),
            Err(TelemetryError::Plot(_))
        ));
    }
}
