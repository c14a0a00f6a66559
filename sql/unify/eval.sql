-- Pairwise precision, recall and F1 against ground truth (source, record_id, person_id),
-- over the records present in both. Pairs are counted from cluster sizes, not enumerated.
WITH j AS (
  SELECT l.customer_id, CAST(t.person_id AS VARCHAR) AS person_id
  FROM customer_links l JOIN truth t
    ON CAST(t.source AS VARCHAR) = l.source AND CAST(t.record_id AS VARCHAR) = l.record_id
),
tp AS (SELECT sum(n * (n - 1) / 2) AS v FROM (SELECT count(*) AS n FROM j GROUP BY customer_id, person_id)),
pred AS (SELECT sum(n * (n - 1) / 2) AS v FROM (SELECT count(*) AS n FROM j GROUP BY customer_id)),
act AS (SELECT sum(n * (n - 1) / 2) AS v FROM (SELECT count(*) AS n FROM j GROUP BY person_id))
SELECT (SELECT count(*) FROM j) AS records,
       (SELECT count(DISTINCT person_id) FROM j) AS true_persons,
       (SELECT count(DISTINCT customer_id) FROM j) AS customers,
       tp.v AS true_pairs_found, pred.v AS predicted_pairs, act.v AS true_pairs,
       CAST(tp.v AS DOUBLE) / nullif(pred.v, 0) AS precision,
       CAST(tp.v AS DOUBLE) / nullif(act.v, 0) AS recall,
       2.0 * tp.v / nullif(pred.v + act.v, 0) AS f1
FROM tp, pred, act
