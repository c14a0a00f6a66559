//! Clusters of matched records (connected components, by union-find) and the stable customer
//! ids they are given: a cluster keeps the id of the previous run's cluster it overlaps most,
//! so adding one record never renumbers anyone else.

use std::collections::HashMap;

/// Union-find over dense indices, with path halving and union by size.
pub struct UnionFind {
    parent: Vec<u32>,
    size: Vec<u32>,
}

impl UnionFind {
    pub fn new(n: usize) -> Self {
        UnionFind {
            parent: (0..n as u32).collect(),
            size: vec![1; n],
        }
    }

    pub fn find(&mut self, mut x: u32) -> u32 {
        while self.parent[x as usize] != x {
            let p = self.parent[x as usize];
            self.parent[x as usize] = self.parent[p as usize];
            x = p;
        }
        x
    }

    pub fn union(&mut self, a: u32, b: u32) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra == rb {
            return;
        }
        let (big, small) = if self.size[ra as usize] >= self.size[rb as usize] {
            (ra, rb)
        } else {
            (rb, ra)
        };
        self.parent[small as usize] = big;
        self.size[big as usize] += self.size[small as usize];
    }
}

/// Cluster number (0-based, ordered by each cluster's smallest uid) for every uid.
/// `uids` must be sorted and unique; edges name uids by position.
pub fn components(n: usize, edges: impl Iterator<Item = (u32, u32)>) -> Vec<u32> {
    let mut uf = UnionFind::new(n);
    for (a, b) in edges {
        uf.union(a, b);
    }
    let mut number: HashMap<u32, u32> = HashMap::new();
    let mut out = Vec::with_capacity(n);
    for i in 0..n as u32 {
        let root = uf.find(i);
        let next = number.len() as u32;
        out.push(*number.entry(root).or_insert(next));
    }
    out
}

/// How an id changed between runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdChange {
    pub customer_id: String,
    pub previous_customer_id: String,
    /// `merged`: the previous customer's records now belong to `customer_id`;
    /// `split`: `customer_id` is new, made of records that belonged to the previous customer.
    pub change: &'static str,
    pub records: u64,
}

/// Format of customer ids: sortable, and never reused.
pub fn format_id(n: u64) -> String {
    format!("{CUSTOMER}{n:09}")
}

/// The number of an id made by [`format_id`].
pub fn parse_id(id: &str) -> Option<u64> {
    parse_prefixed(CUSTOMER, id)
}

/// Prefix of customer ids.
pub const CUSTOMER: &str = "cus_";
/// Prefix of account ids.
pub const ACCOUNT: &str = "acc_";

/// The number of an id `<prefix><number>`.
pub fn parse_prefixed(prefix: &str, id: &str) -> Option<u64> {
    id.strip_prefix(prefix)?.parse().ok()
}

/// Give each cluster a customer id. `previous[i]` is record i's id in the previous run, if
/// any. Returns the id per cluster and the changes.
pub fn assign_ids(
    cluster_of: &[u32],
    previous: &[Option<&str>],
    previous_max: u64,
) -> (Vec<String>, Vec<IdChange>) {
    assign_prefixed_ids(CUSTOMER, cluster_of, previous, previous_max)
}

/// [`assign_ids`] for ids with another prefix (accounts).
pub fn assign_prefixed_ids(
    prefix: &str,
    cluster_of: &[u32],
    previous: &[Option<&str>],
    previous_max: u64,
) -> (Vec<String>, Vec<IdChange>) {
    let mut names: Vec<String> = Vec::new();
    let mut number: HashMap<&str, u32> = HashMap::new();
    let interned: Vec<Option<u32>> = previous
        .iter()
        .map(|p| {
            p.map(|p| {
                *number.entry(p).or_insert_with(|| {
                    names.push(p.to_string());
                    names.len() as u32 - 1
                })
            })
        })
        .collect();
    assign_interned_ids(prefix, cluster_of, &interned, &names, previous_max)
}

/// [`assign_prefixed_ids`] with previous ids given as positions in `names` (a million
/// records share a few hundred thousand ids: no string per record).
pub fn assign_interned_ids(
    prefix: &str,
    cluster_of: &[u32],
    previous: &[Option<u32>],
    names: &[String],
    previous_max: u64,
) -> (Vec<String>, Vec<IdChange>) {
    let clusters = cluster_of
        .iter()
        .map(|c| *c as usize + 1)
        .max()
        .unwrap_or(0);
    // Overlap counts: (cluster, previous id) -> records.
    let mut overlap: HashMap<(u32, u32), u64> = HashMap::new();
    for (c, p) in cluster_of.iter().zip(previous) {
        if let Some(p) = p {
            *overlap.entry((*c, *p)).or_default() += 1;
        }
    }
    // Largest overlaps claim first; ties go to the older (smaller) id, then the lower cluster.
    let mut candidates: Vec<((u32, u32), u64)> = overlap.iter().map(|(k, v)| (*k, *v)).collect();
    candidates.sort_unstable_by(|a, b| {
        b.1.cmp(&a.1)
            .then_with(|| names[a.0 .1 as usize].cmp(&names[b.0 .1 as usize]))
            .then(a.0 .0.cmp(&b.0 .0))
    });
    let mut ids: Vec<Option<u32>> = vec![None; clusters];
    let mut claimed: Vec<bool> = vec![false; names.len()];
    for ((c, p), _) in &candidates {
        if ids[*c as usize].is_none() && !claimed[*p as usize] {
            ids[*c as usize] = Some(*p);
            claimed[*p as usize] = true;
        }
    }
    let mut next = previous_max.max(
        names
            .iter()
            .filter_map(|p| parse_prefixed(prefix, p))
            .max()
            .unwrap_or(0),
    ) + 1;
    let ids: Vec<String> = ids
        .into_iter()
        .map(|id| match id {
            Some(p) => names[p as usize].clone(),
            None => {
                let id = format!("{prefix}{next:09}");
                next += 1;
                id
            }
        })
        .collect();
    let mut moved: Vec<((u32, u32), u64)> = overlap
        .into_iter()
        .filter(|((c, p), _)| ids[*c as usize] != names[*p as usize])
        .collect();
    moved.sort_unstable_by(|a, b| {
        a.0 .0
            .cmp(&b.0 .0)
            .then_with(|| names[a.0 .1 as usize].cmp(&names[b.0 .1 as usize]))
    });
    let changes = moved
        .into_iter()
        .map(|((c, p), n)| IdChange {
            customer_id: ids[c as usize].clone(),
            previous_customer_id: names[p as usize].clone(),
            change: if claimed[p as usize] {
                "split"
            } else {
                "merged"
            },
            records: n,
        })
        .collect();
    (ids, changes)
}

/// Per cluster: whether it is exactly a previous customer — the same id, the same records,
/// none of them touched — so that its profile is as before and need not be merged again.
pub fn unchanged(
    cluster_of: &[u32],
    ids: &[String],
    previous: &[Option<u32>],
    names: &[String],
    touched: &[bool],
    previous_sizes: &[u64],
) -> Vec<bool> {
    let mut ok = vec![true; ids.len()];
    let mut before: Vec<Option<u32>> = vec![None; ids.len()];
    let mut count = vec![0u64; ids.len()];
    for (i, c) in cluster_of.iter().enumerate() {
        let c = *c as usize;
        count[c] += 1;
        match previous[i] {
            Some(p) if !touched[i] && before[c].is_none_or(|b| b == p) => before[c] = Some(p),
            _ => ok[c] = false,
        }
    }
    (0..ids.len())
        .map(|c| {
            ok[c]
                && before[c].is_some_and(|p| {
                    names[p as usize] == ids[c] && previous_sizes[p as usize] == count[c]
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unchanged_clusters_are_whole_untouched_previous_customers() {
        let (a, b) = (0u32, 1u32);
        let names = vec!["cus_000000001".to_string(), "cus_000000002".to_string()];
        let sizes = [2u64, 2];
        let ids = names.clone();
        // Both as before.
        let prev = [Some(a), Some(a), Some(b), Some(b)];
        let all = unchanged(&[0, 0, 1, 1], &ids, &prev, &names, &[false; 4], &sizes);
        assert_eq!(all, vec![true, true]);
        // A touched record, or a record of b deleted (b now has one record), or a new one.
        let touched = unchanged(
            &[0, 0, 1, 1],
            &ids,
            &prev,
            &names,
            &[false, true, false, false],
            &sizes,
        );
        assert_eq!(touched, vec![false, true]);
        let shrunk = unchanged(&[0, 0, 1], &ids, &prev[..3], &names, &[false; 3], &sizes);
        assert_eq!(shrunk, vec![true, false]);
        let grown = unchanged(
            &[0, 0, 1, 1, 1],
            &ids,
            &[Some(a), Some(a), Some(b), Some(b), None],
            &names,
            &[false; 5],
            &sizes,
        );
        assert_eq!(grown, vec![true, false]);
    }

    #[test]
    fn components_number_by_first_member() {
        let c = components(5, [(3u32, 4u32), (0, 3)].into_iter());
        assert_eq!(c, vec![0, 1, 2, 0, 0]);
    }

    #[test]
    fn ids_survive_a_new_record() {
        // Run 1: records a,b together; c alone.
        let (ids1, ch1) = assign_ids(&[0, 0, 1], &[None, None, None], 0);
        assert_eq!(ids1, vec!["cus_000000001", "cus_000000002"]);
        assert!(ch1.is_empty());
        // Run 2: a new record d joins c; a new record e is alone. Nobody is renumbered.
        let prev = [
            Some("cus_000000001"),
            Some("cus_000000001"),
            Some("cus_000000002"),
            None,
            None,
        ];
        let (ids2, ch2) = assign_ids(&[0, 0, 1, 1, 2], &prev, 2);
        assert_eq!(
            ids2,
            vec!["cus_000000001", "cus_000000002", "cus_000000003"]
        );
        assert!(ch2.is_empty());
    }

    #[test]
    fn ids_are_never_reused() {
        // cus_000000002 existed but its only record is gone; the new cluster must not get it.
        let prev = [Some("cus_000000001"), None];
        let (ids, _) = assign_ids(&[0, 1], &prev, 2);
        assert_eq!(ids, vec!["cus_000000001", "cus_000000003"]);
        assert_eq!(parse_id("cus_000000003"), Some(3));
        assert_eq!(parse_id("C0000003"), None);
    }

    #[test]
    fn merges_and_splits_are_recorded() {
        // Previous: {a,b}=1, {c}=2. Now {a,b,c} merged.
        let prev = [
            Some("cus_000000001"),
            Some("cus_000000001"),
            Some("cus_000000002"),
        ];
        let (ids, ch) = assign_ids(&[0, 0, 0], &prev, 2);
        assert_eq!(ids, vec!["cus_000000001"]);
        assert_eq!(
            ch,
            vec![IdChange {
                customer_id: "cus_000000001".into(),
                previous_customer_id: "cus_000000002".into(),
                change: "merged",
                records: 1
            }]
        );
        // Previous: {a,b,c}=1. Now {a,b} and {c}: the bigger part keeps the id.
        let prev = [Some("cus_000000001"); 3];
        let (ids, ch) = assign_ids(&[0, 0, 1], &prev, 1);
        assert_eq!(ids, vec!["cus_000000001", "cus_000000002"]);
        assert_eq!(
            ch,
            vec![IdChange {
                customer_id: "cus_000000002".into(),
                previous_customer_id: "cus_000000001".into(),
                change: "split",
                records: 1
            }]
        );
    }
}
