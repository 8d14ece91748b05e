//! A span of time written the way Kubernetes users write them: `90s`, `5m`, `1h30m`.

use std::{borrow::Cow, fmt, str::FromStr, time::Duration as StdDuration};

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The pattern the API server enforces; CEL's `duration()` accepts the same
/// strings. At most six digits a unit, so that every string it lets through
/// parses (a larger number used to be stored and then stop the operator from
/// reading any policy).
pub const DURATION_PATTERN: &str = r"^([0-9]{1,6}(ms|s|m|h))+$";

/// A non-negative duration serialised as a Go-style string such as `30s` or `1h30m`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(pub StdDuration);

impl Duration {
    pub const fn from_secs(secs: u64) -> Self {
        Self(StdDuration::from_secs(secs))
    }

    pub const fn as_std(self) -> StdDuration {
        self.0
    }
}

impl From<StdDuration> for Duration {
    fn from(d: StdDuration) -> Self {
        Self(d)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {input:?}: {reason} (expected forms like 500ms, 30s, 5m, 1h30m)")]
pub struct ParseDurationError {
    input: String,
    reason: &'static str,
}

impl FromStr for Duration {
    type Err = ParseDurationError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let fail = |reason| ParseDurationError {
            input: input.to_owned(),
            reason,
        };
        if input.is_empty() {
            return Err(fail("empty"));
        }
        let mut total = StdDuration::ZERO;
        let mut rest = input;
        while !rest.is_empty() {
            let digits = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            if digits == 0 {
                return Err(fail("a number must come before each unit"));
            }
            let value: u64 = rest[..digits]
                .parse()
                .map_err(|_| fail("number too large"))?;
            rest = &rest[digits..];
            let (unit, len) = if rest.starts_with("ms") {
                (StdDuration::from_millis(1), 2)
            } else if rest.starts_with('s') {
                (StdDuration::from_secs(1), 1)
            } else if rest.starts_with('m') {
                (StdDuration::from_secs(60), 1)
            } else if rest.starts_with('h') {
                (StdDuration::from_secs(3600), 1)
            } else {
                return Err(fail("unknown or missing unit"));
            };
            rest = &rest[len..];
            let part = u32::try_from(value)
                .ok()
                .and_then(|v| unit.checked_mul(v))
                .ok_or_else(|| fail("too large"))?;
            total = total.checked_add(part).ok_or_else(|| fail("too large"))?;
        }
        Ok(Self(total))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms == 0 {
            return f.write_str("0s");
        }
        if !ms.is_multiple_of(1000) {
            return write!(f, "{ms}ms");
        }
        let mut secs = ms / 1000;
        let (h, m) = (secs / 3600, (secs % 3600) / 60);
        secs %= 60;
        if h > 0 {
            write!(f, "{h}h")?;
        }
        if m > 0 {
            write!(f, "{m}m")?;
        }
        if secs > 0 {
            write!(f, "{secs}s")?;
        }
        Ok(())
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = Cow::<'de, str>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Duration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": DURATION_PATTERN,
            "maxLength": 32,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<StdDuration, ParseDurationError> {
        s.parse::<Duration>().map(Duration::as_std)
    }

    #[test]
    fn parses_single_and_compound_units() {
        assert_eq!(parse("500ms"), Ok(StdDuration::from_millis(500)));
        assert_eq!(parse("30s"), Ok(StdDuration::from_secs(30)));
        assert_eq!(parse("5m"), Ok(StdDuration::from_secs(300)));
        assert_eq!(parse("1h30m15s"), Ok(StdDuration::from_secs(5415)));
    }

    #[test]
    fn rejects_malformed_strings_with_the_input_in_the_message() {
        for bad in ["", "5", "m", "5d", "-5s", "1.5s", "5s ", "99999999999h"] {
            let err = parse(bad).expect_err(bad);
            assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn the_largest_strings_the_schema_admits_parse() {
        // Six digits a unit, up to the schema's 32 characters.
        for s in [
            "999999h999999m999999s999999ms",
            "999999h999999h999999h999999h",
        ] {
            assert!(s.len() <= 32);
            assert!(parse(s).is_ok(), "{s}");
        }
    }

    #[test]
    fn display_round_trips() {
        for s in ["0s", "250ms", "45s", "5m", "1h", "1h30m15s"] {
            let d: Duration = s.parse().expect(s);
            assert_eq!(d.to_string(), s);
        }
    }
}
