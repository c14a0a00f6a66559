-- The most valuable x% of customers hold y% of the predicted value (the 80/20 curve).
SELECT pct_customers, max(cum) / max(total) AS share_of_value
FROM (SELECT CAST(ceil(100.0 * row_number() OVER (ORDER BY clv DESC, customer_id) / count(*) OVER ())
                  AS BIGINT) AS pct_customers,
             sum(clv) OVER (ORDER BY clv DESC, customer_id ROWS UNBOUNDED PRECEDING) AS cum,
             sum(clv) OVER () AS total
      FROM predictions_clv
      WHERE clv IS NOT NULL)
GROUP BY pct_customers
ORDER BY pct_customers
