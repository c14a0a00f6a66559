-- This run's size of each defined segment (0 when empty), how many entered and left it, and
-- its definition; `run` is the run's id.
SELECT {run} AS run_id, as_of() AS as_of, c.segment, c.kind,
       CAST(coalesce(n.members, 0) AS BIGINT) AS members,
       CAST(coalesce(e.entered, 0) AS BIGINT) AS entered,
       CAST(coalesce(e.exited, 0) AS BIGINT) AS exited,
       c.definition, c.description
FROM panorama_segment_catalog c
LEFT JOIN (SELECT segment, count(*) AS members FROM segment_members GROUP BY segment) n
  ON n.segment = c.segment
LEFT JOIN (
  SELECT segment,
         sum(CASE WHEN change = 'entered' THEN 1 ELSE 0 END) AS entered,
         sum(CASE WHEN change = 'left' THEN 1 ELSE 0 END) AS exited
  FROM panorama_segment_changes GROUP BY segment
) e ON e.segment = c.segment
