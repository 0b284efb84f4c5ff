//! The HTML report of `strata bench index`: one self-contained page (no scripts, no external
//! files) with the run's parameters, the result table, and horizontal bar charts drawn as inline
//! SVG, one per measurement. A chart whose values span more than two orders of magnitude (a
//! full scan next to an index lookup) uses a logarithmic axis and says so in its title.

use std::fmt::Write as _;

use super::{number, table_rows, CaseResult, RunInfo, Strategy, SELECTIVITIES};

/// Colours of the series within a chart, and of the strategies in the table header.
const SERIES_COLOURS: [&str; 3] = ["#4c78a8", "#f58518", "#54a24b"];

fn strategy_colour(s: Strategy) -> &'static str {
    match s {
        Strategy::None => "#9d9d9d",
        Strategy::Dense => "#4c78a8",
        Strategy::Sparse => "#54a24b",
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// One chart: a group of bars per case, one bar per series.
struct Chart<'a> {
    title: &'a str,
    unit: &'a str,
    /// Note under the title: which way is better, what is counted.
    note: &'a str,
    series: &'a [&'a str],
    /// Per case: its label and one value per series.
    groups: Vec<(String, Vec<f64>)>,
}

const WIDTH: f64 = 760.0;
const LABEL_WIDTH: f64 = 150.0;
const VALUE_WIDTH: f64 = 110.0;
const BAR_HEIGHT: f64 = 16.0;
const BAR_GAP: f64 = 3.0;
const GROUP_GAP: f64 = 14.0;
const TOP: f64 = 24.0;
const AXIS_HEIGHT: f64 = 22.0;

/// Maps values to x positions along the bar area.
enum Scale {
    Linear { max: f64, step: f64 },
    Log { lo: f64, hi: f64 },
}

impl Scale {
    fn for_values(values: &[f64]) -> Scale {
        let max = values.iter().copied().fold(0.0, f64::max);
        let min_positive = values
            .iter()
            .copied()
            .filter(|v| *v > 0.0)
            .fold(f64::INFINITY, f64::min);
        if max > 0.0 && min_positive.is_finite() && max / min_positive > 100.0 {
            let lo = min_positive.log10().floor();
            let hi = max.log10().ceil().max(lo + 1.0);
            Scale::Log { lo, hi }
        } else if max > 0.0 {
            // Round the axis up to a whole number of steps of 1, 2 or 5 times a power of ten.
            let step = nice_step(max / 4.0);
            Scale::Linear {
                max: (max / step).ceil() * step,
                step,
            }
        } else {
            Scale::Linear {
                max: 1.0,
                step: 0.25,
            }
        }
    }

    /// Fraction of the bar area for `v`, in [0, 1].
    fn fraction(&self, v: f64) -> f64 {
        match self {
            Scale::Linear { max, .. } => (v / max).clamp(0.0, 1.0),
            Scale::Log { lo, hi } => {
                if v <= 0.0 {
                    0.0
                } else {
                    ((v.log10() - lo) / (hi - lo)).clamp(0.0, 1.0)
                }
            }
        }
    }

    /// Gridline values with their labels.
    fn ticks(&self) -> Vec<(f64, String)> {
        match self {
            Scale::Linear { max, step } => {
                let steps = (max / step).round() as u32;
                (0..=steps)
                    .map(|i| {
                        let v = step * i as f64;
                        (v, number(v))
                    })
                    .collect()
            }
            Scale::Log { lo, hi } => {
                let (lo, hi) = (*lo as i32, *hi as i32);
                (lo..=hi)
                    .map(|e| {
                        let v = 10f64.powi(e);
                        (v, number(v))
                    })
                    .collect()
            }
        }
    }
}

/// The smallest of 1, 2 or 5 times a power of ten that is at least `x` (> 0).
fn nice_step(x: f64) -> f64 {
    let power = 10f64.powf(x.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|s| *s >= x * (1.0 - 1e-9))
        .unwrap_or(10.0 * power)
}

impl Chart<'_> {
    fn svg(&self) -> String {
        let values: Vec<f64> = self
            .groups
            .iter()
            .flat_map(|(_, v)| v.iter().copied())
            .collect();
        let scale = Scale::for_values(&values);
        let log = matches!(scale, Scale::Log { .. });
        let bars = self.series.len() as f64;
        let group_height = bars * BAR_HEIGHT + (bars - 1.0) * BAR_GAP;
        let legend_height = if self.series.len() > 1 { 20.0 } else { 0.0 };
        let plot_top = TOP + legend_height;
        let plot_height = self.groups.len() as f64 * (group_height + GROUP_GAP);
        let height = plot_top + plot_height + AXIS_HEIGHT;
        let area = WIDTH - LABEL_WIDTH - VALUE_WIDTH;
        let mut s = String::new();
        let _ = write!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">"#
        );
        let title = format!(
            "{} ({}{})",
            self.title,
            self.unit,
            if log { ", log scale" } else { "" }
        );
        let _ = write!(
            s,
            r#"<text x="0" y="15" font-size="14" font-weight="bold">{}</text>"#,
            escape(&title)
        );
        if self.series.len() > 1 {
            let mut x = LABEL_WIDTH;
            for (i, name) in self.series.iter().enumerate() {
                let colour = SERIES_COLOURS[i % SERIES_COLOURS.len()];
                let _ = write!(
                    s,
                    r#"<rect x="{x}" y="{}" width="12" height="12" fill="{colour}"/><text x="{}" y="{}">{}</text>"#,
                    TOP + 2.0,
                    x + 16.0,
                    TOP + 12.0,
                    escape(name)
                );
                x += 30.0 + 7.0 * name.len() as f64;
            }
        }
        for (v, label) in scale.ticks() {
            let x = LABEL_WIDTH + scale.fraction(v) * area;
            let _ = write!(
                s,
                r##"<line x1="{x:.1}" y1="{plot_top}" x2="{x:.1}" y2="{:.1}" stroke="#ddd"/><text x="{x:.1}" y="{:.1}" text-anchor="middle" fill="#555">{}</text>"##,
                plot_top + plot_height,
                plot_top + plot_height + 15.0,
                escape(&label)
            );
        }
        for (g, (label, group)) in self.groups.iter().enumerate() {
            let y0 = plot_top + g as f64 * (group_height + GROUP_GAP) + GROUP_GAP / 2.0;
            let _ = write!(
                s,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
                LABEL_WIDTH - 8.0,
                y0 + group_height / 2.0 + 4.0,
                escape(label)
            );
            for (i, v) in group.iter().enumerate() {
                let y = y0 + i as f64 * (BAR_HEIGHT + BAR_GAP);
                let w = scale.fraction(*v) * area;
                let colour = SERIES_COLOURS[i % SERIES_COLOURS.len()];
                let _ = write!(
                    s,
                    r#"<rect x="{LABEL_WIDTH}" y="{y:.1}" width="{w:.1}" height="{BAR_HEIGHT}" fill="{colour}"><title>{}: {}</title></rect><text x="{:.1}" y="{:.1}">{}</text>"#,
                    escape(&format!("{label}, {}", self.series[i])),
                    escape(&number(*v)),
                    LABEL_WIDTH + w + 4.0,
                    y + BAR_HEIGHT - 4.0,
                    escape(&number(*v))
                );
            }
        }
        s.push_str("</svg>");
        s
    }
}

/// The whole report page.
pub fn render(info: &RunInfo, results: &[CaseResult]) -> String {
    let labels: Vec<String> = results.iter().map(|r| r.case.label()).collect();
    let groups = |f: &dyn Fn(&CaseResult) -> Vec<f64>| -> Vec<(String, Vec<f64>)> {
        labels.iter().cloned().zip(results.iter().map(f)).collect()
    };
    let range_series: Vec<String> = SELECTIVITIES
        .iter()
        .map(|s| format!("{}% of rows", s * 100.0))
        .collect();
    let range_names: Vec<&str> = range_series.iter().map(String::as_str).collect();
    let rows = info.rows;
    let charts = [
        Chart {
            title: "Index size per row",
            unit: "bytes",
            note: "Pages of the index's B+tree times the page size, divided by the rows. Lower is better.",
            series: &["index"],
            groups: groups(&|r| vec![r.index_bytes_per_row(rows)]),
        },
        Chart {
            title: "Index build",
            unit: "ms",
            note: "CREATE INDEX on the loaded table. Lower is better.",
            series: &["build"],
            groups: groups(&|r| vec![r.build_ms]),
        },
        Chart {
            title: "Insert throughput with the index maintained",
            unit: "rows/s",
            note: "Single-row INSERTs, 100 per transaction. Higher is better.",
            series: &["inserts"],
            groups: groups(&|r| vec![r.insert_rows_per_s]),
        },
        Chart {
            title: "Point lookup latency",
            unit: "µs",
            note: "SELECT ... WHERE k = $1, one row each. Lower is better.",
            series: &["p50", "p99"],
            groups: groups(&|r| vec![r.point_p50_us, r.point_p99_us]),
        },
        Chart {
            title: "Pages touched per point lookup",
            unit: "pages",
            note: "Every page a lookup touched: buffer-pool hits + device reads (misses and overflow pages). Lower is better.",
            series: &["pages"],
            groups: groups(&|r| vec![r.pages_per_lookup]),
        },
        Chart {
            title: "Range scan",
            unit: "ms per scan",
            note: "SELECT count(*) ... WHERE k >= $1 AND k < $2. Lower is better.",
            series: &range_names,
            groups: groups(&|r| r.range_ms.to_vec()),
        },
        Chart {
            title: "Update and delete, one row per transaction",
            unit: "µs",
            note: "UPDATE bench SET k = k + 1 WHERE id = $1; DELETE ... WHERE id = $1. Lower is better.",
            series: &["update", "delete"],
            groups: groups(&|r| vec![r.update_us, r.delete_us]),
        },
    ];

    let mut h = String::new();
    h.push_str(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>strata bench index</title>\n<style>\n\
         body { font-family: sans-serif; max-width: 820px; margin: 2em auto; color: #222; }\n\
         table { border-collapse: collapse; font-size: 13px; }\n\
         th, td { padding: 3px 10px; border-bottom: 1px solid #e4e4e4; }\n\
         td { text-align: right; font-variant-numeric: tabular-nums; }\n\
         td:first-child, th:first-child { text-align: left; }\n\
         .note { color: #555; font-size: 13px; margin: 2px 0 6px; }\n\
         figure { margin: 1.8em 0; }\n\
         </style>\n</head>\n<body>\n",
    );
    let _ = writeln!(h, "<h1>strata bench index</h1>");
    let _ = writeln!(
        h,
        "<p>Dense vs sparse vs no index on the non-key column <code>k</code> of \
         <code>bench (id BIGINT PRIMARY KEY, k BIGINT NOT NULL, payload TEXT)</code>: \
         {} rows, {}-byte payloads, {} keys for lookups, updates and deletes; {} KiB pages, \
         {} MiB buffer pool, {} cores; the load ran with sync off, every measured phase with \
         sync normal (log written to the OS, not fsynced). Whole run: {:.1} s.</p>",
        number(info.rows as f64),
        info.value_size,
        info.distribution.name(),
        info.page_size / 1024,
        info.cache_bytes >> 20,
        info.cores,
        info.wall.as_secs_f64()
    );
    let _ = writeln!(
        h,
        "<p>Every number comes from SQL run through Strata's planner and engine. The ordered \
         cases have <code>k = id</code>; the shuffled one a pseudo-random permutation of it. \
         EXPLAIN confirmed each case's access path before it was measured (the \"path\" rows); \
         the \"after ANALYZE\" rows show what the planner picks once it has statistics.</p>"
    );
    h.push_str("<table>\n<tr><th></th>");
    for r in results {
        let _ = write!(
            h,
            "<th style=\"color: {}\">{}<br>{}</th>",
            strategy_colour(r.case.strategy),
            r.case.strategy.name(),
            if r.case.ordered {
                "ordered"
            } else {
                "shuffled"
            }
        );
    }
    h.push_str("</tr>\n");
    for (label, cells) in table_rows(results, info) {
        let _ = write!(h, "<tr><td>{}</td>", escape(&label));
        for c in cells {
            let _ = write!(h, "<td>{}</td>", escape(&c));
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</table>\n");
    for chart in &charts {
        let _ = writeln!(
            h,
            "<figure>\n{}\n<figcaption class=\"note\">{}</figcaption>\n</figure>",
            chart.svg(),
            escape(chart.note)
        );
    }
    h.push_str("</body>\n</html>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales() {
        let linear = Scale::for_values(&[1.0, 50.0]);
        assert!(matches!(linear, Scale::Linear { .. }));
        // 50 / 4 = 12.5 rounds up to steps of 20: an axis 0, 20, 40, 60.
        assert!(matches!(linear, Scale::Linear { max, step } if max == 60.0 && step == 20.0));
        assert_eq!(linear.fraction(30.0), 0.5);
        assert_eq!(linear.ticks().len(), 4);
        assert_eq!(nice_step(0.3), 0.5);
        assert_eq!(nice_step(1.0), 1.0);
        assert_eq!(nice_step(12.0), 20.0);
        let log = Scale::for_values(&[2.0, 20_000.0, 0.0]);
        assert!(matches!(log, Scale::Log { .. }));
        assert_eq!(log.fraction(0.0), 0.0);
        assert!(log.fraction(200.0) > 0.4 && log.fraction(200.0) < 0.6);
        assert!(matches!(Scale::for_values(&[0.0]), Scale::Linear { max, .. } if max == 1.0));
    }

    #[test]
    fn chart_is_svg_with_one_bar_per_value() {
        let chart = Chart {
            title: "T <1>",
            unit: "ms",
            note: "",
            series: &["a", "b"],
            groups: vec![("x".into(), vec![1.0, 2.0]), ("y".into(), vec![3.0, 0.0])],
        };
        let svg = chart.svg();
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.ends_with("</svg>"));
        assert!(svg.contains("T &lt;1&gt;"));
        assert_eq!(svg.matches("<title>").count(), 4);
    }
}
