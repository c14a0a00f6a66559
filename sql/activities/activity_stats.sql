-- Activities per activity and source: how many, how many resolved to a customer, how many to
-- an anonymous visitor's profile (`anon_`), and the time span.
SELECT activity_source, source,
       count(*) AS activities,
       count(customer_id) AS resolved,
       count(*) - count(customer_id) AS unresolved,
       sum(CASE WHEN starts_with(customer_id, 'anon_') THEN 1 ELSE 0 END) AS anonymous,
       min(ts) AS first_ts, max(ts) AS last_ts
FROM activities
GROUP BY activity_source, source
ORDER BY activity_source
