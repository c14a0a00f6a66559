-- Recommendations for the customers of `customers`: their similar items (`similar`, rows of
-- similar_items.sql), filled up to `k` with the most bought items they did not get yet
-- (skipping what they bought when the config asks, `not_bought_f`), and the `k` most bought
-- items for customers who never bought. Popular scores are scaled under 1e-6 so they rank
-- below any similar item.
WITH ic AS (SELECT item, count(*) AS n FROM {purchases} GROUP BY item),
sim_n AS (SELECT customer_id, count(*) AS n FROM {similar} GROUP BY customer_id),
bought_n AS (SELECT customer_id, count(*) AS n FROM {purchases} GROUP BY customer_id),
popular_items AS (SELECT item, n, row_number() OVER (ORDER BY n DESC, item) AS pr FROM ic),
top AS (SELECT CAST(max(n) AS DOUBLE) AS n FROM ic),
needy AS (
  SELECT b.customer_id, {k} - coalesce(s.n, 0) AS need, coalesce(s.n, 0) AS have,
         {k} + coalesce(s.n, 0) + {bought_slack} AS reach
  FROM bought_n b JOIN {customers} c ON c.customer_id = b.customer_id
  LEFT JOIN sim_n s ON s.customer_id = b.customer_id
  WHERE coalesce(s.n, 0) < {k}
),
fill_cand AS (
  SELECT d.customer_id, d.need, d.have, p.item, p.n
  FROM needy d JOIN popular_items p ON p.pr <= d.reach
),
fill_kept AS (
  SELECT f.* FROM fill_cand f
  LEFT JOIN {similar} already ON already.customer_id = f.customer_id AND already.item = f.item
  WHERE {not_bought_f} AND already.item IS NULL
),
fill AS (
  SELECT customer_id, CAST(have + r AS INT) AS rank, item,
         CAST(n AS DOUBLE) / (SELECT n FROM top) * 1e-6 AS score, 'popular' AS reason
  FROM (SELECT *, row_number() OVER (PARTITION BY customer_id ORDER BY n DESC, item) AS r FROM fill_kept)
  WHERE r <= need
),
never_bought AS (
  SELECT c.customer_id, CAST(p.pr AS INT) AS rank, p.item,
         CAST(p.n AS DOUBLE) / (SELECT n FROM top) * 1e-6 AS score, 'popular' AS reason
  FROM {customers} c LEFT JOIN bought_n b ON b.customer_id = c.customer_id
  CROSS JOIN (SELECT * FROM popular_items WHERE pr <= {k}) p
  WHERE b.customer_id IS NULL
)
SELECT s.customer_id, CAST(s.r AS INT) AS rank, s.item, s.score, s.reason
FROM {similar} s JOIN {customers} c ON c.customer_id = s.customer_id
UNION ALL SELECT * FROM fill
UNION ALL SELECT * FROM never_bought
