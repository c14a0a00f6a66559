-- Customers who entered (positive) and left (negative) the chosen segments at each run.
SELECT run_id, segment, 'entered' AS change, entered AS customers
FROM segment_sizes WHERE segment IN ({segments})
UNION ALL
SELECT run_id, segment, 'left', -exited
FROM segment_sizes WHERE segment IN ({segments})
ORDER BY 1, 2, 3
