-- Candidate pairs after manual decisions (`unify.overrides`): never-match pairs removed,
-- always-match pairs added as rule `override` (rule_order -1: it wins over every rule).
SELECT c.left_uid, c.right_uid, c.rule, c.rule_order, c.score
FROM unify_candidates_by_rules c
LEFT JOIN (SELECT least(left_uid, right_uid) AS a, greatest(left_uid, right_uid) AS b
           FROM unify_overrides WHERE decision = 'no_match') n
  ON n.a = c.left_uid AND n.b = c.right_uid
WHERE n.a IS NULL
UNION ALL
SELECT least(left_uid, right_uid), greatest(left_uid, right_uid), 'override', CAST(-1 AS BIGINT), CAST(1.0 AS DOUBLE)
FROM unify_overrides WHERE decision = 'match'
