-- Members of the chosen segments at each run.
SELECT run_id, CAST(as_of AS VARCHAR) AS as_of, segment, members
FROM segment_sizes
WHERE segment IN ({segments})
ORDER BY run_id, segment
