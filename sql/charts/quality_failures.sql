-- Failed expectations per run and severity.
SELECT run_id, severity,
       CAST(sum(CASE WHEN passed THEN 0 ELSE 1 END) AS BIGINT) AS failed,
       count(*) AS checks
FROM data_quality
GROUP BY run_id, severity
ORDER BY run_id, severity
