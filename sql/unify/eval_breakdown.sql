-- Where unification and the truth disagree, by which fields the two records share. Two kinds
-- of pair: `missed` (one person in the truth, two customers) and `false link` (one customer,
-- two persons in the truth). Pairs are enumerated (n·(n−1)/2 per customer and per person).
--   {agreement}            one column per compared field: '=' equal staged values, 'x' both
--                          filled and different, '.' missing on either side
--   {agreement_columns}    the same columns by name
--   {shares_blocking_key}  true when some blocking rule of the run has its whole key filled
--                          and equal on both sides (the pair was a candidate, unless its key
--                          was over `max_block_size`); NULL without a probabilistic model
--   {match_weight}         match_pairs.match_weight, or NULL in rules mode (no weights)
--   {top}                  patterns shown per kind
WITH j AS (
  SELECT r.*, l.customer_id, CAST(t.person_id AS VARCHAR) AS person_id
  FROM unify_records r
  JOIN customer_links l ON l.uid = r.uid
  JOIN truth t ON CAST(t.source AS VARCHAR) = l.source AND CAST(t.record_id AS VARCHAR) = l.record_id
),
wrong AS (
  SELECT 'missed' AS kind, a.uid AS left_uid, b.uid AS right_uid
  FROM j a JOIN j b ON a.person_id = b.person_id AND a.uid < b.uid AND a.customer_id <> b.customer_id
  UNION ALL
  SELECT 'false link' AS kind, a.uid AS left_uid, b.uid AS right_uid
  FROM j a JOIN j b ON a.customer_id = b.customer_id AND a.uid < b.uid AND a.person_id <> b.person_id
),
pairs AS (
  SELECT w.kind, w.left_uid, w.right_uid, {agreement}, {shares_blocking_key} AS shares_blocking_key
  FROM wrong w JOIN unify_records l ON l.uid = w.left_uid JOIN unify_records r ON r.uid = w.right_uid
),
scored AS (
  -- match_pairs holds every pair that was linked directly (left_uid < right_uid); a false
  -- link not among them joined its customer through other records.
  SELECT p.*, {match_weight} AS match_weight, m.left_uid IS NOT NULL AS linked_directly
  FROM pairs p LEFT JOIN match_pairs m ON m.left_uid = p.left_uid AND m.right_uid = p.right_uid
),
patterns AS (
  SELECT kind, {agreement_columns},
         count(*) AS pairs,
         count(*) FILTER (WHERE shares_blocking_key) AS sharing_a_blocking_key,
         count(*) FILTER (WHERE linked_directly) AS linked_directly,
         avg(match_weight) AS mean_match_weight,
         min(left_uid || ' ~ ' || right_uid) AS example
  FROM scored
  GROUP BY kind, {agreement_columns}
),
ranked AS (
  SELECT *, CAST(pairs AS DOUBLE) / sum(pairs) OVER (PARTITION BY kind) AS share_of_kind,
         row_number() OVER (PARTITION BY kind ORDER BY pairs DESC, example) AS pattern_rank
  FROM patterns
)
SELECT kind, pattern_rank, {agreement_columns}, pairs, share_of_kind, sharing_a_blocking_key,
       linked_directly, mean_match_weight, example
FROM ranked
WHERE pattern_rank <= {top}
ORDER BY kind DESC, pattern_rank
