-- Share of NULLs of every source column with any, in the latest profile.
SELECT source || '.' || "column" AS source_column, null_share, nulls, rows
FROM source_profiles
WHERE run_id = (SELECT max(run_id) FROM source_profiles) AND nulls > 0
ORDER BY null_share DESC, source_column
LIMIT 40
