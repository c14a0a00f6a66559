-- The customers a segment-triggered journey messages now: members of the `trigger` segment
-- whose last entry is at least `wait` days before the run's as-of date, meeting the journey's
-- condition and not sent this journey before (`sent`), with the address column `address_to`
-- and the message's template variables (`columns`).
WITH entered AS (
  SELECT customer_id, max(as_of) AS entered_at
  FROM segment_history
  WHERE segment = {trigger} AND change = 'entered'
  GROUP BY customer_id
)
SELECT p.customer_id, CAST(e.entered_at AS VARCHAR) AS entered_at,
       CAST(p.{address_to} AS VARCHAR) AS address{columns}
FROM customer_profiles p
JOIN segment_members m ON m.customer_id = p.customer_id AND m.segment = {trigger}
JOIN entered e ON e.customer_id = p.customer_id
WHERE e.entered_at + INTERVAL '{wait} days' <= as_of() AND ({condition}) {sent}
ORDER BY p.customer_id
