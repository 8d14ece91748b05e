//! Rolling median and median absolute deviation over a fixed window.

use std::collections::VecDeque;

/// The last `capacity` values, with their median and MAD on demand.
#[derive(Debug, Clone)]
pub struct RobustWindow {
    values: VecDeque<f64>,
    sorted: Vec<f64>,
    capacity: usize,
}

impl RobustWindow {
    pub fn new(capacity: usize) -> Self {
        Self {
            values: VecDeque::with_capacity(capacity),
            sorted: Vec::with_capacity(capacity),
            capacity: capacity.max(1),
        }
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Adds a value, dropping the oldest when full. Non-finite values are ignored.
    pub fn push(&mut self, value: f64) {
        if !value.is_finite() {
            return;
        }
        if self.values.len() == self.capacity
            && let Some(old) = self.values.pop_front()
        {
            let at = self.sorted.partition_point(|v| *v < old);
            self.sorted.remove(at);
        }
        self.values.push_back(value);
        let at = self.sorted.partition_point(|v| *v < value);
        self.sorted.insert(at, value);
    }

    pub fn median(&self) -> Option<f64> {
        quantile_sorted(&self.sorted, 0.5)
    }

    /// Median absolute deviation from the median.
    pub fn mad(&self) -> Option<f64> {
        let median = self.median()?;
        let mut deviations: Vec<f64> = self.sorted.iter().map(|v| (v - median).abs()).collect();
        deviations.sort_by(f64::total_cmp);
        quantile_sorted(&deviations, 0.5)
    }

    /// The `q` quantile of the window.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        quantile_sorted(&self.sorted, q)
    }
}

/// Linear-interpolated quantile of sorted values.
fn quantile_sorted(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let position = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let below = position.floor() as usize;
    let above = position.ceil() as usize;
    let fraction = position - below as f64;
    Some(sorted[below] + (sorted[above] - sorted[below]) * fraction)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_mad_follow_the_window() {
        let mut w = RobustWindow::new(5);
        for v in [1.0, 2.0, 3.0, 4.0, 100.0] {
            w.push(v);
        }
        assert_eq!(w.median(), Some(3.0));
        // deviations 2,1,0,1,97 → median 1: the outlier does not widen the spread.
        assert_eq!(w.mad(), Some(1.0));
        for v in [5.0, 6.0, 7.0] {
            w.push(v);
        }
        // window is now 4, 100, 5, 6, 7
        assert_eq!(w.median(), Some(6.0));
        assert_eq!(w.len(), 5);
    }

    #[test]
    fn non_finite_values_are_ignored() {
        let mut w = RobustWindow::new(3);
        w.push(f64::NAN);
        w.push(f64::INFINITY);
        assert!(w.is_empty());
        assert_eq!(w.median(), None);
    }
}
