-- The customers made of most records, each linking to its cluster page.
SELECT customer_id, count(*) AS records, count(DISTINCT source) AS sources,
       '/console/cluster/' || customer_id AS link
FROM customer_links
GROUP BY customer_id
ORDER BY records DESC, customer_id
LIMIT 15
