-- Records per source, matched (joined a customer with other records) or alone.
SELECT source,
       CASE WHEN matched_by = 'singleton' THEN 'singleton' ELSE 'matched' END AS status,
       count(*) AS records
FROM customer_links
GROUP BY 1, 2
ORDER BY 1, 2
