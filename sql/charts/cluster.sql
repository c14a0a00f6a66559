-- One customer's records (nodes) and the matches between them (the `links` parameter: cluster_links.sql).
SELECT 'node' AS kind, uid, CAST(NULL AS VARCHAR) AS target, uid AS source,
       source AS system, CAST(NULL AS DOUBLE) AS weight, record_id AS label,
       CAST(NULL AS VARCHAR) AS href
FROM customer_links
WHERE customer_id = {customer}
UNION ALL
{links}
