-- The figure each expectation compares, at each run.
SELECT run_id, expectation, "check", severity, passed, observed_value, observed
FROM data_quality
WHERE observed_value IS NOT NULL
ORDER BY expectation, run_id
