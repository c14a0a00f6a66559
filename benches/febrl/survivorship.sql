-- Survivorship on FEBRL3: how often a customer's merged value equals the original record's
-- ("rec-N-org"; the duplicates carry typos), for customers of three or more records.
-- panorama query -p <FEBRL3 project> "$(cat benches/febrl/survivorship.sql)"
SELECT count(*) AS entities,
       sum(CASE WHEN u.first_name = trim(o.given_name) THEN 1 ELSE 0 END) AS first_ok,
       sum(CASE WHEN u.last_name = trim(o.surname) THEN 1 ELSE 0 END) AS last_ok,
       sum(CASE WHEN u.birth_date = parse_date(trim(o.date_of_birth)) THEN 1 ELSE 0 END) AS birth_ok
FROM unified_customers u
JOIN customer_links l ON l.customer_id = u.customer_id
JOIN people o ON trim(o.rec_id) = l.record_id
WHERE trim(o.rec_id) LIKE '%-org' AND u.record_count > 2
