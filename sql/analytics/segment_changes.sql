-- Who entered and who left each segment since the previous run: one full join of this run's
-- members with the previous run's (of segments still defined) instead of two EXCEPTs; a
-- member on one side only entered or left.
SELECT coalesce(n.segment, p.segment) AS segment,
       coalesce(n.customer_id, p.customer_id) AS customer_id,
       CASE WHEN p.customer_id IS NULL THEN 'entered' ELSE 'left' END AS change
FROM segment_members n
FULL JOIN (
  SELECT CAST(segment AS VARCHAR) AS segment, CAST(customer_id AS VARCHAR) AS customer_id
  FROM previous_segment_members
  WHERE segment IN (SELECT segment FROM panorama_segment_catalog)
) p ON n.segment = p.segment AND n.customer_id = p.customer_id
WHERE n.customer_id IS NULL OR p.customer_id IS NULL
