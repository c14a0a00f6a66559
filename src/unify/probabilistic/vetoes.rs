//! Learned vetoes: which clear disagreements rule a match out whatever else agrees, when
//! `[unify.probabilistic]` gives no `contradictions`.
//!
//! Fellegi–Sunter adds evidence as if fields were independent. Members of one household share
//! surname, address, phone and sometimes a mailbox, so their agreement adds up to a match
//! although they differ in first name and birth date. A veto says "this disagreement alone
//! decides". Two kinds are learned:
//!
//! 1. **Dependent disagreement** ([`dependent`]): two fields the pairs called matches differ
//!    on together far more often than independent errors explain — a second population
//!    (households) inside the match class. Both different vetoes.
//! 2. **Rare disagreement** ([`learn`]), with the model retrained without (1): an attribute a
//!    person keeps for life (first name, birth date, gender, a national id) vetoes alone when
//!    at most `veto_max_loss` of true matches disagree on it (the model's m of "different",
//!    taken at its upper bound); so do identifier groups (e-mail AND phone both different).
//!
//! On FEBRL (typos everywhere, no households) neither fires: given names differ for 21% of
//! true matches, birth dates for 7%, FEBRL4's national ids for 4%. On the demo (households)
//! the birth date, e-mail+phone and first name or birth date with e-mail or phone veto.

use super::super::fields::{kind_of, CustomFields, FieldKind};
use super::comparisons::Comparison;
use super::em::{Model, Pattern};
use super::Contradiction;

/// A learned veto and what it costs.
#[derive(Debug, Clone, PartialEq)]
pub struct Learned {
    pub veto: Contradiction,
    /// Share of true matches (with the fields present) the veto rules out: the upper bound
    /// of the model's estimate.
    pub m: f64,
    /// Share of random pairs that disagree so.
    pub u: f64,
}

/// Attributes a person keeps for life: first name, birth date, gender, and a project's own
/// identifiers and dates (national id, date of first contract). Only they veto on their own:
/// addresses, phones, e-mails and (on marriage) surnames change, so a true match can differ
/// on any of them, however rarely the model has seen it.
fn lifetime(field: &str, custom: &CustomFields) -> bool {
    match field {
        "first_name" | "birth_date" | "gender" => true,
        f => custom
            .get(f)
            .is_some_and(|d| matches!(d.kind, FieldKind::Identifier | FieldKind::Date)),
    }
}

/// Kinds whose values identify a person: a disagreement on all of them is a group veto.
fn identifying(kind: Option<FieldKind>) -> bool {
    matches!(
        kind,
        Some(FieldKind::Email | FieldKind::Phone | FieldKind::Identifier)
    )
}

/// What the model's match class looks like on the training pairs, each pattern weighed by its
/// match probability; a comparison that is part of the pair's blocking rule is not counted.
#[derive(Debug, Clone)]
pub struct MatchStats {
    /// seen[c]: expected true matches with comparison c present on both sides.
    pub seen: Vec<f64>,
    /// diff[c]: of those, at level 0 (different).
    pub diff: Vec<f64>,
    /// both_seen[a][b] / both_diff[a][b]: the same for two comparisons at once.
    pub both_seen: Vec<Vec<f64>>,
    pub both_diff: Vec<Vec<f64>>,
    /// seen_agree[a][b]: matches with a present and b agreeing exactly; diff_agree[a][b]: of
    /// those, a different. A's error rate among pairs another attribute vouches for.
    pub seen_agree: Vec<Vec<f64>>,
    pub diff_agree: Vec<Vec<f64>>,
}

impl MatchStats {
    pub fn new(patterns: &[Pattern], model: &Model, skip: &[Vec<bool>], n: usize) -> MatchStats {
        let mut s = MatchStats {
            seen: vec![0.0; n],
            diff: vec![0.0; n],
            both_seen: vec![vec![0.0; n]; n],
            both_diff: vec![vec![0.0; n]; n],
            seen_agree: vec![vec![0.0; n]; n],
            diff_agree: vec![vec![0.0; n]; n],
        };
        let top: Vec<u8> = model.m.iter().map(|m| (m.len() - 1) as u8).collect();
        for p in patterns {
            let w = p.count as f64 * super::probability(model.match_weight(p, skip));
            let level = |c: usize| p.levels[c].filter(|_| !skip[p.block][c]);
            for a in 0..n {
                let Some(ga) = level(a) else { continue };
                s.seen[a] += w;
                if ga == 0 {
                    s.diff[a] += w;
                }
                for (b, &top_b) in top.iter().enumerate() {
                    let Some(gb) = level(b) else { continue };
                    if b > a {
                        s.both_seen[a][b] += w;
                        if ga == 0 && gb == 0 {
                            s.both_diff[a][b] += w;
                        }
                    }
                    if b != a && gb == top_b {
                        s.seen_agree[a][b] += w;
                        if ga == 0 {
                            s.diff_agree[a][b] += w;
                        }
                    }
                }
            }
        }
        s
    }
}

/// Group vetoes from *dependent* disagreement. If the pairs the model calls matches differ on
/// two fields together far more often than independent errors explain (more than three times
/// the product of their rates, and by more than three standard deviations), the match class
/// holds a second kind of pair: members of one household differ in first name AND birth date
/// while sharing everything else. Typos do not do that (FEBRL: a given-name typo says nothing
/// about the birth date). Such a pair of fields, both different, vetoes. The `m` reported for
/// it is what it costs true matches if their errors are independent: the product of the two
/// fields' rates of "different".
pub fn dependent(
    comps: &[Comparison],
    model: &Model,
    custom: &CustomFields,
    stats: &MatchStats,
) -> Vec<Learned> {
    let n = comps.len();
    let eligible = |c: usize| {
        comps[c].level_count() > 1 && kind_of(&comps[c].field, custom) != Some(FieldKind::Category)
    };
    let mut out = Vec::new();
    for a in (0..n).filter(|&a| eligible(a)) {
        for b in (a + 1..n).filter(|&b| eligible(b)) {
            let (fa, fb) = (&comps[a].field, &comps[b].field);
            if super::related(fa).contains(&fb.as_str())
                || super::related(fb).contains(&fa.as_str())
            {
                continue;
            }
            let (sa, sb) = (stats.seen[a].max(1e-12), stats.seen[b].max(1e-12));
            let independent = (stats.diff[a] / sa) * (stats.diff[b] / sb);
            let expected = stats.both_seen[a][b] * independent;
            let observed = stats.both_diff[a][b];
            if observed >= 10.0
                && observed > 3.0 * expected
                && observed - expected > 3.0 * expected.max(1.0).sqrt()
            {
                out.push(Learned {
                    veto: Contradiction::All(vec![fa.clone(), fb.clone()]),
                    m: independent,
                    u: model.u[a][0] * model.u[b][0],
                });
            }
        }
    }
    out
}

/// Choose the single-field vetoes of lifetime attributes (and groups of identifier fields that
/// all differ) from a model trained without the pairs `already` vetoes. m is an estimate; a
/// veto is judged on its upper bound `m + 3 / seen` (the "rule of three": with n matches seen
/// and none disagreeing, the true share is below 3/n at 95%), so a field seen on few pairs (or
/// none: a field no source maps) never vetoes. Each veto may cost at most `max_loss` of the
/// true matches that have its fields.
pub fn learn(
    comps: &[Comparison],
    model: &Model,
    custom: &CustomFields,
    max_loss: f64,
    stats: &MatchStats,
    already: &[Contradiction],
) -> Vec<Learned> {
    // The rate of "different" among matches another lifetime attribute vouches for (agrees
    // exactly): households, whose other attributes differ too, do not inflate it as they
    // inflate the model's m. Without such an attribute, the model's m.
    let upper = |c: usize| {
        let vouch = (0..comps.len())
            // Gender agrees for half of all pairs: it vouches for no one.
            .filter(|&g| g != c && lifetime(&comps[g].field, custom) && comps[g].field != "gender")
            .max_by(|&x, &y| stats.seen_agree[c][x].total_cmp(&stats.seen_agree[c][y]))
            .filter(|&g| stats.seen_agree[c][g] >= 1.0);
        let (rate, n) = match vouch {
            Some(g) => (
                stats.diff_agree[c][g] / stats.seen_agree[c][g],
                stats.seen_agree[c][g],
            ),
            None => (model.m[c][0], stats.seen[c]),
        };
        if n < 1.0 {
            1.0
        } else {
            (rate + 3.0 / n).min(1.0)
        }
    };
    let mut options: Vec<Learned> = comps
        .iter()
        .enumerate()
        .filter(|(_, c)| c.level_count() > 1 && lifetime(&c.field, custom))
        .map(|(i, c)| Learned {
            veto: Contradiction::Field(c.field.clone()),
            m: upper(i),
            u: model.u[i][0],
        })
        .collect();
    let ids: Vec<usize> = (0..comps.len())
        .filter(|&i| identifying(kind_of(&comps[i].field, custom)))
        .collect();
    for (x, &a) in ids.iter().enumerate() {
        for &b in &ids[x + 1..] {
            options.push(Learned {
                veto: Contradiction::All(vec![comps[a].field.clone(), comps[b].field.clone()]),
                // Fields err independently given a match (the model's own assumption).
                m: upper(a) * upper(b),
                u: model.u[a][0] * model.u[b][0],
            });
        }
    }
    options.sort_by(|a, b| a.m.total_cmp(&b.m));
    let mut chosen: Vec<Learned> = Vec::new();
    for o in options {
        // A group whose fields already veto one by one adds nothing.
        let covered = o.veto.fields().iter().any(|f| {
            chosen
                .iter()
                .map(|c| &c.veto)
                .chain(already)
                .any(|c| *c == Contradiction::Field(f.clone()))
        }) || already.contains(&o.veto);
        if !covered && o.m <= max_loss {
            chosen.push(o);
        }
    }
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    fn comps(fields: &[&str]) -> Vec<Comparison> {
        let none = CustomFields::new();
        fields
            .iter()
            .map(|f| super::super::comparisons::comparison(f, &none).unwrap())
            .collect()
    }

    fn model(m0: &[f64], comps: &[Comparison]) -> Model {
        let m = comps
            .iter()
            .zip(m0)
            .map(|(c, &z)| {
                let n = c.level_count();
                (0..n)
                    .map(|g| {
                        if g == 0 {
                            z
                        } else {
                            (1.0 - z) / (n - 1) as f64
                        }
                    })
                    .collect()
            })
            .collect();
        let u = comps
            .iter()
            .map(|c| {
                let n = c.level_count();
                (0..n)
                    .map(|g| if g == 0 { 0.9 } else { 0.1 / (n - 1) as f64 })
                    .collect()
            })
            .collect();
        Model {
            m,
            u,
            lambda: vec![0.5],
            lambda_size: Vec::new(),
            iterations: 1,
            converged: true,
        }
    }

    #[test]
    fn rare_disagreements_veto_within_the_loss() {
        let c = comps(&[
            "first_name",
            "birth_date",
            "email",
            "phone_digits",
            "last_name",
        ]);
        // First names and birth dates of one person almost never differ; e-mails and phones
        // often do, but rarely both.
        let m = model(&[0.001, 0.0015, 0.05, 0.04, 0.03], &c);
        let stats = |seen: [f64; 5]| MatchStats {
            seen: seen.to_vec(),
            diff: vec![0.0; 5],
            both_seen: vec![vec![0.0; 5]; 5],
            both_diff: vec![vec![0.0; 5]; 5],
            seen_agree: vec![vec![0.0; 5]; 5],
            diff_agree: vec![vec![0.0; 5]; 5],
        };
        let seen = stats([1e6; 5]);
        let v = learn(&c, &m, &CustomFields::new(), 0.05, &seen, &[]);
        let vetoes: Vec<&Contradiction> = v.iter().map(|l| &l.veto).collect();
        assert_eq!(
            vetoes,
            vec![
                &Contradiction::Field("first_name".into()),
                &Contradiction::Field("birth_date".into()),
                &Contradiction::All(vec!["email".into(), "phone_digits".into()]),
            ]
        );
        // Typo-laden data: names and dates differ for many true matches; e-mail and phone
        // often: no veto.
        let m = model(&[0.2, 0.07, 0.3, 0.2, 0.17], &c);
        assert!(learn(&c, &m, &CustomFields::new(), 0.05, &seen, &[]).is_empty());
        // Surnames change on marriage: never a veto alone, however rare.
        let m = model(&[0.2, 0.07, 0.3, 0.2, 0.0], &c);
        assert!(learn(&c, &m, &CustomFields::new(), 0.05, &seen, &[]).is_empty());
        // Few matches seen: the bound is too wide to veto; none seen (unmapped): never.
        let m = model(&[0.0, 0.0, 0.0, 0.0, 0.0], &c);
        let few = stats([10.0, 0.0, 0.0, 0.0, 0.0]);
        assert!(learn(&c, &m, &CustomFields::new(), 0.05, &few, &[]).is_empty());
        let many = stats([1e4, 0.0, 0.0, 0.0, 0.0]);
        assert_eq!(
            learn(&c, &m, &CustomFields::new(), 0.05, &many, &[]).len(),
            1
        );
    }

    #[test]
    fn disagreeing_together_is_a_household() {
        let c = comps(&["first_name", "birth_date", "street"]);
        let mut s = MatchStats {
            seen: vec![1000.0; 3],
            diff: vec![100.0, 100.0, 100.0],
            both_seen: vec![vec![1000.0; 3]; 3],
            both_diff: vec![vec![0.0; 3]; 3],
            seen_agree: vec![vec![0.0; 3]; 3],
            diff_agree: vec![vec![0.0; 3]; 3],
        };
        // Independent: 1000 × 0.1 × 0.1 = 10 expected together.
        s.both_diff[0][1] = 12.0;
        s.both_diff[0][2] = 80.0;
        let m = model(&[0.1, 0.1, 0.1], &c);
        let v: Vec<Contradiction> = dependent(&c, &m, &CustomFields::new(), &s)
            .into_iter()
            .map(|l| l.veto)
            .collect();
        assert_eq!(
            v,
            vec![Contradiction::All(vec![
                "first_name".into(),
                "street".into()
            ])]
        );
    }
}
