//! The BG/NBD model (Fader, Hardie & Lee 2005, "Counting Your Customers the Easy Way") for
//! repeat purchases and the probability a customer is still alive, and the Gamma-Gamma model
//! (Fader, Hardie & Lee 2005, "RFM and CLV: Using Iso-Value Curves"; Fader & Hardie 2013) for
//! the value of a purchase. Both are fitted by maximum likelihood with Nelder-Mead (argmin) in
//! log-parameter space, so every parameter stays positive.
//!
//! A customer is summarized as `x` repeat purchases, `t_x` the time of the last purchase and
//! `T` the time observed, both counted from the first purchase (in any unit: weeks in the
//! papers, configurable in Panorama), and `m` the mean value of the repeat purchases.

use argmin::core::{CostFunction, Executor, State};
use argmin::solver::neldermead::NelderMead;

/// One customer's purchase history, summarized.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// Repeat purchases (purchases after the first).
    pub x: f64,
    /// Time of the last purchase since the first.
    pub t_x: f64,
    /// Time observed since the first purchase.
    pub t: f64,
}

/// BG/NBD parameters: purchase rates ~ Gamma(r, alpha), dropout probabilities ~ Beta(a, b).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BgNbd {
    pub r: f64,
    pub alpha: f64,
    pub a: f64,
    pub b: f64,
}

/// Gamma-Gamma parameters of the spend per purchase.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GammaGamma {
    pub p: f64,
    pub q: f64,
    pub v: f64,
}

/// A fit and its log-likelihood.
#[derive(Debug, Clone, Copy)]
pub struct Fit<P> {
    pub params: P,
    pub log_likelihood: f64,
    pub iterations: u64,
}

fn ln_gamma(x: f64) -> f64 {
    libm::lgamma(x)
}

/// ln(e^a + e^b) without overflow.
fn log_add(a: f64, b: f64) -> f64 {
    let m = a.max(b);
    if m == f64::NEG_INFINITY {
        return m;
    }
    m + ((a - m).exp() + (b - m).exp()).ln()
}

impl BgNbd {
    /// Log-likelihood of one customer (equation 6 of the paper, in logs).
    pub fn log_likelihood_one(&self, s: &Summary) -> f64 {
        let BgNbd { r, alpha, a, b } = *self;
        let x = s.x;
        let a1 = ln_gamma(r + x) - ln_gamma(r) + r * alpha.ln();
        let a2 = ln_gamma(a + b) + ln_gamma(b + x) - ln_gamma(b) - ln_gamma(a + b + x);
        let a3 = -(r + x) * (alpha + s.t).ln();
        if x > 0.0 {
            let a4 = a.ln() - (b + x - 1.0).ln() - (r + x) * (alpha + s.t_x).ln();
            a1 + a2 + log_add(a3, a4)
        } else {
            a1 + a2 + a3
        }
    }

    pub fn log_likelihood(&self, data: &[Summary]) -> f64 {
        data.iter().map(|s| self.log_likelihood_one(s)).sum()
    }

    /// P(alive | x, t_x, T).
    pub fn p_alive(&self, s: &Summary) -> f64 {
        if s.x == 0.0 {
            return 1.0;
        }
        let BgNbd { r, alpha, a, b } = *self;
        1.0 / (1.0 + (a / (b + s.x - 1.0)) * ((alpha + s.t) / (alpha + s.t_x)).powf(r + s.x))
    }

    /// Expected purchases in the next `t` time units given the history (equation 10).
    pub fn expected_purchases(&self, s: &Summary, t: f64) -> f64 {
        let BgNbd { r, alpha, a, b } = *self;
        let x = s.x;
        let z = t / (alpha + s.t + t);
        let hyp = hyp2f1(r + x, b + x, a + b + x - 1.0, z);
        let first = (a + b + x - 1.0) / (a - 1.0);
        let second = 1.0 - ((alpha + s.t) / (alpha + s.t + t)).powf(r + x) * hyp;
        let denom = if x > 0.0 {
            1.0 + (a / (b + x - 1.0)) * ((alpha + s.t) / (alpha + s.t_x)).powf(r + x)
        } else {
            1.0
        };
        first * second / denom
    }

    /// Fit by maximum likelihood.
    pub fn fit(data: &[Summary]) -> Result<Fit<BgNbd>, FitError> {
        if data.is_empty() {
            return Err(FitError::NoData("no customers to fit BG/NBD on"));
        }
        let cost = |p: &[f64]| {
            let m = BgNbd {
                r: p[0].exp(),
                alpha: p[1].exp(),
                a: p[2].exp(),
                b: p[3].exp(),
            };
            -m.log_likelihood(data) / data.len() as f64
        };
        let (p, ll, iters) = minimize(cost, 4)?;
        Ok(Fit {
            params: BgNbd {
                r: p[0].exp(),
                alpha: p[1].exp(),
                a: p[2].exp(),
                b: p[3].exp(),
            },
            log_likelihood: -ll * data.len() as f64,
            iterations: iters,
        })
    }
}

impl GammaGamma {
    /// Log-likelihood of one customer with `x > 0` repeat purchases of mean value `m`.
    pub fn log_likelihood_one(&self, x: f64, m: f64) -> f64 {
        let GammaGamma { p, q, v } = *self;
        ln_gamma(p * x + q) - ln_gamma(p * x) - ln_gamma(q)
            + q * v.ln()
            + (p * x - 1.0) * m.ln()
            + (p * x) * x.ln()
            - (p * x + q) * (x * m + v).ln()
    }

    /// Expected value of a purchase for a customer (the population mean when `x` is 0).
    pub fn expected_spend(&self, x: f64, m: f64) -> f64 {
        let GammaGamma { p, q, v } = *self;
        if x <= 0.0 || m <= 0.0 {
            return p * v / (q - 1.0);
        }
        p * (v + x * m) / (p * x + q - 1.0)
    }

    /// Fit on customers with repeat purchases: `(x, m)` pairs with `x > 0`, `m > 0`.
    pub fn fit(data: &[(f64, f64)]) -> Result<Fit<GammaGamma>, FitError> {
        let data: Vec<(f64, f64)> = data
            .iter()
            .copied()
            .filter(|(x, m)| *x > 0.0 && *m > 0.0)
            .collect();
        if data.is_empty() {
            return Err(FitError::NoData(
                "no customers with repeat purchases of positive value to fit Gamma-Gamma on",
            ));
        }
        let cost = |p: &[f64]| {
            let g = GammaGamma {
                p: p[0].exp(),
                q: p[1].exp(),
                v: p[2].exp(),
            };
            -data
                .iter()
                .map(|(x, m)| g.log_likelihood_one(*x, *m))
                .sum::<f64>()
                / data.len() as f64
        };
        let (p, ll, iters) = minimize(cost, 3)?;
        Ok(Fit {
            params: GammaGamma {
                p: p[0].exp(),
                q: p[1].exp(),
                v: p[2].exp(),
            },
            log_likelihood: -ll * data.len() as f64,
            iterations: iters,
        })
    }
}

/// Gauss's hypergeometric function 2F1(a, b; c; z) for 0 <= z < 1, by its series.
pub fn hyp2f1(a: f64, b: f64, c: f64, z: f64) -> f64 {
    let mut term = 1.0;
    let mut sum = 1.0;
    for n in 0..100_000 {
        let n = n as f64;
        term *= (a + n) * (b + n) / ((c + n) * (n + 1.0)) * z;
        sum += term;
        if term.abs() < 1e-15 * sum.abs() {
            break;
        }
    }
    sum
}

struct Objective<F: Fn(&[f64]) -> f64>(F);

impl<F: Fn(&[f64]) -> f64> CostFunction for Objective<F> {
    type Param = Vec<f64>;
    type Output = f64;
    fn cost(&self, p: &Self::Param) -> Result<f64, argmin::core::Error> {
        let c = (self.0)(p);
        // Outside the region where the likelihood is defined: worse than anything inside.
        Ok(if c.is_finite() { c } else { f64::MAX / 4.0 })
    }
}

/// Why a model could not be fitted. The caller names the model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FitError {
    /// No data the model can learn from; the message says which is missing.
    #[error("{0}")]
    NoData(&'static str),
    /// The optimizer could not start or failed.
    #[error("{0}")]
    Optimizer(String),
    /// The likelihood is not finite anywhere the optimizer looked.
    #[error("the likelihood could not be evaluated: check the data (negative times?)")]
    Undefined,
}

/// Minimize `f` over `n` log-parameters from 0 (all parameters 1), restarting Nelder-Mead
/// from its own optimum until it stops improving (a single run can stall on a ridge).
fn minimize(f: impl Fn(&[f64]) -> f64, n: usize) -> Result<(Vec<f64>, f64, u64), FitError> {
    let mut start = vec![0.0; n];
    let mut best = f64::INFINITY;
    let mut iterations = 0;
    for _ in 0..8 {
        let mut simplex = vec![start.clone()];
        for i in 0..n {
            let mut p = start.clone();
            p[i] += 0.5;
            simplex.push(p);
        }
        let solver = NelderMead::new(simplex)
            .with_sd_tolerance(1e-12)
            .map_err(|e| FitError::Optimizer(e.to_string()))?;
        let res = Executor::new(Objective(&f), solver)
            .configure(|s| s.max_iters(5_000))
            .run()
            .map_err(|e| FitError::Optimizer(format!("optimizer failed: {e}")))?;
        let state = res.state();
        iterations += state.get_iter();
        let cost = state.get_best_cost();
        let param = state.get_best_param().cloned().ok_or(FitError::Optimizer(
            "optimizer returned no parameters".into(),
        ))?;
        let improved = best - cost > 1e-12;
        best = best.min(cost);
        start = param;
        if !improved {
            break;
        }
    }
    if !best.is_finite() {
        return Err(FitError::Undefined);
    }
    Ok((start, best, iterations))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hypergeometric_matches_closed_forms() {
        // 2F1(1, 1; 2; z) = -ln(1 - z) / z
        let z: f64 = 0.5;
        assert!((hyp2f1(1.0, 1.0, 2.0, z) - (-(1.0 - z).ln() / z)).abs() < 1e-12);
        // 2F1(a, b; b; z) = (1 - z)^-a
        assert!((hyp2f1(2.5, 3.0, 3.0, 0.3) - 0.7f64.powf(-2.5)).abs() < 1e-12);
    }

    #[test]
    fn a_customer_without_repeat_purchases_is_alive_and_the_likelihood_is_by_hand() {
        let m = BgNbd {
            r: 1.0,
            alpha: 1.0,
            a: 1.0,
            b: 1.0,
        };
        let s = Summary {
            x: 0.0,
            t_x: 0.0,
            t: 1.0,
        };
        assert_eq!(m.p_alive(&s), 1.0);
        // x = 0: LL = ln Γ(1)/Γ(1) + 1·ln 1 + ln Γ(2)Γ(1)/(Γ(1)Γ(2)) − 1·ln(1 + 1) = −ln 2
        assert!((m.log_likelihood_one(&s) + 2f64.ln()).abs() < 1e-12);
        // x = 1, t_x = 0.5, T = 1: p_alive = 1 / (1 + (1/1)·(2/1.5)^2) = 1 / (1 + 16/9) = 9/25
        let s = Summary {
            x: 1.0,
            t_x: 0.5,
            t: 1.0,
        };
        assert!((m.p_alive(&s) - 9.0 / 25.0).abs() < 1e-12);
    }

    #[test]
    fn gamma_gamma_spend_shrinks_to_the_population_mean() {
        let g = GammaGamma {
            p: 6.0,
            q: 4.0,
            v: 15.0,
        };
        // No repeat purchase: population mean p·v/(q − 1) = 30.
        assert!((g.expected_spend(0.0, 0.0) - 30.0).abs() < 1e-12);
        // One repeat purchase of 60: 6·(15 + 60)/(6 + 3) = 50, between 30 and 60.
        assert!((g.expected_spend(1.0, 60.0) - 50.0).abs() < 1e-12);
    }

    #[test]
    fn fitting_recovers_the_parameters_of_simulated_customers() {
        // Expected purchases over the observation are monotone in the purchase count: a
        // simple property check of the fitted model on a synthetic cohort.
        let mut data = Vec::new();
        for i in 0..400 {
            let x = (i % 5) as f64;
            let t = 30.0;
            let t_x = if x > 0.0 {
                t * (0.3 + 0.1 * (i % 7) as f64)
            } else {
                0.0
            };
            data.push(Summary { x, t_x, t });
        }
        let fit = BgNbd::fit(&data).unwrap();
        let m = fit.params;
        let low = m.expected_purchases(
            &Summary {
                x: 1.0,
                t_x: 25.0,
                t: 30.0,
            },
            10.0,
        );
        let high = m.expected_purchases(
            &Summary {
                x: 4.0,
                t_x: 25.0,
                t: 30.0,
            },
            10.0,
        );
        assert!(high > low, "{low} {high}");
        assert!(fit.log_likelihood.is_finite());
    }
}
