-- Candidate pairs each blocking rule brought (from unify_stats) and, when the run kept
-- match_pairs, matches per rule (the `matched` parameter: rule_counts_matched.sql, or nothing).
SELECT 'compared' AS kind, substr(metric, 12) AS rule, CAST(value AS BIGINT) AS pairs
FROM unify_stats
WHERE metric LIKE 'pairs_rule:%'
{matched}
ORDER BY kind, pairs DESC
