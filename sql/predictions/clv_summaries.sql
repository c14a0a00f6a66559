-- Purchase days per customer before the cutoff, summarized for BG/NBD and Gamma-Gamma: repeat
-- purchases x, the time of the last one t_x and the customer's age T (in `unit` days), and the
-- mean repeat value m. Several purchases on one day count as one, as in the papers.
WITH tx AS (
  SELECT customer_id, date_trunc('day', ts) AS day, sum(CAST(amount AS DOUBLE)) AS amount
  FROM activities
  WHERE ({purchases}) AND customer_id IS NOT NULL AND ts < CAST({cutoff} AS TIMESTAMP)
  GROUP BY customer_id, date_trunc('day', ts)
)
SELECT customer_id,
       CAST(count(*) - 1 AS DOUBLE) AS x,
       (extract(epoch FROM max(day)) - extract(epoch FROM min(day))) / 86400.0 / {unit} AS t_x,
       (extract(epoch FROM CAST({cutoff} AS TIMESTAMP)) - extract(epoch FROM min(day))) / 86400.0 / {unit} AS t,
       CASE WHEN count(*) > 1
            THEN (coalesce(sum(amount), 0) - coalesce(first_value(amount ORDER BY day), 0)) / (count(*) - 1)
            ELSE 0 END AS m
FROM tx
GROUP BY customer_id
ORDER BY customer_id
