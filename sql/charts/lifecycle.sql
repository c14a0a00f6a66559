-- Customers per lifecycle stage, in lifecycle order (`stage_order`: one WHEN per stage).
SELECT segment AS stage, count(*) AS customers, CASE segment {stage_order} END AS stage_order
FROM segment_members
WHERE segment IN ({segments})
GROUP BY segment
ORDER BY stage_order
