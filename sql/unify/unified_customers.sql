-- One profile per customer. Default precedence: the most trusted source (lowest priority
-- number) wins; the address comes whole from one record; e-mail and phone from the most
-- recently updated record that has one.
SELECT l.customer_id,
       by_priority(r.raw_first_name, r.source_priority) AS first_name,
       by_priority(r.raw_last_name, r.source_priority) AS last_name,
       most_recent(r.raw_email, r.updated_at) AS email,
       most_recent(r.email, r.updated_at) AS email_normalized,
       most_recent(r.raw_phone, r.updated_at) AS phone,
       most_recent(r.phone, r.updated_at) AS phone_e164,
       by_priority(CASE WHEN r.raw_street IS NOT NULL OR r.raw_postcode IS NOT NULL
                        THEN named_struct('street', r.raw_street, 'postcode', r.raw_postcode, 'city', r.raw_city) END,
                   r.source_priority) AS address,
       by_priority(r.country, r.source_priority) AS country,
       by_priority(r.birth_date, r.source_priority) AS birth_date,
       by_priority(r.gender, r.source_priority) AS gender,
       most_filled(r.raw_company) AS company,
       count(DISTINCT r.source) AS source_count,
       count(*) AS record_count,
       min(r.updated_at) AS first_seen,
       max(r.updated_at) AS last_seen
FROM customer_links l JOIN unify_records r ON r.uid = l.uid
GROUP BY l.customer_id
