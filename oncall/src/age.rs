//! How long ago, as kubectl writes it: `42s`, `5m`, `3h`, `2d`.

use jiff::Timestamp;

/// The time from `since` to `now`, in its largest whole unit.
pub fn age(since: Timestamp, now: Timestamp) -> String {
    let s = (now.as_second() - since.as_second()).max(0);
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        7200..=172_799 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}
