-- Customers by value of one numeric measure (`column`) in 30 equal bins; NULLs left out.
WITH v AS (SELECT CAST({column} AS DOUBLE) AS x FROM customer_measures
           WHERE CAST({column} AS DOUBLE) IS NOT NULL),
     r AS (SELECT min(x) AS lo, max(x) AS hi FROM v)
SELECT {measure} AS measure,
       lo + (hi - lo) / 30.0 * b AS bin_start,
       lo + (hi - lo) / 30.0 * (b + 1) AS bin_end,
       count(*) AS customers
FROM (SELECT CASE WHEN r.hi = r.lo THEN 0
                  ELSE least(CAST(floor((x - r.lo) / ((r.hi - r.lo) / 30.0)) AS BIGINT), 29)
             END AS b,
             r.lo, r.hi
      FROM v CROSS JOIN r)
GROUP BY b, lo, hi
ORDER BY b
