//! The HTML report: one self-contained page (inline SVG, no scripts) with a
//! summary, the timeline and the charts.

use std::collections::BTreeMap;
use std::fmt::Write;

use jiff::Timestamp;

use crate::outcome::Outcome;
use crate::series::{Points, ServiceSeries};

/// A vertical line on every chart.
#[derive(Debug, Clone)]
pub struct Marker {
    pub at: Timestamp,
    pub label: String,
    pub color: &'static str,
}

fn marker(at: Timestamp, label: String, color: &'static str) -> Marker {
    Marker { at, label, color }
}

pub fn markers(outcome: &Outcome) -> Vec<Marker> {
    const FAULT: &str = "#d62728";
    let mut out = Vec::new();
    for f in &outcome.faults {
        out.push(marker(f.started_at, format!("fault {}", f.service), FAULT));
        if let Some(end) = f.ended_at {
            out.push(marker(end, format!("fault {} over", f.service), FAULT));
        }
    }
    for r in &outcome.reports {
        out.push(marker(
            r.opened_at,
            format!("report {}", r.culprit),
            "#ff7f0e",
        ));
        if let Some(at) = r.resolved_at {
            out.push(marker(at, format!("resolved {}", r.culprit), "#2ca02c"));
        }
    }
    for a in &outcome.actions {
        let label = match (&a.blocked_by, a.dry_run) {
            (Some(g), _) => format!("{} blocked ({g})", a.kind),
            (None, true) => format!("{} (dry run)", a.kind),
            (None, false) => format!("{} {}", a.kind, short(&a.to)),
        };
        out.push(marker(a.at, label, "#1f77b4"));
        if let Some(at) = a.restored_at {
            out.push(marker(at, format!("restored ({})", a.kind), "#9467bd"));
        }
    }
    out
}

/// `payment-primary=50, payment-secondary=50` as `50/50`; replicas as they are.
fn short(change: &str) -> String {
    change
        .split(", ")
        .map(|part| part.rsplit_once('=').map_or(part, |(_, v)| v))
        .collect::<Vec<_>>()
        .join("/")
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const W: f64 = 900.0;
const H: f64 = 220.0;
const LEFT: f64 = 60.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 20.0;
const BOTTOM: f64 = 30.0;

/// The y axis: linear from 0, or logarithmic (latency spans 1 ms to 1 s).
#[derive(Clone, Copy)]
enum Axis {
    Linear { max: f64 },
    Log { min: f64, max: f64 },
}

impl Axis {
    /// Position in [0, 1]; `None` for a value a log axis cannot show.
    fn fraction(self, v: f64) -> Option<f64> {
        match self {
            Axis::Linear { max } => Some(v / max.max(1e-12)),
            Axis::Log { min, max } => (v > 0.0).then(|| {
                ((v.log10() - min.log10()) / (max.log10() - min.log10()).max(1e-12)).max(0.0)
            }),
        }
    }

    fn ticks(self) -> Vec<f64> {
        match self {
            Axis::Linear { max } => (0..=4).map(|i| max * f64::from(i) / 4.0).collect(),
            Axis::Log { min, max } => {
                let mut t = 10f64.powf(min.log10().ceil());
                let mut out = Vec::new();
                while t <= max {
                    out.push(t);
                    t *= 10.0;
                }
                out
            }
        }
    }
}

struct Frame {
    x0: f64,
    x1: f64,
    axis: Axis,
}

impl Frame {
    fn x(&self, t: f64) -> f64 {
        LEFT + (t - self.x0) / (self.x1 - self.x0).max(1e-9) * (W - LEFT - RIGHT)
    }
    fn y(&self, v: f64) -> Option<f64> {
        let f = self.axis.fraction(v)?;
        Some(H - BOTTOM - f * (H - TOP - BOTTOM))
    }
    fn path(&self, points: &[(f64, f64)], scale: f64) -> String {
        let mut d = String::new();
        let mut last_t = f64::NEG_INFINITY;
        for &(t, v) in points {
            let Some(y) = self.y(v * scale) else { continue };
            // A gap of more than three steps breaks the line.
            let cmd = if t - last_t > 7.0 { 'M' } else { 'L' };
            let _ = write!(d, "{cmd}{:.1},{y:.1} ", self.x(t));
            last_t = t;
        }
        d
    }
}

/// One chart: lines, an optional band, markers; x in seconds from `zero`.
struct Chart<'a> {
    title: String,
    unit: &'a str,
    scale: f64,
    lines: Vec<(&'a str, &'a str, &'a Points)>,
    band: Option<(&'a Points, &'a Points)>,
    threshold: Option<f64>,
    /// Fixed top of a linear axis; otherwise a log axis fitted to the data.
    y_max: Option<f64>,
}

fn render_chart(chart: &Chart, zero: f64, end: f64, start: f64, markers: &[Marker]) -> String {
    let axis = match chart.y_max {
        Some(max) => Axis::Linear { max },
        None => {
            let values = chart
                .lines
                .iter()
                .flat_map(|(_, _, p)| p.iter())
                .chain(
                    chart
                        .band
                        .iter()
                        .flat_map(|(l, u)| l.iter().chain(u.iter())),
                )
                .map(|(_, v)| v * chart.scale)
                .filter(|v| *v > 0.0);
            let (min, max) = values.fold((f64::INFINITY, 0.0f64), |(lo, hi), v| {
                (lo.min(v), hi.max(v))
            });
            if max > 0.0 {
                Axis::Log {
                    min: min * 0.8,
                    max: max * 1.25,
                }
            } else {
                Axis::Linear { max: 1.0 }
            }
        }
    };
    let frame = Frame {
        x0: start - zero,
        x1: end - zero,
        axis,
    };
    let rel = |p: &Points| -> Points { p.iter().map(|(t, v)| (t - zero, *v)).collect() };
    let mut svg = format!(
        r#"<figure><figcaption>{}</figcaption><svg viewBox="0 0 {W} {H}" width="100%" role="img">"#,
        escape(&chart.title)
    );
    // Axes and ticks.
    let _ = write!(
        svg,
        r##"<line x1="{LEFT}" y1="{}" x2="{}" y2="{}" stroke="#999"/>"##,
        H - BOTTOM,
        W - RIGHT,
        H - BOTTOM
    );
    let _ = write!(
        svg,
        r##"<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{}" stroke="#999"/>"##,
        H - BOTTOM
    );
    for v in axis.ticks() {
        let Some(y) = frame.y(v) else { continue };
        let _ = write!(
            svg,
            r##"<text x="{}" y="{:.1}" font-size="10" text-anchor="end">{v}</text><line x1="{LEFT}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#eee"/>"##,
            LEFT - 4.0,
            y + 3.0,
            W - RIGHT
        );
    }
    let span = frame.x1 - frame.x0;
    let tick = [10.0, 30.0, 60.0, 120.0, 300.0, 600.0]
        .into_iter()
        .find(|s| span / s <= 12.0)
        .unwrap_or(1200.0);
    let mut t = (frame.x0 / tick).ceil() * tick;
    while t <= frame.x1 {
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{}" font-size="10" text-anchor="middle">{t:+.0}s</text>"#,
            frame.x(t),
            H - BOTTOM + 14.0
        );
        t += tick;
    }
    let _ = write!(
        svg,
        r#"<text x="4" y="{TOP}" font-size="10">{}</text>"#,
        escape(chart.unit)
    );
    if let Some((lower, upper)) = chart.band {
        let (lower, upper) = (rel(lower), rel(upper));
        if !upper.is_empty() {
            let mut d = frame.path(&upper, chart.scale);
            for &(t, v) in lower.iter().rev() {
                if let Some(y) = frame.y(v * chart.scale) {
                    let _ = write!(d, "L{:.1},{y:.1} ", frame.x(t));
                }
            }
            let _ = write!(
                svg,
                r##"<path d="{d}Z" fill="#2ca02c" fill-opacity="0.15" stroke="none"><title>detector baseline band</title></path>"##
            );
        }
    }
    if let Some(th) = chart.threshold
        && let Some(y) = frame.y(th)
    {
        let _ = write!(
            svg,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#d62728" stroke-dasharray="4 3"><title>report threshold</title></line>"##,
            W - RIGHT
        );
    }
    for (label, color, points) in &chart.lines {
        let d = frame.path(&rel(points), chart.scale);
        let _ = write!(
            svg,
            r#"<path d="{d}" fill="none" stroke="{color}" stroke-width="1.5"><title>{}</title></path>"#,
            escape(label)
        );
    }
    for (i, m) in markers.iter().enumerate() {
        let t = m.at.as_millisecond() as f64 / 1000.0 - zero;
        if t < frame.x0 || t > frame.x1 {
            continue;
        }
        let x = frame.x(t);
        let _ = write!(
            svg,
            r#"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{}" stroke="{}" stroke-width="1"><title>{}</title></line>"#,
            H - BOTTOM,
            m.color,
            escape(&m.label)
        );
        // Labels right of the line, or left of it in the right half; five
        // rows so that close markers do not overprint.
        let (dx, anchor) = if x > W * 0.6 {
            (-2.0, "end")
        } else {
            (2.0, "start")
        };
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" font-size="9" fill="{}" text-anchor="{anchor}">{}</text>"#,
            x + dx,
            TOP + 10.0 + (i % 5) as f64 * 10.0,
            m.color,
            escape(&m.label)
        );
    }
    svg.push_str("</svg></figure>\n");
    svg
}

const COLORS: [&str; 6] = [
    "#1f77b4", "#d62728", "#ff7f0e", "#9467bd", "#8c564b", "#17becf",
];

fn fmt_seconds(v: Option<f64>) -> String {
    v.map_or("—".to_owned(), |s| format!("{s:.1} s"))
}

/// The whole page.
pub fn render(
    outcome: &Outcome,
    started_at: Timestamp,
    ended_at: Timestamp,
    series: &BTreeMap<String, ServiceSeries>,
    timeline: &[String],
    load_changes: &[(Timestamp, f64)],
    threshold: f64,
) -> String {
    let zero = outcome.warmup_ended_at.as_millisecond() as f64 / 1000.0;
    let start = started_at.as_millisecond() as f64 / 1000.0;
    let end = ended_at.as_millisecond() as f64 / 1000.0;
    let mut marks = markers(outcome);
    for (at, rate) in load_changes {
        marks.push(marker(*at, format!("load {rate}/s"), "#7f7f7f"));
    }
    let mut html = format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>homeostat demo: {name}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:960px;margin:2em auto;color:#222}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}figure{{margin:1em 0}}figcaption{{font-weight:600}}pre{{background:#f6f6f6;padding:1em;overflow-x:auto;font-size:12px}}</style></head><body>
<h1>homeostat demo: {name}</h1>
<p>Warm-up ended {warm}; times on the charts are seconds from then. Fault (red), report opened (orange) and resolved (green), action (blue), restore (purple).</p>
<table><tr><th>time to detect</th><td>{ttd}</td></tr><tr><th>time to remediate</th><td>{ttr}</td></tr><tr><th>time to recover (orders p99 back in band, fault on)</th><td>{rec}</td></tr><tr><th>reports</th><td>{nr}</td></tr><tr><th>actions</th><td>{na}</td></tr><tr><th>false reports / false actions</th><td>{fr} / {fa}</td></tr></table>
"#,
        name = escape(&outcome.scenario),
        warm = outcome.warmup_ended_at,
        ttd = fmt_seconds(outcome.ttd_seconds),
        ttr = fmt_seconds(outcome.ttr_seconds),
        rec = fmt_seconds(outcome.recovery_seconds),
        nr = outcome.reports.len(),
        na = outcome.actions.len(),
        fr = outcome.false_reports,
        fa = outcome.false_actions,
    );
    html.push_str("<h2>p99 latency against the detector's baseline band</h2>\n");
    for (service, s) in series {
        html.push_str(&render_chart(
            &Chart {
                title: format!("{service}: p99 latency"),
                unit: "ms",
                scale: 1000.0,
                lines: vec![("p99", COLORS[0], &s.p99)],
                band: Some((&s.band_lower, &s.band_upper)),
                threshold: None,
                y_max: None,
            },
            zero,
            end,
            start,
            &marks,
        ));
    }
    html.push_str("<h2>Anomaly score (highest over each service's signals)</h2>\n");
    let lines: Vec<(&str, &str, &Points)> = series
        .iter()
        .enumerate()
        .map(|(i, (name, s))| (name.as_str(), COLORS[i % COLORS.len()], &s.score))
        .collect();
    let legend: Vec<String> = lines
        .iter()
        .map(|(n, c, _)| format!(r#"<span style="color:{c}">■ {}</span>"#, escape(n)))
        .collect();
    html.push_str(&render_chart(
        &Chart {
            title: "score".to_owned(),
            unit: "score",
            scale: 1.0,
            lines,
            band: None,
            threshold: Some(threshold),
            y_max: Some(1.0),
        },
        zero,
        end,
        start,
        &marks,
    ));
    let _ = writeln!(html, "<p>{}</p>", legend.join(" "));
    html.push_str("<h2>Timeline</h2>\n<pre>");
    for line in timeline {
        html.push_str(&escape(line));
        html.push('\n');
    }
    html.push_str("</pre>\n<h2>Outcome (JSON)</h2>\n<pre>");
    html.push_str(&escape(
        &serde_json::to_string_pretty(outcome).unwrap_or_default(),
    ));
    html.push_str("</pre></body></html>\n");
    html
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::{FaultRecord, Outcome};
    use crate::scenario::FaultKind;

    #[test]
    fn the_page_has_a_chart_per_service_markers_and_escapes_text() {
        let t = |s: i64| Timestamp::from_second(1_800_000_000 + s).expect("time");
        let outcome = Outcome::compute(
            "payment <latency>",
            t(90),
            vec![FaultRecord {
                service: "payment-primary".into(),
                kind: FaultKind::Latency,
                started_at: t(120),
                ended_at: Some(t(200)),
            }],
            vec![],
            vec![],
            &[],
        );
        let points: Points = (0..100)
            .map(|i| ((1_800_000_000 + i * 2) as f64, 0.01))
            .collect();
        let series = BTreeMap::from([
            (
                "orders".to_owned(),
                ServiceSeries {
                    p99: points.clone(),
                    band_lower: points.clone(),
                    band_upper: points.clone(),
                    score: points.clone(),
                },
            ),
            (
                "payment-primary".to_owned(),
                ServiceSeries {
                    p99: points.clone(),
                    ..Default::default()
                },
            ),
        ]);
        let html = render(
            &outcome,
            t(0),
            t(300),
            &series,
            &["<b>line</b>".to_owned()],
            &[(t(150), 80.0)],
            0.7,
        );
        assert_eq!(
            html.matches("<svg").count(),
            3,
            "two p99 charts and the score chart"
        );
        assert!(html.contains("payment &lt;latency&gt;"));
        assert!(html.contains("&lt;b&gt;line&lt;/b&gt;"));
        assert!(!html.contains("<b>line"));
        assert!(html.contains("fault payment-primary over"));
        assert!(html.contains("detector baseline band"));
        assert!(html.contains("load 80/s"));
    }
}
