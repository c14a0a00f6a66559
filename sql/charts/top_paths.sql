-- One configured funnel's ten most common paths, from its first step's condition to its
-- last's; the chart is the UNION ALL of every funnel.
SELECT *
FROM (SELECT {funnel} AS funnel, path, converted, customers, share
      FROM paths({from}, {to}, 6)
      ORDER BY customers DESC, path
      LIMIT 10)
