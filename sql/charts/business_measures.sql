-- Each business measure (the totals, not the breakdowns) at each run.
SELECT run_id, CAST(as_of AS VARCHAR) AS as_of, measure, value
FROM measure_history
WHERE by_value IS NULL AND value IS NOT NULL
ORDER BY measure, run_id
