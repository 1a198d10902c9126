//! `report.svg`: the price path with liquidation markers above, the insurance fund below.
//!
//! Drawn from the sampled [`super::Series`]: each bucket is a vertical bar from its low to its
//! high mark joined by a line through the closes; a bucket whose ticks caused sell liquidations
//! (longs closed) gets a red triangle under its low, one with buy liquidations (shorts closed) a
//! green triangle above its high. x: hours since the first tick (UTC clock time in the axis
//! labels). `f64` is used for drawing only.

use plotters::prelude::*;

use super::series::Bucket;

/// Pixel size of the plot.
pub const PLOT_SIZE: (u32, u32) = (1200, 800);

type DrawResult<B> = Result<(), DrawingAreaErrorKind<<B as DrawingBackend>::ErrorType>>;

/// Why the plot could not be drawn.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// Nothing to draw.
    #[error("no tick was applied; nothing to plot")]
    Empty,
    /// The drawing backend failed.
    #[error("drawing the plot: {0}")]
    Draw(String),
}

/// `HH:MM` (UTC) of `first_ns + hours`.
fn clock_label(first_ns: u64, hours: f64) -> String {
    let secs = (first_ns / 1_000_000_000) as f64 + hours * 3600.0;
    let day = secs.rem_euclid(86_400.0) as u64;
    format!("{:02}:{:02}", day / 3600, day % 3600 / 60)
}

/// Draws the series of `symbol` (prices with `price_decimals`) and returns the SVG document.
pub fn svg(
    buckets: &[Bucket],
    symbol: &str,
    price_decimals: u32,
    title: &str,
) -> Result<String, PlotError> {
    let first = buckets.first().ok_or(PlotError::Empty)?;
    let scale = 10f64.powi(price_decimals as i32);
    let t0 = first.ts_ns;
    let x = |b: &Bucket| (b.ts_ns.saturating_sub(t0)) as f64 / 3.6e12;
    let x_max = buckets.last().map_or(0.0, x).max(1e-6);
    let lo = buckets.iter().map(|b| b.low_px).min().unwrap_or(0) as f64 / scale;
    let hi = buckets.iter().map(|b| b.high_px).max().unwrap_or(0) as f64 / scale;
    let pad = ((hi - lo) * 0.08).max(hi.abs() * 1e-4).max(1e-9);
    let fund: Vec<(f64, f64)> = buckets
        .iter()
        .map(|b| (x(b), b.fund.to_f64_lossy()))
        .collect();
    let f_lo = fund.iter().map(|p| p.1).fold(f64::MAX, f64::min).min(0.0);
    let f_hi = fund.iter().map(|p| p.1).fold(f64::MIN, f64::max);
    let f_pad = ((f_hi - f_lo) * 0.08).max(1.0);
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, PLOT_SIZE).into_drawing_area();
        let r = draw(
            &root,
            buckets,
            Frame {
                title,
                symbol,
                scale,
                t0,
                x_max,
                price: (lo - pad, hi + pad),
                fund: (f_lo - f_pad, f_hi + f_pad),
            },
            &fund,
        )
        .and_then(|()| root.present());
        r.map_err(|e| PlotError::Draw(e.to_string()))?;
    }
    Ok(out)
}

struct Frame<'a> {
    title: &'a str,
    symbol: &'a str,
    scale: f64,
    t0: u64,
    x_max: f64,
    price: (f64, f64),
    fund: (f64, f64),
}

fn draw<B: DrawingBackend>(
    root: &DrawingArea<B, plotters::coord::Shift>,
    buckets: &[Bucket],
    f: Frame<'_>,
    fund: &[(f64, f64)],
) -> DrawResult<B> {
    root.fill(&WHITE)?;
    let root = root.titled(f.title, ("sans-serif", 22))?;
    let (top, bottom) = root.split_vertically(PLOT_SIZE.1 * 62 / 100);
    let t0 = f.t0;
    let x = |b: &Bucket| (b.ts_ns.saturating_sub(t0)) as f64 / 3.6e12;
    let label = move |h: &f64| clock_label(t0, *h);

    let mut chart = ChartBuilder::on(&top)
        .margin(15)
        .margin_right(40)
        .x_label_area_size(30)
        .y_label_area_size(90)
        .build_cartesian_2d(0f64..f.x_max, f.price.0..f.price.1)?;
    chart
        .configure_mesh()
        .x_label_formatter(&label)
        .y_desc(format!("{} mark", f.symbol))
        .axis_desc_style(("sans-serif", 15))
        .label_style(("sans-serif", 13))
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    let blue = RGBColor(31, 119, 180);
    chart.draw_series(buckets.iter().map(|b| {
        PathElement::new(
            vec![
                (x(b), b.low_px as f64 / f.scale),
                (x(b), b.high_px as f64 / f.scale),
            ],
            blue.mix(0.5).stroke_width(1),
        )
    }))?;
    chart
        .draw_series(LineSeries::new(
            buckets.iter().map(|b| (x(b), b.close_px as f64 / f.scale)),
            blue.stroke_width(1),
        ))?
        .label("mark (close of each sample; bars: low–high)")
        .legend(move |(px, py)| PathElement::new(vec![(px, py), (px + 20, py)], blue));
    let red = RGBColor(214, 39, 40);
    let green = RGBColor(44, 160, 44);
    chart
        .draw_series(
            buckets
                .iter()
                .filter(|b| b.sells > 0)
                .map(|b| TriangleMarker::new((x(b), b.low_px as f64 / f.scale), 5, red.filled())),
        )?
        .label("liquidations of longs")
        .legend(move |(px, py)| TriangleMarker::new((px + 10, py), 5, red.filled()));
    chart
        .draw_series(
            buckets.iter().filter(|b| b.buys > 0).map(|b| {
                TriangleMarker::new((x(b), b.high_px as f64 / f.scale), 5, green.filled())
            }),
        )?
        .label("liquidations of shorts")
        .legend(move |(px, py)| TriangleMarker::new((px + 10, py), 5, green.filled()));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font(("sans-serif", 13))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;

    let mut chart = ChartBuilder::on(&bottom)
        .margin(15)
        .margin_right(40)
        .x_label_area_size(40)
        .y_label_area_size(90)
        .build_cartesian_2d(0f64..f.x_max, f.fund.0..f.fund.1)?;
    chart
        .configure_mesh()
        .x_label_formatter(&label)
        .x_desc("time (UTC)")
        .y_desc("insurance fund")
        .axis_desc_style(("sans-serif", 15))
        .label_style(("sans-serif", 13))
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    chart.draw_series(LineSeries::new(fund.iter().copied(), BLACK.stroke_width(2)))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::margin::Money;

    #[test]
    fn draws_the_path_markers_and_fund() {
        let buckets: Vec<Bucket> = (0..50)
            .map(|k| Bucket {
                ts_ns: 1_760_054_400_000_000_000 + k * 60_000_000_000,
                low_px: 10_000 - (k as i64) * 10,
                high_px: 10_050 - (k as i64) * 10,
                close_px: 10_020 - (k as i64) * 10,
                sells: u64::from(k % 10 == 3),
                buys: u64::from(k == 40),
                fund: Money::from_int(1_000 + k as i64),
                ticks: 4,
            })
            .collect();
        let svg = svg(&buckets, "BTCUSDT", 2, "backtest BTCUSDT").unwrap();
        assert!(svg.starts_with("<svg"));
        for needle in [
            "BTCUSDT mark",
            "insurance fund",
            "liquidations of longs",
            "00:00",
            "<polyline",
        ] {
            assert!(svg.contains(needle), "{needle} missing");
        }
        assert!(matches!(svg_empty(), Err(PlotError::Empty)));
    }

    fn svg_empty() -> Result<String, PlotError> {
        svg(&[], "X", 2, "t")
    }
}
