-- Customers in exactly each combination of the chosen segments (UpSet-style).
SELECT combination, segment_count, count(*) AS customers
FROM (SELECT customer_id,
             string_agg(segment, ' & ' ORDER BY segment) AS combination,
             count(*) AS segment_count
      FROM segment_members
      WHERE segment IN ({segments})
      GROUP BY customer_id)
GROUP BY combination, segment_count
ORDER BY customers DESC, combination
LIMIT 30
