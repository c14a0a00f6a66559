-- One profile per customer. `{field}` placeholders are merge aggregates chosen by
-- `[unify.merge]` (src/unify/merge.rs); by default the most trusted source (lowest priority
-- number) wins, e-mail and phone come from the most recently updated record that has one, and
-- the address (street, postcode, city) comes whole from one record, as one struct value (joining
-- the chosen record back instead took 8 s of 13 at 1M people).
-- `{records}` is `unify_linked` (each staged record with its customer_id and source_winner),
-- `{links}` is `customer_links`; each is one chunk of customers when merged in chunks.
WITH merged AS (
  SELECT r.customer_id,
         {first_name} AS first_name,
         {last_name} AS last_name,
         {email} AS email,
         {email_normalized} AS email_normalized,
         {phone} AS phone,
         {phone_e164} AS phone_e164,
         {address}
           FILTER (WHERE r.raw_street IS NOT NULL OR r.raw_postcode IS NOT NULL) AS address,
         {country} AS country,
         {birth_date} AS birth_date,
         {gender} AS gender,
         {company} AS company,
         count(*) AS record_count,
         min(r.updated_at) AS first_seen,
         max(r.updated_at) AS last_seen
  FROM {records} r
  GROUP BY r.customer_id
),
-- count(DISTINCT) per group is slow with a million groups (a hash set each): count distinct
-- (customer, source) pairs instead.
sources AS (
  SELECT customer_id, count(*) AS source_count
  FROM (SELECT DISTINCT customer_id, source FROM {links})
  GROUP BY customer_id
)
SELECT m.customer_id, m.first_name, m.last_name, m.email, m.email_normalized, m.phone, m.phone_e164,
       m.address['street'] AS street, m.address['postcode'] AS postcode, m.address['city'] AS city,
       m.country, m.birth_date, m.gender, m.company,
       s.source_count, m.record_count, m.first_seen, m.last_seen
FROM merged m
JOIN sources s ON s.customer_id = m.customer_id
