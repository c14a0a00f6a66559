//! Customers no veto allows: a veto (a learned or configured contradiction, such as two birth
//! dates clearly different) rules a *pair* out, but records join customers through chains of
//! pairs, so two records a veto keeps apart could still end in one customer through others.
//! On the independent generator at 100k persons, 77% of the false links were such chains:
//! household members, each vetoed against the other by birth date, joined through a record
//! matching both.
//!
//! So a customer must hold no two records a veto rules apart. For every cluster of three or
//! more records (a cluster of two is one pair that passed the vetoes), its record pairs are
//! checked against the vetoes in SQL; a cluster with a vetoed pair is built again from its
//! links, strongest first (match weight, then the records' order), a link joining two parts
//! only when no vetoed pair spans them. The result depends only on the links, their weights
//! and the records, so an incremental run that links the same records gets the same customers.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray, UInt32Array};
use datafusion::prelude::SessionContext;

use super::clusters::{self, UnionFind};
use super::config::{MatchMode, UnifySection};
use super::incremental::{Baseline, Changes};
use super::probabilistic::{self, ProbabilisticSection};
use super::{collect, register, UnifyReport};
use crate::error::Result;
use crate::table_catalog::names;

/// The matched pairs as the components see them: record positions in `uids` and, per link,
/// its match weight.
pub struct Links<'a> {
    pub uids: &'a StringArray,
    pub edges: &'a [(u32, u32)],
    pub weights: &'a [f64],
    /// In an incremental run, what its baseline's check found.
    pub reuse: Option<Reuse<'a>>,
}

/// What splitting did: clusters split and links dropped.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Split {
    pub clusters: u64,
    pub links_dropped: u64,
}

/// What an incremental run knows of its baseline's veto check.
#[derive(Clone, Copy)]
pub struct Reuse<'a> {
    /// Records compared again (new, changed, deleted, or in a block that changed size).
    pub touched: &'a HashSet<String>,
    /// The baseline's tables (its `vetoed_pairs`).
    pub baseline: &'a std::path::Path,
}

impl<'a> Reuse<'a> {
    /// An increment checks only the customers holding a record it compared again: the
    /// others have the links and records they had, so their vetoed pairs are the baseline's.
    pub fn of(delta: Option<&'a (Changes, Baseline)>) -> Option<Reuse<'a>> {
        delta.map(|(changes, baseline)| Reuse {
            touched: &changes.touched,
            baseline: &baseline.tables,
        })
    }
}

/// The clusters to check: at least three and at most `max_size` records (larger ones are left
/// as they are: their pairs grow as the square).
fn checked(cluster_of: &[u32], max_size: usize) -> HashSet<u32> {
    let mut sizes: HashMap<u32, usize> = HashMap::new();
    for c in cluster_of {
        *sizes.entry(*c).or_default() += 1;
    }
    sizes
        .into_iter()
        .filter(|(_, n)| (3..=max_size).contains(n))
        .map(|(c, _)| c)
        .collect()
}

/// The `(left uid, right uid)` rows of `b` (its first two columns) as record positions through
/// `index`; uids it does not know are left out.
fn positions<'a>(
    b: &'a RecordBatch,
    index: &'a HashMap<&str, u32>,
) -> impl Iterator<Item = (u32, u32)> + 'a {
    let (l, r) = (
        b.column(0).as_string::<i32>(),
        b.column(1).as_string::<i32>(),
    );
    (0..b.num_rows()).filter_map(move |i| Some((*index.get(l.value(i))?, *index.get(r.value(i))?)))
}

/// The baseline's vetoed pairs (as positions, through `index`) that fall in one cluster of
/// `clean` (clusters no touched record is in: the same records and links as in the baseline);
/// `None` when the baseline kept none (an older run).
fn baseline_pairs(
    baseline: &std::path::Path,
    index: &HashMap<&str, u32>,
    cluster_of: &[u32],
    clean: &HashSet<u32>,
) -> Result<Option<Vec<(u32, u32)>>> {
    let path = baseline.join(format!("{}.parquet", names::VETOED_PAIRS));
    if !path.exists() {
        return Ok(None);
    }
    let mut out = Vec::new();
    for b in crate::workspace::read_parquet_file(&path)? {
        out.extend(positions(&b, index).filter(|&(x, y)| {
            let c = cluster_of[x as usize];
            c == cluster_of[y as usize] && clean.contains(&c)
        }));
    }
    Ok(Some(out))
}

/// Vetoed record pairs within the clusters of `cluster_of` that hold at least three and at most
/// `max_size` records, as positions in `uids`; with `reuse`, the baseline's for the clusters
/// holding no touched record.
async fn vetoed_pairs(
    ctx: &SessionContext,
    section: &ProbabilisticSection,
    uids: &StringArray,
    cluster_of: &[u32],
    max_size: usize,
    reuse: Option<Reuse<'_>>,
) -> Result<(Vec<(u32, u32)>, u64)> {
    let vetoes = section.vetoes();
    if vetoes.is_empty() {
        return Ok((Vec::new(), 0));
    }
    let index: HashMap<&str, u32> = (0..uids.len()).map(|i| (uids.value(i), i as u32)).collect();
    let mut out = Vec::new();
    let mut to_check = checked(cluster_of, max_size);
    if let Some(r) = reuse {
        let dirty: HashSet<u32> = r
            .touched
            .iter()
            .filter_map(|u| index.get(u.as_str()))
            .map(|&i| cluster_of[i as usize])
            .collect();
        let clean: HashSet<u32> = to_check.difference(&dirty).copied().collect();
        if let Some(kept) = baseline_pairs(r.baseline, &index, cluster_of, &clean)? {
            tracing::info!(
                checked = to_check.len() - clean.len(),
                reused = clean.len(),
                "veto check: customers with a touched record checked, the others' vetoed pairs reused"
            );
            out = kept;
            to_check.retain(|c| dirty.contains(c));
        }
    }
    let (mut members, mut clusters) = (Vec::new(), Vec::new());
    for (i, c) in cluster_of.iter().enumerate() {
        if to_check.contains(c) {
            members.push(uids.value(i));
            clusters.push(*c);
        }
    }
    let checked_customers = to_check.len() as u64;
    if members.is_empty() {
        return Ok((out, checked_customers));
    }
    let batch = crate::state::batch(vec![
        ("uid", Arc::new(StringArray::from(members)) as ArrayRef),
        ("cluster", Arc::new(UInt32Array::from(clusters))),
    ])?;
    register(
        ctx,
        "unify_cluster_members",
        vec![batch.clone()],
        batch.schema(),
    )?;
    let veto_fields: HashSet<&str> = vetoes
        .iter()
        .flat_map(|v| v.fields())
        .map(String::as_str)
        .collect();
    let levels: Vec<String> = section
        .comparisons()
        .iter()
        .filter(|c| veto_fields.contains(c.field.as_str()))
        .map(|c| format!("{} AS {}", c.level_sql("l", "r"), c.column()))
        .collect();
    let sql = format!(
        "SELECT a, b FROM (\
           SELECT CAST(l.uid AS VARCHAR) AS a, CAST(r.uid AS VARCHAR) AS b, {levels} \
           FROM unify_cluster_members cl JOIN unify_cluster_members cr \
             ON cl.cluster = cr.cluster AND cl.uid < cr.uid \
           JOIN unify_records l ON CAST(l.uid AS VARCHAR) = cl.uid \
           JOIN unify_records r ON CAST(r.uid AS VARCHAR) = cr.uid) \
         WHERE {veto}",
        levels = levels.join(", "),
        veto = probabilistic::Scoring::veto_sql(vetoes),
    );
    for b in collect(ctx, &sql, "vetoed pairs within customers").await? {
        out.extend(positions(&b, &index));
    }
    let _ = ctx.deregister_table("unify_cluster_members");
    Ok((out, checked_customers))
}

/// Build the clusters holding a vetoed pair again from their links (`edges`, record
/// positions, with their match `weights`), strongest first, refusing a link that would put a
/// vetoed pair in one cluster. Returns the links kept (all links of other clusters unchanged)
/// and what was done.
pub fn split(
    cluster_of: &[u32],
    edges: &[(u32, u32)],
    weights: &[f64],
    vetoed: &[(u32, u32)],
) -> (Vec<(u32, u32)>, Split) {
    let flagged: HashSet<u32> = vetoed
        .iter()
        .map(|(a, _)| cluster_of[*a as usize])
        .collect();
    let mut kept: Vec<(u32, u32)> = Vec::with_capacity(edges.len());
    let mut inside: Vec<(u32, u32, f64)> = Vec::new();
    for (&(a, b), &w) in edges.iter().zip(weights) {
        if flagged.contains(&cluster_of[a as usize]) {
            inside.push((a, b, w));
        } else {
            kept.push((a, b));
        }
    }
    // Strongest first; equal weights in the records' order, so the result does not depend on
    // the order the links came in.
    inside.sort_by(|x, y| {
        y.2.total_cmp(&x.2)
            .then((x.0.min(x.1), x.0.max(x.1)).cmp(&(y.0.min(y.1), y.0.max(y.1))))
    });
    // A link joins records of one cluster and the union-find only joins along such links, so
    // only the vetoed pairs of the link's own cluster can span it. Checking every vetoed pair
    // for every link was quadratic: 40 s for 88,674 vetoed pairs in 16,156 customers on the
    // independent generator's 1M persons.
    let mut vetoed_in: HashMap<u32, Vec<(u32, u32)>> = HashMap::new();
    for &(x, y) in vetoed {
        vetoed_in
            .entry(cluster_of[x as usize])
            .or_default()
            .push((x, y));
    }
    let mut uf = UnionFind::new(cluster_of.len());
    let mut dropped = 0u64;
    let mut split_clusters: HashSet<u32> = HashSet::new();
    for (a, b, _) in inside {
        let (ra, rb) = (uf.find(a), uf.find(b));
        if ra == rb {
            kept.push((a, b));
            continue;
        }
        let own = vetoed_in
            .get(&cluster_of[a as usize])
            .map_or(&[][..], |v| v);
        let spans = own.iter().any(|&(x, y)| {
            let (fx, fy) = (uf.find(x), uf.find(y));
            (fx == ra && fy == rb) || (fx == rb && fy == ra)
        });
        if spans {
            dropped += 1;
            split_clusters.insert(cluster_of[a as usize]);
        } else {
            uf.union(a, b);
            kept.push((a, b));
        }
    }
    (
        kept,
        Split {
            clusters: split_clusters.len() as u64,
            links_dropped: dropped,
        },
    )
}

/// In probabilistic mode, the components `cluster_of` of `links` with every cluster that holds
/// a pair the run's vetoes rule out split (counted in `report`); unchanged otherwise. The
/// vetoes are those of the run that learned the model (its `match_weights` in `tables_dir`).
pub async fn split_vetoed(
    ctx: &SessionContext,
    unify_cfg: &UnifySection,
    tables_dir: &std::path::Path,
    links: &Links<'_>,
    cluster_of: Vec<u32>,
    report: &mut UnifyReport,
) -> Result<Vec<u32>> {
    if unify_cfg.match_mode() != MatchMode::Probabilistic {
        return Ok(cluster_of);
    }
    let mut section = unify_cfg.probabilistic_section();
    let weights = crate::workspace::read_parquet_file(
        &tables_dir.join(format!("{}.parquet", names::MATCH_WEIGHTS)),
    )?;
    probabilistic::adopt_plan(&mut section, &weights)?;
    let (vetoed, checked) = vetoed_pairs(
        ctx,
        &section,
        links.uids,
        &cluster_of,
        unify_cfg.max_block_size,
        links.reuse,
    )
    .await?;
    report.veto_checked_customers = checked;
    write_vetoed(tables_dir, links.uids, &vetoed)?;
    if vetoed.is_empty() {
        return Ok(cluster_of);
    }
    let (kept, done) = split(&cluster_of, links.edges, links.weights, &vetoed);
    report.vetoed_splits = done.clusters;
    report.vetoed_links = done.links_dropped;
    tracing::info!(
        customers = done.clusters,
        links = done.links_dropped,
        "customers split where a veto rules two of their records apart"
    );
    Ok(clusters::components(cluster_of.len(), kept.into_iter()))
}

/// `vetoed_pairs`: the pairs found (uids), for the next incremental run.
fn write_vetoed(
    tables_dir: &std::path::Path,
    uids: &StringArray,
    vetoed: &[(u32, u32)],
) -> Result<()> {
    let side = |pick: fn(&(u32, u32)) -> u32| {
        Arc::new(StringArray::from_iter_values(
            vetoed.iter().map(|p| uids.value(pick(p) as usize)),
        )) as ArrayRef
    };
    let batch = crate::state::batch(vec![
        ("left_uid", side(|p| p.0)),
        ("right_uid", side(|p| p.1)),
    ])?;
    crate::workspace::write_parquet(
        &tables_dir.join(format!("{}.parquet", names::VETOED_PAIRS)),
        batch.schema(),
        std::slice::from_ref(&batch),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records 0 and 2 are vetoed apart (two birth dates); 1 matches both, more strongly 0.
    /// The chain 0–1–2 is cut at its weaker link; record 3, linked to 2 only, stays with 2.
    #[test]
    fn a_chain_through_a_vetoed_pair_is_cut_at_its_weakest_link() {
        let cluster_of = vec![0, 0, 0, 0, 1, 1];
        let mut edges = vec![(0, 1), (1, 2), (2, 3), (4, 5)];
        let mut weights = vec![20.0, 8.0, 15.0, 3.0];
        let (kept, done) = split(&cluster_of, &edges, &weights, &[(0, 2)]);
        let kept: HashSet<(u32, u32)> = kept.into_iter().collect();
        assert_eq!(kept, HashSet::from([(0, 1), (2, 3), (4, 5)]));
        assert_eq!(
            done,
            Split {
                clusters: 1,
                links_dropped: 1
            }
        );
        // The order the links come in does not matter.
        edges.reverse();
        weights.reverse();
        let (again, _) = split(&cluster_of, &edges, &weights, &[(0, 2)]);
        assert_eq!(again.into_iter().collect::<HashSet<_>>(), kept);
    }

    /// A link inside an already joined part is kept even if weaker than a refused one.
    #[test]
    fn links_within_one_part_are_kept() {
        let cluster_of = vec![0, 0, 0];
        let edges = [(0, 1), (1, 2), (0, 2)];
        let (kept, done) = split(&cluster_of, &edges, &[10.0, 9.0, 1.0], &[(1, 2)]);
        let kept: HashSet<(u32, u32)> = kept.into_iter().collect();
        assert_eq!(kept, HashSet::from([(0, 1)]));
        assert_eq!(done.links_dropped, 2);
    }
}
