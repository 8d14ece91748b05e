//! Order statistics on plain slices: quantiles, median and MAD.

/// The `q`-quantile of `values` with linear interpolation between order
/// statistics (numpy's default), or `None` for an empty slice. Reorders
/// `values` in place instead of sorting: O(n) on average.
pub fn quantile_in_place(values: &mut [f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let q = q.clamp(0.0, 1.0);
    let position = q * (values.len() - 1) as f64;
    let below = position.floor() as usize;
    let fraction = position - below as f64;
    let (_, &mut low, upper) = values.select_nth_unstable_by(below, f64::total_cmp);
    if fraction == 0.0 || upper.is_empty() {
        return Some(low);
    }
    // The next order statistic is the smallest of the upper part.
    let high = upper.iter().copied().fold(f64::INFINITY, f64::min);
    Some(low + fraction * (high - low))
}

/// Median and median absolute deviation of `values` (scratch space is
/// allocated once; `values` is not changed).
pub fn median_mad(values: &[f64]) -> Option<(f64, f64)> {
    let mut scratch = values.to_vec();
    let median = quantile_in_place(&mut scratch, 0.5)?;
    for (d, v) in scratch.iter_mut().zip(values) {
        *d = (v - median).abs();
    }
    let mad = quantile_in_place(&mut scratch, 0.5)?;
    Some((median, mad))
}

/// Scale of a normal distribution from its MAD.
pub const MAD_TO_SIGMA: f64 = 1.4826;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_like_numpy() {
        let mut v = vec![4.0, 1.0, 3.0, 2.0];
        assert_eq!(quantile_in_place(&mut v, 0.5), Some(2.5));
        assert_eq!(quantile_in_place(&mut v, 0.0), Some(1.0));
        assert_eq!(quantile_in_place(&mut v, 1.0), Some(4.0));
        let q = quantile_in_place(&mut v, 0.995).expect("quantile");
        assert!((q - 3.985).abs() < 1e-12, "{q}");
        assert_eq!(quantile_in_place(&mut [], 0.5), None);
    }

    #[test]
    fn median_and_mad_ignore_a_single_outlier() {
        let (median, mad) = median_mad(&[1.0, 2.0, 3.0, 4.0, 1000.0]).expect("stats");
        assert_eq!(median, 3.0);
        assert_eq!(mad, 1.0);
    }
}
