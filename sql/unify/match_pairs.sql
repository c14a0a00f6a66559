-- Candidate pairs from every rule, one row per record pair: the first rule (in config order)
-- that matched names the pair; the score is that rule's weakest fuzzy similarity.
SELECT left_uid, right_uid,
       first_value(rule ORDER BY rule_order) AS rule,
       first_value(score ORDER BY rule_order) AS score
FROM unify_candidates
GROUP BY left_uid, right_uid
