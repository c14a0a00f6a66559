UNION ALL
SELECT 'matched' AS kind, rule, count(*) AS pairs FROM match_pairs GROUP BY rule
