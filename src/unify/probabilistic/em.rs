//! Expectation–maximisation for the Fellegi–Sunter model: with u (how often random pairs land
//! on each level) fixed from random sampling, learn m (how often true matches do) and, per
//! blocking rule, the share of candidate pairs that are matches.
//!
//! It runs on comparison *patterns* (distinct level vectors with their counts), which are few
//! even for millions of pairs. A pair found by a blocking rule trivially agrees on that rule's
//! fields, so those comparisons are left out of its likelihood, as Splink does by training one
//! session per blocking rule; here one pass covers all rules, each with its own prior.
//!
//! A rule's prior also depends on how many records hold the pair's key ([`SIZE_BINS`]): two
//! records alone under one full name are one person far more often than six are. On the
//! independent generator (people.py, 100k), 98.7% of the name-only pairs whose full name two
//! records hold are one person, 21.5% where six or more hold it; on the demo, whose name
//! lists are short, the same pairs match 1% of the time. One prior per rule priced them all
//! alike; EM learns each bin's share from that data's pairs.

/// Key-size bins: a pair's key held by 2, 3, 4–5 or 6+ records (doubling widths: the share
/// of matches falls as a key's holders grow, and a bin needs pairs enough to learn from).
pub const SIZE_BINS: usize = 4;

/// Labels of the key-size bins, as `match_weights` shows them.
pub const SIZE_BIN_LABELS: [&str; SIZE_BINS] = [
    "key held by 2 records",
    "key held by 3 records",
    "key held by 4-5 records",
    "key held by 6+ records",
];

/// The bin of a key held by `n` records (a key held by fewer than 2 makes no pair).
pub fn size_bin(n: u64) -> usize {
    match n {
        0..=2 => 0,
        3 => 1,
        4 | 5 => 2,
        _ => 3,
    }
}

/// SQL of [`size_bin`] over a count `n` (NULL: over the largest size counted, 6+).
pub fn size_bin_sql(n: &str) -> String {
    format!(
        "CAST(CASE WHEN {n} IS NULL THEN 3 WHEN {n} <= 2 THEN 0 WHEN {n} = 3 THEN 1 WHEN {n} <= 5 THEN 2 ELSE 3 END AS TINYINT)"
    )
}

/// Largest key size [`size_bin_sql`] must tell apart: counts above it are all bin 3.
pub const SIZE_COUNTED: u64 = 5;

/// Prior cells of a rule: each key-size bin, for pairs of records from two sources and for
/// pairs from one source. A source seldom holds one person twice where another source holds
/// the same person once, so the two kinds of pair match at different rates under one key:
/// on the independent generator (100k), `last_name+postcode` pairs whose key two records
/// hold are one person 96% of the time across sources and 12% within the registry (37–42%
/// within the shop and CRM); on the demo (100k), `last_name+phone_digits` 99.5% across and
/// 82% within the CRM. One prior for both priced a registry × shop pair at 0.90. EM learns
/// each cell's share from the data's pairs; a project of one source fills only one kind.
pub const CELLS: usize = 2 * SIZE_BINS;

/// The cell of a pair whose key is in size bin `bin`, its records from one source or not.
pub fn cell(bin: usize, one_source: bool) -> usize {
    bin + if one_source { SIZE_BINS } else { 0 }
}

/// Label of cell `c`, as `match_weights` and `explain` show it.
pub fn cell_label(c: usize) -> String {
    let kind = if c >= SIZE_BINS {
        "records of one source"
    } else {
        "records of two sources"
    };
    format!("{}, {kind}", SIZE_BIN_LABELS[c % SIZE_BINS])
}

/// Whether a `prior_size` label of `match_weights` names a cell ([`cell_label`]) rather than
/// a size bin alone, as runs before priors per kind of pair wrote (`level` = rule × 4 + bin).
pub fn is_cell_label(label: &str) -> bool {
    label.ends_with(", records of one source") || label.ends_with(", records of two sources")
}

/// SQL of the cell ([`cell`]) of a pair: its key held by `n` records (see [`size_bin_sql`]),
/// its records' sources `left_source` and `right_source`.
pub fn cell_sql(n: &str, left_source: &str, right_source: &str) -> String {
    format!(
        "CAST({} + CASE WHEN {left_source} = {right_source} THEN {SIZE_BINS} ELSE 0 END AS TINYINT)",
        size_bin_sql(n)
    )
}

/// Distinct comparison levels of candidate pairs found by one blocking rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Pattern {
    pub block: usize,
    /// Prior cell ([`cell`]): the size bin of the pair's key under `block`, and whether its
    /// records are of one source.
    pub cell: u8,
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
    /// The same share per rule and prior cell ([`CELLS`]); empty when not learned (a model
    /// made for one purpose, or a previous version's `match_weights`): then `lambda` stands
    /// for all.
    pub lambda_size: Vec<[f64; CELLS]>,
    pub iterations: usize,
    pub converged: bool,
}

const FLOOR: f64 = 1e-6;

impl Model {
    /// Weight of level `g` of comparison `c`, in bits.
    pub fn weight(&self, c: usize, g: usize) -> f64 {
        (self.m[c][g] / self.u[c][g]).log2()
    }

    /// Prior log-odds (bits) of a pair from blocking rule `b`, over all its pairs.
    pub fn prior(&self, b: usize) -> f64 {
        let l = self.lambda[b];
        (l / (1.0 - l)).log2()
    }

    /// Prior log-odds (bits) of a pair from blocking rule `b` in prior cell `cell` ([`cell`]).
    pub fn prior_at(&self, b: usize, cell: usize) -> f64 {
        let l = self.lambda_size.get(b).map_or(self.lambda[b], |s| s[cell]);
        (l / (1.0 - l)).log2()
    }

    /// Match weight (bits) of a pattern: prior plus the weights of the comparisons that are
    /// not part of its blocking rule.
    pub fn match_weight(&self, p: &Pattern, skip: &[Vec<bool>]) -> f64 {
        let mut w = self.prior_at(p.block, p.cell as usize);
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
    let mut lambda_size = vec![[0.3; CELLS]; blocks];
    let mut iterations = 0;
    let mut converged = false;
    while iterations < max_iterations {
        iterations += 1;
        let model = Model {
            m: m.clone(),
            u: u.clone(),
            lambda: lambda.clone(),
            lambda_size: lambda_size.clone(),
            iterations,
            converged,
        };
        let mut m_sum: Vec<Vec<f64>> = u.iter().map(|l| vec![0.0; l.len()]).collect();
        let mut matched = vec![0.0; blocks];
        let mut total = vec![0.0; blocks];
        let mut matched_size = vec![[0.0; CELLS]; blocks];
        let mut total_size = vec![[0.0; CELLS]; blocks];
        for (p, known) in patterns.iter().zip(&known) {
            let n = p.count as f64;
            let bin = p.cell as usize;
            total[p.block] += n;
            total_size[p.block][bin] += n;
            if *known {
                continue;
            }
            let w = model.match_weight(p, skip);
            let prob = 1.0 / (1.0 + (-w).exp2());
            matched[p.block] += n * prob;
            matched_size[p.block][bin] += n * prob;
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
            // Each cell's share, drawn toward the rule's by one pseudo-pair (Laplace): a cell
            // with a single pair does not get a prior of ±20 bits from it.
            for bin in 0..CELLS {
                let new = ((matched_size[b][bin] + lambda[b]) / (total_size[b][bin] + 1.0))
                    .clamp(FLOOR, 1.0 - FLOOR);
                change = change.max((new - lambda_size[b][bin]).abs());
                lambda_size[b][bin] = new;
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
        lambda_size,
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

    /// The patterns of `n_match` matches and `n_non` non-matches of one rule and key-size bin
    /// over two comparisons of two levels, agreeing with probability `m1` and `u1`.
    fn mixture(bin: u8, n_match: f64, n_non: f64, m1: f64, u1: f64) -> Vec<Pattern> {
        let pm = |g: u8| if g == 1 { m1 } else { 1.0 - m1 };
        let pu = |g: u8| if g == 1 { u1 } else { 1.0 - u1 };
        let mut patterns = Vec::new();
        for a in 0..2u8 {
            for b in 0..2u8 {
                let count = n_match * pm(a) * pm(b) + n_non * pu(a) * pu(b);
                patterns.push(Pattern {
                    block: 0,
                    cell: bin,
                    levels: vec![Some(a), Some(b)],
                    count: count.round() as u64,
                });
            }
        }
        patterns
    }

    /// Two comparisons with two levels each; matches agree 90% of the time, non-matches 5%.
    /// EM must recover m and the share of matches from the mixed counts alone.
    #[test]
    fn recovers_m_and_prior_from_a_mixture() {
        let (m1, u1) = (0.9, 0.05);
        let patterns = mixture(0, 3_000.0, 7_000.0, m1, u1);
        let u = vec![vec![1.0 - u1, u1], vec![1.0 - u1, u1]];
        let model = train(&patterns, u, &[vec![false, false]], 200, |_| false);
        assert!(model.converged);
        assert!((model.m[0][1] - 0.9).abs() < 0.02, "{:?}", model.m);
        assert!((model.lambda[0] - 0.3).abs() < 0.02, "{:?}", model.lambda);
        assert!(model.weight(0, 1) > 4.0 && model.weight(0, 0) < -3.0);
    }

    /// One rule whose two-holder keys are mostly one person (90%) and whose keys of six or
    /// more mostly not (10%): the bins' priors must come out apart, each near its own share,
    /// while the rule's share stays the mixture's.
    #[test]
    fn learns_a_prior_per_key_size() {
        let (m1, u1) = (0.9, 0.05);
        let mut patterns = Vec::new();
        // (bin, matches, non-matches)
        for (bin, n_match, n_non) in [(0u8, 900.0, 100.0), (3u8, 200.0, 1_800.0)] {
            patterns.extend(mixture(bin, n_match, n_non, m1, u1));
        }
        let u = vec![vec![1.0 - u1, u1], vec![1.0 - u1, u1]];
        let model = train(&patterns, u, &[vec![false, false]], 500, |_| false);
        let share = |bin: usize| model.lambda_size[0][bin];
        assert!((share(0) - 0.9).abs() < 0.05, "{:?}", model.lambda_size);
        assert!((share(3) - 0.1).abs() < 0.05, "{:?}", model.lambda_size);
        assert!((model.lambda[0] - 1_100.0 / 3_000.0).abs() < 0.05);
        // Bins without pairs keep the rule's share.
        assert!((share(1) - model.lambda[0]).abs() < 1e-9);
        assert!(model.prior_at(0, 0) > 2.5 && model.prior_at(0, 3) < -2.5);
        assert_eq!(size_bin(2), 0);
        assert_eq!(size_bin(3), 1);
        assert_eq!(size_bin(5), 2);
        assert_eq!(size_bin(6), 3);
    }

    /// Under one key size, pairs of two sources mostly one person (95%), pairs within one
    /// source mostly not (15%, a source seldom holds a person twice): the two cells' priors
    /// come out apart, and a cell's label names its kind.
    #[test]
    fn learns_a_prior_per_kind_of_pair() {
        let (m1, u1) = (0.9, 0.05);
        let mut patterns = Vec::new();
        for (one_source, n_match, n_non) in [(false, 1_900.0, 100.0), (true, 150.0, 850.0)] {
            patterns.extend(mixture(cell(0, one_source) as u8, n_match, n_non, m1, u1));
        }
        let u = vec![vec![1.0 - u1, u1], vec![1.0 - u1, u1]];
        let model = train(&patterns, u, &[vec![false, false]], 500, |_| false);
        let share = |one_source: bool| model.lambda_size[0][cell(0, one_source)];
        assert!(
            (share(false) - 0.95).abs() < 0.03,
            "{:?}",
            model.lambda_size
        );
        assert!((share(true) - 0.15).abs() < 0.05, "{:?}", model.lambda_size);
        assert_eq!(cell(3, true), 7);
        assert_eq!(
            cell_label(1),
            "key held by 3 records, records of two sources"
        );
        assert_eq!(
            cell_label(4),
            "key held by 2 records, records of one source"
        );
        assert!((0..CELLS).all(|c| is_cell_label(&format!("block:email, {}", cell_label(c)))));
        assert!(!is_cell_label("block:email, key held by 2 records"));
    }

    #[test]
    fn blocking_fields_do_not_count_for_their_own_pairs() {
        let model = Model {
            m: vec![vec![0.1, 0.9]],
            u: vec![vec![0.9, 0.1]],
            lambda: vec![0.5, 0.5],
            lambda_size: Vec::new(),
            iterations: 1,
            converged: true,
        };
        let p = |block| Pattern {
            block,
            cell: 0,
            levels: vec![Some(1)],
            count: 1,
        };
        let skip = vec![vec![true], vec![false]];
        assert_eq!(model.match_weight(&p(0), &skip), 0.0);
        assert!((model.match_weight(&p(1), &skip) - 9f64.log2()).abs() < 1e-9);
        assert_eq!(u_from_counts(&[3, 0]), vec![3.0 / 3.5, 0.5 / 3.5]);
    }
}
