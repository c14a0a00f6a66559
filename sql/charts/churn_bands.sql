-- Customers per churn risk band, low to high.
SELECT churn_risk, count(*) AS customers,
       CASE churn_risk WHEN 'low' THEN 0 WHEN 'medium' THEN 1 ELSE 2 END AS band_order
FROM predictions_churn
GROUP BY churn_risk
ORDER BY band_order
