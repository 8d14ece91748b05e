//! `--watch`: which changes are worth a line. A report's status is rewritten
//! when its score moves or a minute has passed, and its age changes every
//! second; a line is printed only when a column a reader acts on changed.
//! Pure: the main file feeds it the rows as objects arrive.

use std::collections::BTreeMap;

/// The rows last printed, by `namespace/name`.
#[derive(Debug, Default)]
pub struct Seen {
    rows: BTreeMap<String, Vec<String>>,
}

impl Seen {
    /// Whether `row` for `key` differs from the last one printed, leaving out
    /// the `volatile` columns (an age); remembers it either way.
    pub fn changed(&mut self, key: &str, row: &[String], volatile: &[usize]) -> bool {
        let steady = |row: &[String]| -> Vec<String> {
            row.iter()
                .enumerate()
                .filter(|(i, _)| !volatile.contains(i))
                .map(|(_, cell)| cell.clone())
                .collect()
        };
        let changed = self
            .rows
            .get(key)
            .is_none_or(|last| steady(last) != steady(row));
        self.rows.insert(key.to_owned(), row.to_vec());
        changed
    }

    /// Forgets `key` (deleted); whether it had been printed.
    pub fn forget(&mut self, key: &str) -> bool {
        self.rows.remove(key).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(state: &str, age: &str) -> Vec<String> {
        vec!["tax-latency-p99-1".into(), state.into(), age.into()]
    }

    #[test]
    fn a_new_row_and_a_new_state_are_printed_an_older_age_is_not() {
        let mut seen = Seen::default();
        assert!(seen.changed("shop/r", &row("Open", "5s"), &[2]));
        assert!(!seen.changed("shop/r", &row("Open", "9s"), &[2]));
        assert!(seen.changed("shop/r", &row("Resolved", "12s"), &[2]));
        assert!(seen.changed("shop/other", &row("Resolved", "12s"), &[2]));
        assert!(seen.forget("shop/r"));
        assert!(!seen.forget("shop/r"));
        assert!(seen.changed("shop/r", &row("Resolved", "12s"), &[2]));
    }
}
