-- One profile per account: names and places from account sources first (lowest priority
-- number), the number of linked contacts (customers) and records.
SELECT l.account_id,
       by_priority(r.raw_company, r.priority) AS name,
       by_priority(r.domain, r.priority) AS domain,
       by_priority(r.postcode, r.priority) AS postcode,
       by_priority(r.raw_city, r.priority) AS city,
       by_priority(r.country, r.priority) AS country,
       count(DISTINCT r.customer_id) AS contacts,
       count(*) AS records
FROM account_links l JOIN account_records r ON r.uid = l.uid
GROUP BY l.account_id
