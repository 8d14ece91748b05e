//! A report's signal against its baseline band, as an SVG drawn on the
//! server (no script, nothing fetched): the band as a shaded area, the value
//! as a line, and a vertical marker for each thing that happened — opened,
//! each action done, each restore, resolved — labelled.

use std::fmt::Write as _;

use homeostat_oncall::history::Point;

use super::html::escape;

const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 296.0;
const LEFT: f64 = 60.0;
const RIGHT: f64 = 16.0;
/// Above the plot: a lane of three rows for the markers' labels.
const TOP: f64 = 52.0;
const LABEL_ROW: f64 = 13.0;
const BOTTOM: f64 = 40.0;

/// Something that happened at a time, drawn as a labelled marker.
#[derive(Debug, Clone, PartialEq)]
pub struct Marker {
    pub at: i64,
    pub label: String,
    pub kind: MarkerKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkerKind {
    Opened,
    Action,
    Restore,
    Resolved,
}

impl MarkerKind {
    fn class(self) -> &'static str {
        match self {
            MarkerKind::Opened => "opened",
            MarkerKind::Action => "action",
            MarkerKind::Restore => "restore",
            MarkerKind::Resolved => "resolved",
        }
    }

    fn colour(self) -> &'static str {
        match self {
            MarkerKind::Opened => "#b42318",
            MarkerKind::Action => "#b54708",
            MarkerKind::Restore => "#475467",
            MarkerKind::Resolved => "#067647",
        }
    }
}

/// The SVG, or `None` when there is nothing to draw.
pub fn svg(points: &[Point], markers: &[Marker], unit: &str) -> Option<String> {
    let first = points.first()?.at;
    let last = points.last()?.at.max(first + 1);
    let (from, to) = markers
        .iter()
        .fold((first, last), |(lo, hi), m| (lo.min(m.at), hi.max(m.at)));
    let values = points.iter().flat_map(|p| {
        [p.observed]
            .into_iter()
            .chain(p.band.into_iter().flat_map(|(l, u)| [l, u]))
    });
    let (low, high) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    let (low, high) = (
        low.min(0.0),
        if high > low { high * 1.1 } else { low + 1.0 },
    );
    let x = |t: i64| LEFT + (t - from) as f64 / (to - from).max(1) as f64 * (WIDTH - LEFT - RIGHT);
    let y = |v: f64| TOP + (1.0 - (v - low) / (high - low)) * (HEIGHT - TOP - BOTTOM);
    let mut out = format!(
        r#"<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="the signal against its baseline band">"#
    );
    // The band: upper edge left to right, lower edge back.
    let banded: Vec<(i64, f64, f64)> = points
        .iter()
        .filter_map(|p| p.band.map(|(l, u)| (p.at, l, u)))
        .collect();
    if !banded.is_empty() {
        let mut path = String::new();
        for (i, (t, _, u)) in banded.iter().enumerate() {
            let _ = write!(
                path,
                "{}{:.1},{:.1} ",
                if i == 0 { "M" } else { "L" },
                x(*t),
                y(*u)
            );
        }
        for (t, l, _) in banded.iter().rev() {
            let _ = write!(path, "L{:.1},{:.1} ", x(*t), y(*l));
        }
        let _ = write!(
            out,
            r##"<path class="band" d="{path}Z" fill="#d1e9ff" stroke="none"><title>baseline band</title></path>"##
        );
    }
    let line: Vec<String> = points
        .iter()
        .map(|p| format!("{:.1},{:.1}", x(p.at), y(p.observed)))
        .collect();
    let _ = write!(
        out,
        r##"<polyline class="observed" points="{}" fill="none" stroke="#1d2330" stroke-width="1.5"/>"##,
        line.join(" ")
    );
    for (i, m) in markers.iter().enumerate() {
        let mx = x(m.at);
        let colour = m.kind.colour();
        // Labels take turns in the lane above the plot, so that neither
        // neighbours nor the line hide them; near the right edge they end
        // at their marker instead of running off the chart.
        let ly = 12.0 + (i % 3) as f64 * LABEL_ROW;
        let (tx, anchor) = if mx > WIDTH * 0.7 {
            (mx - 3.0, "end")
        } else {
            (mx + 3.0, "start")
        };
        let _ = write!(
            out,
            r#"<g class="marker {class}"><line x1="{mx:.1}" y1="{line_top:.1}" x2="{mx:.1}" y2="{bottom:.1}" stroke="{colour}" stroke-dasharray="4 3"/><text x="{tx:.1}" y="{ly:.1}" font-size="11" fill="{colour}" text-anchor="{anchor}">{label}</text></g>"#,
            class = m.kind.class(),
            bottom = HEIGHT - BOTTOM,
            line_top = ly + 3.0,
            label = escape(&m.label),
        );
    }
    // Axes: the value range on the left, the time range below.
    let clock = |t: i64| {
        jiff::Timestamp::from_second(t)
            .map_or_else(|_| "?".to_owned(), |t| t.strftime("%H:%M:%S").to_string())
    };
    let _ = write!(
        out,
        r##"<text x="4" y="{unit_y:.1}" font-size="11" fill="#4a5468">{unit}</text><text x="4" y="{top:.1}" font-size="11" fill="#4a5468">{high:.4}</text><text x="4" y="{bottom:.1}" font-size="11" fill="#4a5468">{low:.4}</text><text x="{LEFT}" y="{time_y:.1}" font-size="11" fill="#4a5468">{start}</text><text x="{end_x:.1}" y="{time_y:.1}" font-size="11" fill="#4a5468" text-anchor="end">{end} UTC</text></svg>"##,
        top = TOP + 10.0,
        unit_y = TOP - 4.0,
        bottom = HEIGHT - BOTTOM,
        time_y = HEIGHT - BOTTOM + 18.0,
        end_x = WIDTH - RIGHT,
        start = clock(from),
        end = clock(to),
        unit = escape(unit),
    );
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn points() -> Vec<Point> {
        (0..10)
            .map(|i| Point {
                at: 1_000 + i * 10,
                observed: if (3..6).contains(&i) { 0.4 } else { 0.02 },
                band: Some((0.01, 0.05)),
            })
            .collect()
    }

    #[test]
    fn draws_the_band_the_line_and_a_labelled_marker_for_each_event() {
        let markers = [
            Marker {
                at: 1_030,
                label: "opened".into(),
                kind: MarkerKind::Opened,
            },
            Marker {
                at: 1_045,
                label: "scale <tax> 2→3".into(),
                kind: MarkerKind::Action,
            },
            Marker {
                at: 1_090,
                label: "resolved".into(),
                kind: MarkerKind::Resolved,
            },
        ];
        let svg = svg(&points(), &markers, "s").expect("drawn");
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains(r#"class="band""#) && svg.contains(r#"class="observed""#));
        assert_eq!(svg.matches(r#"<g class="marker"#).count(), 3);
        assert!(svg.contains("marker action") && svg.contains("scale &lt;tax&gt; 2→3"));
        assert!(!svg.contains("<tax>"), "labels are escaped");
        // Ten points on the line.
        let line = svg.split(r#"points=""#).nth(1).expect("line");
        assert_eq!(
            line.split('"').next().expect("points").split(' ').count(),
            10
        );
    }

    #[test]
    fn nothing_to_draw_without_points() {
        assert_eq!(svg(&[], &[], "s"), None);
    }
}
