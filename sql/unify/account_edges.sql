-- Links between account records and the keys they share (company with domain, postcode or
-- city; domain alone); every record is also its own node. Connected components are accounts.
SELECT uid AS a, uid AS b FROM account_records
UNION ALL SELECT uid, 'company+domain|' || company || '|' || domain FROM account_records WHERE company IS NOT NULL AND domain IS NOT NULL
UNION ALL SELECT uid, 'company+postcode|' || company || '|' || postcode FROM account_records WHERE company IS NOT NULL AND postcode IS NOT NULL
UNION ALL SELECT uid, 'company+city|' || company || '|' || city FROM account_records WHERE company IS NOT NULL AND city IS NOT NULL
UNION ALL SELECT uid, 'domain|' || domain FROM account_records WHERE domain IS NOT NULL
