-- Predicted lifetime value per decile of customers (10 = most valuable).
SELECT clv_decile AS decile, count(*) AS customers, sum(clv) AS total_clv, avg(clv) AS mean_clv
FROM predictions_clv
WHERE clv IS NOT NULL
GROUP BY clv_decile
ORDER BY clv_decile
