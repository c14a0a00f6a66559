-- The latest rectified value of each customer's field: a rectification names its records
-- (`source:record_id`, separated by chr(31)); the customer those records belong to now gets
-- the value, the most recent rectification of a field winning.
SELECT customer_id, field, value
FROM (
  SELECT l.customer_id, x.field, x.value,
         row_number() OVER (PARTITION BY l.customer_id, x.field ORDER BY x.rectified_at DESC) AS rn
  FROM (SELECT *, unnest(string_to_array(records, chr(31))) AS record FROM rectifications) x
  JOIN customer_links l ON l.source || ':' || l.record_id = x.record
)
WHERE rn = 1
