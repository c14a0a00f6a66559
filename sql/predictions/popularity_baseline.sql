-- The recommendations' baseline: the `k` most popular training items for every held-out
-- customer (`pop` candidates, so `k` are left when `not_bought` drops what the customer bought),
-- and how many of the held-out purchases they hit.
WITH ic AS (SELECT item, count(*) AS n FROM reco_train GROUP BY item),
cand AS (
  SELECT c.customer_id, p.item, p.n
  FROM reco_eval_customers c
  CROSS JOIN (SELECT item, n FROM ic ORDER BY n DESC, item LIMIT {pop}) p
),
kept AS (SELECT c.* FROM cand c WHERE {not_bought}),
recs AS (
  SELECT customer_id, item
  FROM (SELECT *, row_number() OVER (PARTITION BY customer_id ORDER BY n DESC, item) AS r FROM kept)
  WHERE r <= {k}
)
SELECT CAST(count(*) AS DOUBLE) AS customers, CAST(count(r.item) AS DOUBLE) AS hits
FROM reco_heldout h LEFT JOIN recs r ON r.customer_id = h.customer_id AND r.item = h.item
