//! Deterministic test signals shared by the model's unit tests.

/// Pseudo-noise in [-1, 1], the same for the same `i` on every run.
pub fn noise(i: usize) -> f64 {
    let x = (i as f64 * 12.9898).sin() * 43_758.545_3;
    2.0 * (x - x.floor()) - 1.0
}
