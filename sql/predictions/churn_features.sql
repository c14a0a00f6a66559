-- Churn features of every buyer before the cutoff: recency, frequency, monetary value and
-- tenure over purchase days (a day's purchases count once), activity in the 90 days before
-- the cutoff and days since any activity. `purchases` is the config's purchase predicate.
WITH p AS (
  SELECT customer_id, date_trunc('day', ts) AS day, sum(CAST(amount AS DOUBLE)) AS amount
  FROM activities
  WHERE ({purchases}) AND customer_id IS NOT NULL AND ts < CAST({cutoff} AS TIMESTAMP)
  GROUP BY 1, 2
),
f AS (
  SELECT customer_id,
         (extract(epoch FROM CAST({cutoff} AS TIMESTAMP)) - extract(epoch FROM max(day))) / 86400.0 AS recency_days,
         CAST(count(*) AS DOUBLE) AS frequency,
         coalesce(avg(amount), 0) AS monetary,
         (extract(epoch FROM CAST({cutoff} AS TIMESTAMP)) - extract(epoch FROM min(day))) / 86400.0 AS tenure_days
  FROM p GROUP BY customer_id
),
a AS (
  SELECT customer_id,
         CAST(count(*) FILTER (WHERE ts >= CAST({cutoff} AS TIMESTAMP) - INTERVAL '90 days') AS DOUBLE) AS activity_90d,
         (extract(epoch FROM CAST({cutoff} AS TIMESTAMP)) - extract(epoch FROM max(ts))) / 86400.0 AS days_since_activity
  FROM activities
  WHERE customer_id IS NOT NULL AND ts < CAST({cutoff} AS TIMESTAMP)
  GROUP BY customer_id
)
SELECT f.customer_id, f.recency_days, f.frequency, f.monetary, f.tenure_days,
       coalesce(a.activity_90d, 0) AS activity_90d,
       coalesce(a.days_since_activity, f.recency_days) AS days_since_activity
FROM f LEFT JOIN a ON a.customer_id = f.customer_id
ORDER BY f.customer_id
