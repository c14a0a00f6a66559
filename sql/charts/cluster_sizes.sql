-- Customers by the number of source records they were made of.
SELECT size AS records, count(*) AS customers
FROM (SELECT customer_id, count(*) AS size FROM customer_links GROUP BY customer_id)
GROUP BY size
ORDER BY size
