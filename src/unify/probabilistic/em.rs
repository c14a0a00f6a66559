//! Expectation–maximisation for the Fellegi–Sunter model: with u (how often random pairs land
//! on each level) fixed from random sampling, learn m (how often true matches do) and, per
//! blocking rule, the share of candidate pairs that are matches.
//!
//! It runs on comparison *patterns* (distinct level vectors with their counts), which are few
//! even for millions of pairs. A pair found by a blocking rule trivially agrees on that rule's
//! fields, so those comparisons are left out of its likelihood, as Splink does by training one
//! session per blocking rule; here one pass covers all rules, each with its own prior.

/// Distinct comparison levels of candidate pairs found by one blocking rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Pattern {
    pub block: usize,
    /// Level per comparison; None when either side is missing.
    pub levels: Vec<Option<u8>>,
    pub count: u64,
}

/// A trained model.
#[derive(Debug, Clone)]
pub struct Model {
    /// m[c][g]: P(level g of comparison c | match).
    pub m: Vec<Vec<f64>>,
    /// u[c][g]: P(level g | non-match).
    pub u: Vec<Vec<f64>>,
    /// Share of matches among each blocking rule's candidate pairs.
    pub lambda: Vec<f64>,
    pub iterations: usize,
    pub converged: bool,
}

const FLOOR: f64 = 1e-6;

impl Model {
    /// Weight of level `g` of comparison `c`, in bits.
    pub fn weight(&self, c: usize, g: usize) -> f64 {
        (self.m[c][g] / self.u[c][g]).log2()
    }

    /// Prior log-odds (bits) of a pair from blocking rule `b`.
    pub fn prior(&self, b: usize) -> f64 {
        let l = self.lambda[b];
        (l / (1.0 - l)).log2()
    }

    /// Match weight (bits) of a pattern: prior plus the weights of the comparisons that are
    /// not part of its blocking rule.
    pub fn match_weight(&self, p: &Pattern, skip: &[Vec<bool>]) -> f64 {
        let mut w = self.prior(p.block);
        for (c, g) in p.levels.iter().enumerate() {
            if let (Some(g), false) = (g, skip[p.block][c]) {
                w += self.weight(c, *g as usize);
            }
        }
        w
    }
}

/// Train m and the per-rule priors. `u[c]` has one entry per level of comparison c (0 is
/// disagreement); `skip[b][c]` is true when comparison c is part of blocking rule b.
/// `non_match(p)`: patterns known not to be matches (vetoed): they teach nothing about m but
/// count in their rule's pairs, so its prior stays the share of matches among all its pairs.
pub fn train(
    patterns: &[Pattern],
    u: Vec<Vec<f64>>,
    skip: &[Vec<bool>],
    max_iterations: usize,
    non_match: impl Fn(&Pattern) -> bool,
) -> Model {
    let known: Vec<bool> = patterns.iter().map(non_match).collect();
    let blocks = skip.len();
    // Start from "matches mostly agree exactly".
    let mut m: Vec<Vec<f64>> = u
        .iter()
        .map(|levels| {
            let n = levels.len();
            (0..n)
                .map(|g| {
                    if g == n - 1 {
                        0.8
                    } else {
                        0.2 / (n - 1) as f64
                    }
                })
                .collect()
        })
        .collect();
    let mut lambda = vec![0.3; blocks];
    let mut iterations = 0;
    let mut converged = false;
    while iterations < max_iterations {
        iterations += 1;
        let model = Model {
            m: m.clone(),
            u: u.clone(),
            lambda: lambda.clone(),
            iterations,
            converged,
        };
        let mut m_sum: Vec<Vec<f64>> = u.iter().map(|l| vec![0.0; l.len()]).collect();
        let mut matched = vec![0.0; blocks];
        let mut total = vec![0.0; blocks];
        for (p, known) in patterns.iter().zip(&known) {
            let n = p.count as f64;
            if *known {
                total[p.block] += n;
                continue;
            }
            let w = model.match_weight(p, skip);
            let prob = 1.0 / (1.0 + (-w).exp2());
            matched[p.block] += n * prob;
            total[p.block] += n;
            for (c, g) in p.levels.iter().enumerate() {
                if let (Some(g), false) = (g, skip[p.block][c]) {
                    m_sum[c][*g as usize] += n * prob;
                }
            }
        }
        let mut change: f64 = 0.0;
        for (c, sums) in m_sum.iter().enumerate() {
            let t: f64 = sums.iter().sum();
            if t <= 0.0 {
                continue; // never observed outside its own blocks: keep the start value
            }
            let floored: Vec<f64> = sums.iter().map(|s| (s / t).max(FLOOR)).collect();
            let t2: f64 = floored.iter().sum();
            for (g, v) in floored.iter().enumerate() {
                let new = v / t2;
                change = change.max((new - m[c][g]).abs());
                m[c][g] = new;
            }
        }
        for b in 0..blocks {
            if total[b] > 0.0 {
                let new = (matched[b] / total[b]).clamp(FLOOR, 1.0 - FLOOR);
                change = change.max((new - lambda[b]).abs());
                lambda[b] = new;
            }
        }
        if change < 1e-6 {
            converged = true;
            break;
        }
    }
    Model {
        m,
        u,
        lambda,
        iterations,
        converged,
    }
}

/// u per level from counts over random pairs; unseen levels get half a pair so no weight is
/// infinite.
pub fn u_from_counts(counts: &[u64]) -> Vec<f64> {
    let total: f64 = counts.iter().sum::<u64>() as f64;
    let raw: Vec<f64> = counts
        .iter()
        .map(|&c| (c as f64).max(0.5) / total.max(1.0))
        .collect();
    let t: f64 = raw.iter().sum();
    raw.iter().map(|v| v / t).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two comparisons with two levels each; matches agree 90% of the time, non-matches 5%.
    /// EM must recover m and the share of matches from the mixed counts alone.
    #[test]
    fn recovers_m_and_prior_from_a_mixture() {
        let (n_match, n_non): (f64, f64) = (3_000.0, 7_000.0);
        let (m1, u1) = (0.9, 0.05);
        let mut patterns = Vec::new();
        for a in 0..2u8 {
            for b in 0..2u8 {
                let pm = |g: u8| if g == 1 { m1 } else { 1.0 - m1 };
                let pu = |g: u8| if g == 1 { u1 } else { 1.0 - u1 };
                let count = n_match * pm(a) * pm(b) + n_non * pu(a) * pu(b);
                patterns.push(Pattern {
                    block: 0,
                    levels: vec![Some(a), Some(b)],
                    count: count.round() as u64,
                });
            }
        }
        let u = vec![vec![1.0 - u1, u1], vec![1.0 - u1, u1]];
        let model = train(&patterns, u, &[vec![false, false]], 200, |_| false);
        assert!(model.converged);
        assert!((model.m[0][1] - 0.9).abs() < 0.02, "{:?}", model.m);
        assert!((model.lambda[0] - 0.3).abs() < 0.02, "{:?}", model.lambda);
        assert!(model.weight(0, 1) > 4.0 && model.weight(0, 0) < -3.0);
    }

    #[test]
    fn blocking_fields_do_not_count_for_their_own_pairs() {
        let model = Model {
            m: vec![vec![0.1, 0.9]],
            u: vec![vec![0.9, 0.1]],
            lambda: vec![0.5, 0.5],
            iterations: 1,
            converged: true,
        };
        let p = |block| Pattern {
            block,
            levels: vec![Some(1)],
            count: 1,
        };
        let skip = vec![vec![true], vec![false]];
        assert_eq!(model.match_weight(&p(0), &skip), 0.0);
        assert!((model.match_weight(&p(1), &skip) - 9f64.log2()).abs() < 1e-9);
        assert_eq!(u_from_counts(&[3, 0]), vec![3.0 / 3.5, 0.5 / 3.5]);
    }
}
