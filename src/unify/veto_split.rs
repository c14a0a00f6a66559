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

use arrow::array::{Array, AsArray, RecordBatch, StringArray, UInt32Array};
use arrow::datatypes::{DataType, Field, Schema};
use datafusion::prelude::SessionContext;

use super::clusters::UnionFind;
use super::probabilistic::{self, ProbabilisticSection};
use super::{collect, register};
use crate::error::Result;

/// What splitting did: clusters split and links dropped.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Split {
    pub clusters: u64,
    pub links_dropped: u64,
}

/// Vetoed record pairs within the clusters of `cluster_of` that hold at least three and at most
/// `max_size` records (larger ones are left as they are: their pairs grow as the square), as
/// positions in `uids`.
async fn vetoed_pairs(
    ctx: &SessionContext,
    section: &ProbabilisticSection,
    uids: &StringArray,
    cluster_of: &[u32],
    max_size: usize,
) -> Result<Vec<(u32, u32)>> {
    let vetoes = section.vetoes();
    if vetoes.is_empty() {
        return Ok(Vec::new());
    }
    let mut sizes: HashMap<u32, usize> = HashMap::new();
    for c in cluster_of {
        *sizes.entry(*c).or_default() += 1;
    }
    let (mut members, mut clusters) = (Vec::new(), Vec::new());
    for (i, c) in cluster_of.iter().enumerate() {
        if (3..=max_size).contains(&sizes[c]) {
            members.push(uids.value(i));
            clusters.push(*c);
        }
    }
    if members.is_empty() {
        return Ok(Vec::new());
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("uid", DataType::Utf8, false),
        Field::new("cluster", DataType::UInt32, false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(members)),
            Arc::new(UInt32Array::from(clusters)),
        ],
    )?;
    register(ctx, "unify_cluster_members", vec![batch], schema)?;
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
    let index: HashMap<&str, u32> = (0..uids.len()).map(|i| (uids.value(i), i as u32)).collect();
    let mut out = Vec::new();
    for b in collect(ctx, &sql, "vetoed pairs within customers").await? {
        let (a, c) = (
            b.column(0).as_string::<i32>(),
            b.column(1).as_string::<i32>(),
        );
        for i in 0..b.num_rows() {
            if let (Some(&x), Some(&y)) = (index.get(a.value(i)), index.get(c.value(i))) {
                out.push((x, y));
            }
        }
    }
    let _ = ctx.deregister_table("unify_cluster_members");
    Ok(out)
}

/// Build the clusters holding a vetoed pair again from their `links` (record positions and
/// match weight), strongest first, refusing a link that would put a vetoed pair in one
/// cluster. Returns the links kept (all links of other clusters unchanged) and what was done.
pub fn split(
    cluster_of: &[u32],
    links: &[(u32, u32, f64)],
    vetoed: &[(u32, u32)],
) -> (Vec<(u32, u32)>, Split) {
    let flagged: HashSet<u32> = vetoed
        .iter()
        .map(|(a, _)| cluster_of[*a as usize])
        .collect();
    let mut kept: Vec<(u32, u32)> = Vec::with_capacity(links.len());
    let mut inside: Vec<(u32, u32, f64)> = Vec::new();
    for &(a, b, w) in links {
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
    let mut uf = UnionFind::new(cluster_of.len());
    let mut dropped = 0u64;
    let mut split_clusters: HashSet<u32> = HashSet::new();
    for (a, b, _) in inside {
        let (ra, rb) = (uf.find(a), uf.find(b));
        if ra == rb {
            kept.push((a, b));
            continue;
        }
        let spans = vetoed.iter().any(|&(x, y)| {
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

/// Split the clusters of `cluster_of` that hold a pair `section`'s vetoes rule out; returns
/// the links to build the components from, or None when no cluster holds one.
pub async fn split_vetoed(
    ctx: &SessionContext,
    section: &ProbabilisticSection,
    uids: &StringArray,
    cluster_of: &[u32],
    links: &[(u32, u32, f64)],
    max_size: usize,
) -> Result<Option<(Vec<(u32, u32)>, Split)>> {
    let vetoed = vetoed_pairs(ctx, section, uids, cluster_of, max_size).await?;
    if vetoed.is_empty() {
        return Ok(None);
    }
    Ok(Some(split(cluster_of, links, &vetoed)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records 0 and 2 are vetoed apart (two birth dates); 1 matches both, more strongly 0.
    /// The chain 0–1–2 is cut at its weaker link; record 3, linked to 2 only, stays with 2.
    #[test]
    fn a_chain_through_a_vetoed_pair_is_cut_at_its_weakest_link() {
        let cluster_of = vec![0, 0, 0, 0, 1, 1];
        let links = vec![(0, 1, 20.0), (1, 2, 8.0), (2, 3, 15.0), (4, 5, 3.0)];
        let (kept, done) = split(&cluster_of, &links, &[(0, 2)]);
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
        let mut reversed = links.clone();
        reversed.reverse();
        let (again, _) = split(&cluster_of, &reversed, &[(0, 2)]);
        assert_eq!(again.into_iter().collect::<HashSet<_>>(), kept);
    }

    /// A link inside an already joined part is kept even if weaker than a refused one.
    #[test]
    fn links_within_one_part_are_kept() {
        let cluster_of = vec![0, 0, 0];
        let links = vec![(0, 1, 10.0), (1, 2, 9.0), (0, 2, 1.0)];
        let (kept, done) = split(&cluster_of, &links, &[(1, 2)]);
        let kept: HashSet<(u32, u32)> = kept.into_iter().collect();
        assert_eq!(kept, HashSet::from([(0, 1)]));
        assert_eq!(done.links_dropped, 2);
    }
}
