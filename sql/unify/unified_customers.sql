-- One profile per customer. Default precedence: the most trusted source (lowest priority
-- number) wins; the address (street, postcode, city) comes whole from one record, chosen the
-- same way; e-mail and phone from the most recently updated record that has one.
WITH merged AS (
  SELECT l.customer_id,
         by_priority(r.raw_first_name, r.source_priority) AS first_name,
         by_priority(r.raw_last_name, r.source_priority) AS last_name,
         most_recent(r.raw_email, r.updated_at) AS email,
         most_recent(r.email, r.updated_at) AS email_normalized,
         most_recent(r.raw_phone, r.updated_at) AS phone,
         most_recent(r.phone, r.updated_at) AS phone_e164,
         by_priority(r.uid, r.source_priority)
           FILTER (WHERE r.raw_street IS NOT NULL OR r.raw_postcode IS NOT NULL) AS address_uid,
         by_priority(r.country, r.source_priority) AS country,
         by_priority(r.birth_date, r.source_priority) AS birth_date,
         by_priority(r.gender, r.source_priority) AS gender,
         most_filled(r.raw_company) AS company,
         count(*) AS record_count,
         min(r.updated_at) AS first_seen,
         max(r.updated_at) AS last_seen
  FROM customer_links l JOIN unify_records r ON r.uid = l.uid
  GROUP BY l.customer_id
),
-- count(DISTINCT) per group is slow with a million groups (a hash set each): count distinct
-- (customer, source) pairs instead.
sources AS (
  SELECT customer_id, count(*) AS source_count
  FROM (SELECT DISTINCT customer_id, source FROM customer_links)
  GROUP BY customer_id
)
SELECT m.customer_id, m.first_name, m.last_name, m.email, m.email_normalized, m.phone, m.phone_e164,
       a.raw_street AS street, a.raw_postcode AS postcode, a.raw_city AS city,
       m.country, m.birth_date, m.gender, m.company,
       s.source_count, m.record_count, m.first_seen, m.last_seen
FROM merged m
JOIN sources s ON s.customer_id = m.customer_id
LEFT JOIN unify_records a ON a.uid = m.address_uid
