-- The "Paths to conversion" Sankey of the console's Journeys page and the run report: each
-- attribution's paths (attribution_paths, touchpoints only) as flows from the first touchpoint's
-- channel through the next ones (at most four) to `conversion` or `no conversion`.
--
-- Vega has no Sankey layout, so the layout is computed here and the chart only draws it:
-- * node rows (kind = 'node'): one per (step, channel), a bar at x = step from y to y2, its
--   height the paths through it; nodes of a step stacked largest first, a gap of 2% of the
--   attribution's paths between them;
-- * link rows (kind = 'link'): one band per (step, from, to), 17 points along an S-curve
--   (smoothstep) from its place at the source node to its place at the target node; bands
--   leave a node in the order of their targets and arrive in the order of their sources.
WITH paths AS (
  SELECT attribution, string_to_array(path, ' > ') AS channels, converted, count(*) AS n
  FROM attribution_paths WHERE touchpoints > 0
  GROUP BY attribution, path, converted
),
steps AS (
  SELECT attribution, channels, converted, n, CAST(least(cardinality(channels), 4) AS BIGINT) AS len,
         unnest(generate_series(1, CAST(least(cardinality(channels), 4) AS BIGINT))) AS k
  FROM paths
),
links AS (
  SELECT attribution, k AS step, channels[k] AS source,
         CASE WHEN k < len THEN channels[k + 1] WHEN converted THEN 'conversion' ELSE 'no conversion' END AS target,
         sum(n) AS customers
  FROM steps GROUP BY 1, 2, 3, 4
),
node_values AS (
  SELECT attribution, step, label, max(customers) AS customers FROM (
    SELECT attribution, step, source AS label, sum(customers) AS customers FROM links GROUP BY 1, 2, 3
    UNION ALL
    SELECT attribution, step + 1, target, sum(customers) FROM links GROUP BY 1, 2, 3
  ) GROUP BY 1, 2, 3
),
totals AS (
  SELECT attribution, sum(n) AS paths FROM paths GROUP BY attribution
),
nodes AS (
  SELECT v.attribution, v.step, v.label, v.customers,
         coalesce(sum(v.customers) OVER (PARTITION BY v.attribution, v.step ORDER BY v.customers DESC, v.label
                                         ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)
           + 0.02 * t.paths * (row_number() OVER (PARTITION BY v.attribution, v.step ORDER BY v.customers DESC, v.label) - 1) AS y
  FROM node_values v JOIN totals t ON t.attribution = v.attribution
),
placed AS (
  SELECT l.attribution, l.step, l.source, l.target, l.customers,
         s.y + coalesce(sum(l.customers) OVER (PARTITION BY l.attribution, l.step, l.source ORDER BY d.y, l.target
                                               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS sy,
         d.y + coalesce(sum(l.customers) OVER (PARTITION BY l.attribution, l.step, l.target ORDER BY s.y, l.source
                                               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS ty
  FROM links l
  JOIN nodes s ON s.attribution = l.attribution AND s.step = l.step AND s.label = l.source
  JOIN nodes d ON d.attribution = l.attribution AND d.step = l.step + 1 AND d.label = l.target
),
curve AS (
  SELECT CAST(i AS DOUBLE) / 16.0 AS t FROM (SELECT unnest(generate_series(CAST(0 AS BIGINT), CAST(16 AS BIGINT))) AS i)
)
SELECT attribution, 'node' AS kind, step, label, CAST(NULL AS VARCHAR) AS target, customers,
       CAST(step AS DOUBLE) - 0.04 AS x, CAST(step AS DOUBLE) + 0.04 AS x2,
       CAST(y AS DOUBLE) AS y, CAST(y + customers AS DOUBLE) AS y2
FROM nodes
UNION ALL
SELECT attribution, 'link', step, source, target, customers,
       step + 0.04 + c.t * 0.92, CAST(NULL AS DOUBLE),
       sy + (ty - sy) * (3 * c.t * c.t - 2 * c.t * c.t * c.t),
       sy + (ty - sy) * (3 * c.t * c.t - 2 * c.t * c.t * c.t) + customers
FROM placed CROSS JOIN curve c
ORDER BY attribution, kind DESC, step, label, target, x
