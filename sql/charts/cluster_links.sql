-- The matched pairs inside one customer, each linking to its explanation. Record ids are
-- `source:id`: nothing in them needs escaping in a query string. `weight` is the pair's
-- match weight when the run is probabilistic, else NULL.
SELECT 'link' AS kind, p.left_uid AS uid, p.right_uid AS target, p.left_uid AS source,
       CAST(NULL AS VARCHAR) AS system, {weight} AS weight, p.rule AS label,
       '/console/explain?left=' || p.left_uid || '&right=' || p.right_uid AS href
FROM match_pairs p
JOIN customer_links a ON a.uid = p.left_uid
JOIN customer_links b ON b.uid = p.right_uid
WHERE a.customer_id = {customer} AND b.customer_id = {customer}
