//! `timestamp,value` CSV in, `timestamp,value,anomaly_score` out.

use std::io::{BufRead, Write};

use crate::model::{RunningConfig, RunningScorer};

/// `YYYY-MM-DD HH:MM:SS` (NAB) or RFC 3339, as unix seconds.
fn unix_seconds(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(t) = text.parse::<jiff::Timestamp>() {
        return Some(t.as_second());
    }
    let civil: jiff::civil::DateTime = text.replacen(' ', "T", 1).parse().ok()?;
    civil
        .to_zoned(jiff::tz::TimeZone::UTC)
        .ok()
        .map(|z| z.timestamp().as_second())
}

#[derive(Debug, thiserror::Error)]
pub enum CsvError {
    #[error("line {line}: {message}")]
    Parse { line: usize, message: String },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Scores every row of `input` in order with the running detector's
/// per-series path (see `model::running`), learning online from the first
/// row, and writes one output row per input row. A non-numeric value scores 0.
pub fn score_csv(
    input: impl BufRead,
    mut output: impl Write,
    config: RunningConfig,
) -> Result<usize, CsvError> {
    let mut detector = RunningScorer::new(config);
    let mut rows = 0;
    writeln!(output, "timestamp,value,anomaly_score")?;
    for (index, line) in input.lines().enumerate() {
        let line = line?;
        let line = line.trim_end_matches('\r');
        if index == 0 && line.starts_with("timestamp") {
            continue;
        }
        if line.trim().is_empty() {
            continue;
        }
        let (timestamp, value) = line.split_once(',').ok_or_else(|| CsvError::Parse {
            line: index + 1,
            message: format!("expected `timestamp,value`, got {line:?}"),
        })?;
        let parsed = value.trim().parse::<f64>().unwrap_or(f64::NAN);
        let at = unix_seconds(timestamp).ok_or_else(|| CsvError::Parse {
            line: index + 1,
            message: format!("cannot read the time {timestamp:?}"),
        })?;
        let score = detector.update(at, parsed);
        writeln!(output, "{timestamp},{},{score:.9}", value.trim())?;
        rows += 1;
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_one_row_per_input_row_with_scores_in_range() {
        let mut input = String::from("timestamp,value\n");
        for i in 0..300 {
            input.push_str(&format!(
                "2024-01-01 {:02}:{:02}:00,{}\n",
                i / 60,
                i % 60,
                i % 7
            ));
        }
        input.push_str("2024-01-01 05:00:00,not-a-number\n");
        let mut out = Vec::new();
        let rows = score_csv(input.as_bytes(), &mut out, RunningConfig::default()).expect("score");
        assert_eq!(rows, 301);
        let text = String::from_utf8(out).expect("utf-8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "timestamp,value,anomaly_score");
        assert_eq!(lines.len(), 302);
        for line in &lines[1..] {
            let score: f64 = line
                .rsplit(',')
                .next()
                .expect("score")
                .parse()
                .expect("number");
            assert!((0.0..=1.0).contains(&score), "{line}");
        }
    }

    #[test]
    fn a_row_without_a_comma_is_an_error_naming_the_line() {
        let err = score_csv(
            "timestamp,value\nbroken\n".as_bytes(),
            Vec::new(),
            RunningConfig::default(),
        )
        .expect_err("malformed");
        assert!(err.to_string().starts_with("line 2:"), "{err}");
    }
}
