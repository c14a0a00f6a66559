-- Each item's `neighbours` nearest items: items bought by the same customers, by the cosine of
-- their buyer sets (co-buyers / sqrt(buyers of one × buyers of the other)), ties by item.
-- The recommendations stage sums them per customer (src/predictions/item_to_item.rs).
WITH ic AS (SELECT item, count(*) AS n FROM {purchases} GROUP BY item),
pairs AS (
  SELECT a.item AS i, b.item AS j, count(*) AS co
  FROM {purchases} a JOIN {purchases} b ON a.customer_id = b.customer_id AND a.item <> b.item
  GROUP BY a.item, b.item
),
sim AS (
  SELECT p.i, p.j, CAST(p.co AS DOUBLE) / sqrt(CAST(ci.n AS DOUBLE) * CAST(cj.n AS DOUBLE)) AS s
  FROM pairs p JOIN ic ci ON ci.item = p.i JOIN ic cj ON cj.item = p.j
)
SELECT i, j, s
FROM (SELECT *, row_number() OVER (PARTITION BY i ORDER BY s DESC, j) AS r FROM sim)
WHERE r <= {neighbours}
