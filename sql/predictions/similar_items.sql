-- Similar-item candidates: items bought by the same customers (cosine of co-purchase counts),
-- each item's `neighbours` most similar kept, summed over what a customer bought; the top `k`
-- per customer (`not_bought` drops what they bought when the config asks). Scores are ranked
-- to 9 decimals so that equal scores order by item wherever the query runs.
WITH ic AS (SELECT item, count(*) AS n FROM {purchases} GROUP BY item),
pairs AS (
  SELECT a.item AS i, b.item AS j, count(*) AS co
  FROM {purchases} a JOIN {purchases} b ON a.customer_id = b.customer_id AND a.item <> b.item
  GROUP BY a.item, b.item
),
sim AS (
  SELECT p.i, p.j, CAST(p.co AS DOUBLE) / sqrt(CAST(ci.n AS DOUBLE) * CAST(cj.n AS DOUBLE)) AS s
  FROM pairs p JOIN ic ci ON ci.item = p.i JOIN ic cj ON cj.item = p.j
),
nb AS (
  SELECT i, j, s
  FROM (SELECT *, row_number() OVER (PARTITION BY i ORDER BY s DESC, j) AS r FROM sim)
  WHERE r <= {neighbours}
),
similar AS (
  SELECT u.customer_id, nb.j AS item, sum(nb.s) AS score
  FROM {purchases} u JOIN nb ON nb.i = u.item
  GROUP BY u.customer_id, nb.j
),
similar_kept AS (SELECT s.* FROM similar s WHERE {not_bought})
SELECT customer_id, item, score, 'similar' AS reason, r
FROM (
  SELECT *, row_number() OVER (PARTITION BY customer_id ORDER BY round(score, 9) DESC, item) AS r
  FROM similar_kept
)
WHERE r <= {k}
