//! A joint model of one service's signals: a linfa Gaussian mixture over the
//! vector of their deviations (in spreads from each signal's baseline).
//!
//! Each signal alone can look normal while their combination has never been
//! seen, e.g. latency as high as at peak traffic while traffic is at its
//! trough. The mixture scores how unlikely the whole vector is, compared with
//! the likelihoods of the training vectors themselves.

use linfa::DatasetBase;
use linfa::traits::Fit;
use linfa_clustering::GaussianMixtureModel;
use ndarray::{Array1, Array2, ArrayView1};
use rand::SeedableRng;
use rand_xoshiro::Xoshiro256Plus;

use super::stats::quantile_in_place;

/// Features beyond this many spreads are clipped: the mixture is for shape,
/// the per-signal scores already cover sheer size.
const CLIP: f64 = 50.0;

/// Why a joint model could not be fitted.
#[derive(Debug, thiserror::Error)]
pub enum JointError {
    #[error("{have} complete training vectors, need at least {need}")]
    TooFew { have: usize, need: usize },
    #[error("Gaussian mixture: {0}")]
    Mixture(String),
}

/// A fitted mixture and the likelihoods that were normal in training.
#[derive(Debug, Clone)]
pub struct JointModel {
    components: Vec<Component>,
    /// Median and 1% quantile of the training log-likelihoods.
    typical: f64,
    rare: f64,
}

#[derive(Debug, Clone)]
struct Component {
    log_weight: f64,
    mean: Array1<f64>,
    precision: Array2<f64>,
    /// ln of the Gaussian's normalising constant, with the precision's determinant.
    log_norm: f64,
}

impl JointModel {
    /// Fits `components` Gaussians to the rows of `vectors` (one row per
    /// tick, one column per signal). Rows with a non-finite entry are skipped.
    pub fn fit(vectors: &Array2<f64>, components: usize) -> Result<Self, JointError> {
        let rows: Vec<ArrayView1<f64>> = vectors
            .rows()
            .into_iter()
            .filter(|r| r.iter().all(|v| v.is_finite()))
            .collect();
        let need = 20 * components.max(1) * vectors.ncols().max(1);
        if rows.len() < need {
            return Err(JointError::TooFew {
                have: rows.len(),
                need,
            });
        }
        let mut data = Array2::zeros((rows.len(), vectors.ncols()));
        for (mut target, row) in data.rows_mut().into_iter().zip(&rows) {
            target.assign(&row.mapv(|v| v.clamp(-CLIP, CLIP)));
        }
        let gmm = GaussianMixtureModel::params(components)
            .n_runs(2)
            .tolerance(1e-4)
            // Constant signals (no errors at all) would make a covariance singular.
            .reg_covariance(1e-2)
            .with_rng(Xoshiro256Plus::seed_from_u64(7))
            .fit(&DatasetBase::from(data.clone()))
            .map_err(|e| JointError::Mixture(e.to_string()))?;
        let dims = data.ncols() as f64;
        let components = (0..components)
            .map(|k| {
                let precision = gmm.precisions().index_axis(ndarray::Axis(0), k).to_owned();
                let log_det = log_det_spd(&precision).unwrap_or(f64::NEG_INFINITY);
                Component {
                    log_weight: gmm.weights()[k].max(1e-300).ln(),
                    mean: gmm.means().row(k).to_owned(),
                    precision,
                    log_norm: 0.5 * log_det - 0.5 * dims * (2.0 * std::f64::consts::PI).ln(),
                }
            })
            .collect();
        let mut model = Self {
            components,
            typical: 0.0,
            rare: 0.0,
        };
        let mut training: Vec<f64> = data
            .rows()
            .into_iter()
            .map(|r| model.log_likelihood(r))
            .collect();
        model.typical = quantile_in_place(&mut training, 0.5).unwrap_or(0.0);
        model.rare = quantile_in_place(&mut training, 0.01).unwrap_or(0.0);
        Ok(model)
    }

    /// ln p(vector) under the mixture.
    pub fn log_likelihood(&self, vector: ArrayView1<f64>) -> f64 {
        let x = vector.mapv(|v| v.clamp(-CLIP, CLIP));
        let terms: Vec<f64> = self
            .components
            .iter()
            .map(|c| {
                let d = &x - &c.mean;
                c.log_weight + c.log_norm - 0.5 * d.dot(&c.precision.dot(&d))
            })
            .collect();
        let top = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        top + terms.iter().map(|t| (t - top).exp()).sum::<f64>().ln()
    }

    /// Anomaly score in [0, 1]: 0 for vectors as likely as a typical training
    /// vector, 0.2 at the rarest 1% of training, 0.5 twice as far below.
    pub fn score(&self, vector: ArrayView1<f64>) -> f64 {
        if vector.iter().any(|v| !v.is_finite()) {
            return 0.0;
        }
        let unit = (self.typical - self.rare).max(1e-6);
        let s = ((self.typical - self.log_likelihood(vector)) / unit).max(0.0);
        s * s / (s * s + 4.0)
    }
}

/// ln det of a symmetric positive definite matrix by Cholesky, or `None`
/// when it is not positive definite.
fn log_det_spd(m: &Array2<f64>) -> Option<f64> {
    let n = m.nrows();
    let mut l = Array2::<f64>::zeros((n, n));
    let mut log_det = 0.0;
    for j in 0..n {
        let mut diag = m[[j, j]];
        for k in 0..j {
            diag -= l[[j, k]] * l[[j, k]];
        }
        if diag <= 0.0 {
            return None;
        }
        let d = diag.sqrt();
        l[[j, j]] = d;
        log_det += 2.0 * d.ln();
        for i in j + 1..n {
            let mut v = m[[i, j]];
            for k in 0..j {
                v -= l[[i, k]] * l[[j, k]];
            }
            l[[i, j]] = v / d;
        }
    }
    Some(log_det)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::testing::noise;
    use ndarray::array;

    /// Latency deviation follows traffic deviation closely.
    fn correlated(n: usize) -> Array2<f64> {
        let mut a = Array2::zeros((n, 3));
        for i in 0..n {
            let traffic = 1.5 * (i as f64 * 0.05).sin();
            a[[i, 0]] = traffic;
            a[[i, 1]] = traffic + 0.2 * noise(i);
            a[[i, 2]] = 0.0;
        }
        a
    }

    #[test]
    fn an_unseen_combination_of_normal_values_is_anomalous() {
        let model = JointModel::fit(&correlated(2000), 2).expect("fit");
        let typical = model.score(array![1.0, 1.0, 0.0].view());
        // Each value is within 1.5 spreads, but high latency at low traffic is new.
        let unseen = model.score(array![-1.4, 1.4, 0.0].view());
        assert!(typical < 0.1, "typical {typical}");
        assert!(unseen > 0.7, "unseen {unseen}");
    }

    #[test]
    fn the_determinant_matches_a_known_matrix() {
        let m = array![[4.0, 2.0], [2.0, 3.0]];
        let log_det = log_det_spd(&m).expect("spd");
        assert!((log_det - 8f64.ln()).abs() < 1e-12);
        assert_eq!(log_det_spd(&array![[1.0, 2.0], [2.0, 1.0]]), None);
    }

    #[test]
    fn too_little_training_data_is_an_error() {
        assert!(matches!(
            JointModel::fit(&correlated(10), 2),
            Err(JointError::TooFew { .. })
        ));
    }
}
