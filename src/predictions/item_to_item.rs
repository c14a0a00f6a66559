//! Item-to-item recommendations for one customer at a time: the catalogue (each item's nearest
//! items by co-purchase cosine, and the items by popularity) held in memory, and a customer's
//! purchases turned into their top `k` — similar items first, filled up with popular ones.
//!
//! Why not SQL: the join of every purchase with its item's neighbours, the sum per customer
//! and item and the rank per customer were 19.5 M rows through a hash join, a hash aggregate,
//! a sort and a window at 1M demo people (7.6 s for one of the stage's two passes, 1.1 GB),
//! and at 10M the stage ran out of its memory pool. Here a customer's candidates are summed
//! in a dense array over the catalogue (one add per neighbour of each purchase) and ranked on
//! their own; the only data-sized step left is the engine's grouping of the purchases by
//! customer. The scores and ranks are those of the SQL this replaced (`tests/predictions.rs`
//! checks them by hand).

use std::collections::HashMap;

/// The items, their nearest neighbours and their popularity.
pub(super) struct Catalogue {
    names: Vec<String>,
    ids: HashMap<String, u32>,
    /// Per item: its nearest items and their cosine, best first.
    neighbours: Vec<Vec<(u32, f64)>>,
    /// Items by buyers, most first (ties by name), with the score a popular pick gets.
    popular: Vec<(u32, f64)>,
}

impl Catalogue {
    /// The catalogue of items bought by `buyers[i].1` customers each, with the neighbour
    /// rows `(item, neighbour, cosine)`; neighbours that are not items are left out.
    pub(super) fn new(buyers: Vec<(String, i64)>, neighbours: Vec<(String, String, f64)>) -> Self {
        let mut buyers = buyers;
        buyers.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let top = buyers.first().map_or(1, |b| b.1) as f64;
        let names: Vec<String> = buyers.iter().map(|b| b.0.clone()).collect();
        let ids: HashMap<String, u32> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i as u32))
            .collect();
        // Popular picks rank below any similar item: scaled under 1e-6.
        let popular = buyers
            .iter()
            .enumerate()
            .map(|(i, b)| (i as u32, b.1 as f64 / top * 1e-6))
            .collect();
        let mut lists = vec![Vec::new(); names.len()];
        for (i, j, s) in neighbours {
            if let (Some(&i), Some(&j)) = (ids.get(&i), ids.get(&j)) {
                lists[i as usize].push((j, s));
            }
        }
        for list in &mut lists {
            list.sort_by(|a: &(u32, f64), b| {
                b.1.total_cmp(&a.1)
                    .then_with(|| names[a.0 as usize].cmp(&names[b.0 as usize]))
            });
        }
        Catalogue {
            names,
            ids,
            neighbours: lists,
            popular,
        }
    }

    pub(super) fn id(&self, item: &str) -> Option<u32> {
        self.ids.get(item).copied()
    }

    pub(super) fn name(&self, id: u32) -> &str {
        &self.names[id as usize]
    }
}

/// Why an item is recommended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Reason {
    Similar,
    Popular,
}

impl Reason {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Reason::Similar => "similar",
            Reason::Popular => "popular",
        }
    }
}

/// One recommended item; its rank is its place in the list.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Pick {
    pub item: u32,
    pub score: f64,
    pub reason: Reason,
}

/// Recommends for one customer after another, reusing its scratch arrays.
pub(super) struct Recommender<'a> {
    catalogue: &'a Catalogue,
    k: usize,
    exclude_bought: bool,
    /// Summed similarity per item, and the items with a sum (to reset only those).
    sums: Vec<f64>,
    touched: Vec<u32>,
    /// Items the customer bought, and items already picked.
    bought: Vec<bool>,
    picked: Vec<bool>,
}

impl<'a> Recommender<'a> {
    pub(super) fn new(catalogue: &'a Catalogue, k: u32, exclude_bought: bool) -> Self {
        let n = catalogue.names.len();
        Recommender {
            catalogue,
            k: k as usize,
            exclude_bought,
            sums: vec![0.0; n],
            touched: Vec::new(),
            bought: vec![false; n],
            picked: vec![false; n],
        }
    }

    /// The customer's recommendations into `out` (cleared first): the `k` items with the most
    /// summed similarity to what they bought (`bought`, in a fixed order so the sums are the
    /// same every run), then the most popular items they did not get, up to `k`. Ranked by
    /// score to 9 decimals, ties by item name.
    pub(super) fn recommend(&mut self, bought: &[u32], out: &mut Vec<Pick>) {
        out.clear();
        let cat = self.catalogue;
        for &i in bought {
            for &(j, s) in &cat.neighbours[i as usize] {
                // `picked` marks the touched items while summing (reset below).
                if !self.picked[j as usize] {
                    self.picked[j as usize] = true;
                    self.touched.push(j);
                }
                self.sums[j as usize] += s;
            }
        }
        for &i in bought {
            self.bought[i as usize] = true;
        }
        let mut candidates: Vec<(u32, f64)> = self
            .touched
            .iter()
            .filter(|&&j| !(self.exclude_bought && self.bought[j as usize]))
            .map(|&j| (j, self.sums[j as usize]))
            .collect();
        candidates.sort_by(|a, b| {
            round9(b.1)
                .total_cmp(&round9(a.1))
                .then_with(|| cat.name(a.0).cmp(cat.name(b.0)))
        });
        for &j in &self.touched {
            self.sums[j as usize] = 0.0;
            self.picked[j as usize] = false;
        }
        self.touched.clear();
        for &(item, score) in candidates.iter().take(self.k) {
            self.picked[item as usize] = true;
            out.push(Pick {
                item,
                score,
                reason: Reason::Similar,
            });
        }
        let skip_bought = self.exclude_bought;
        for &(item, score) in &cat.popular {
            if out.len() >= self.k {
                break;
            }
            let i = item as usize;
            if self.picked[i] || (skip_bought && self.bought[i]) {
                continue;
            }
            out.push(Pick {
                item,
                score,
                reason: Reason::Popular,
            });
        }
        self.reset(bought, out);
    }

    /// The popularity baseline the model is graded against: the `k` most popular items the
    /// customer did not buy (when bought items are left out), among the `k + 20` most popular.
    pub(super) fn popular_only(&mut self, bought: &[u32], out: &mut Vec<Pick>) {
        out.clear();
        for &i in bought {
            self.bought[i as usize] = true;
        }
        for &(item, score) in self.catalogue.popular.iter().take(self.k + 20) {
            if out.len() >= self.k {
                break;
            }
            if self.exclude_bought && self.bought[item as usize] {
                continue;
            }
            out.push(Pick {
                item,
                score,
                reason: Reason::Popular,
            });
        }
        self.reset(bought, &[]);
    }

    fn reset(&mut self, bought: &[u32], picks: &[Pick]) {
        for &i in bought {
            self.bought[i as usize] = false;
        }
        for p in picks {
            self.picked[p.item as usize] = false;
        }
    }
}

/// `round(x, 9)` as DataFusion computes it, so ranks tie where the SQL's did.
fn round9(x: f64) -> f64 {
    let f = 10f64.powi(9);
    (x * f).round() / f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalogue() -> Catalogue {
        // Buyers: p1 3, p2 2, p3 2, p4 1 (the by-hand example of tests/predictions.rs).
        let buyers = [("p1", 3), ("p2", 2), ("p3", 2), ("p4", 1)]
            .iter()
            .map(|(n, c)| (n.to_string(), *c))
            .collect();
        let c = |a: f64, b: f64| a / (b).sqrt();
        let pairs = [
            ("p1", "p2", c(2.0, 6.0)),
            ("p2", "p1", c(2.0, 6.0)),
            ("p1", "p3", c(1.0, 6.0)),
            ("p3", "p1", c(1.0, 6.0)),
            ("p2", "p3", c(1.0, 4.0)),
            ("p3", "p2", c(1.0, 4.0)),
            ("p3", "p4", c(1.0, 2.0)),
            ("p4", "p3", c(1.0, 2.0)),
        ];
        let neighbours = pairs
            .iter()
            .map(|(i, j, s)| (i.to_string(), j.to_string(), *s))
            .collect();
        Catalogue::new(buyers, neighbours)
    }

    fn names(cat: &Catalogue, picks: &[Pick]) -> Vec<String> {
        picks
            .iter()
            .map(|p| format!("{}:{}", cat.name(p.item), p.reason.as_str()))
            .collect()
    }

    #[test]
    fn similar_items_first_then_popular_ones_never_what_was_bought() {
        let cat = catalogue();
        let mut r = Recommender::new(&cat, 3, true);
        let mut out = Vec::new();
        let bought = [cat.id("p1").unwrap(), cat.id("p2").unwrap()];
        r.recommend(&bought, &mut out);
        assert_eq!(names(&cat, &out), ["p3:similar", "p4:popular"]);
        assert!((out[0].score - (1.0 / 6f64.sqrt() + 0.5)).abs() < 1e-12);
        // The scratch arrays are clean for the next customer.
        r.recommend(&[cat.id("p1").unwrap()], &mut out);
        assert_eq!(
            names(&cat, &out),
            ["p2:similar", "p3:similar", "p4:popular"]
        );
        r.recommend(&[], &mut out);
        assert_eq!(
            names(&cat, &out),
            ["p1:popular", "p2:popular", "p3:popular"]
        );
        assert_eq!(out[0].score, 1e-6);
    }

    #[test]
    fn bought_items_stay_in_when_asked() {
        let cat = catalogue();
        let mut r = Recommender::new(&cat, 2, false);
        let mut out = Vec::new();
        r.recommend(&[cat.id("p3").unwrap(), cat.id("p4").unwrap()], &mut out);
        // p3's neighbours p4 (0.707), p2 (0.5), p1 (0.408); p4's: p3 (0.707).
        assert_eq!(names(&cat, &out), ["p3:similar", "p4:similar"]);
        r.popular_only(&[cat.id("p1").unwrap()], &mut out);
        assert_eq!(names(&cat, &out), ["p1:popular", "p2:popular"]);
        let mut r = Recommender::new(&cat, 2, true);
        r.popular_only(&[cat.id("p1").unwrap()], &mut out);
        assert_eq!(names(&cat, &out), ["p2:popular", "p3:popular"]);
    }

    #[test]
    fn equal_scores_rank_by_item_name() {
        let buyers = vec![
            ("b".to_string(), 1),
            ("a".to_string(), 1),
            ("c".to_string(), 1),
        ];
        let neighbours = vec![
            ("c".to_string(), "b".to_string(), 0.5),
            ("c".to_string(), "a".to_string(), 0.5 + 1e-12),
        ];
        let cat = Catalogue::new(buyers, neighbours);
        let mut r = Recommender::new(&cat, 2, true);
        let mut out = Vec::new();
        r.recommend(&[cat.id("c").unwrap()], &mut out);
        assert_eq!(names(&cat, &out), ["a:similar", "b:similar"]);
    }
}
