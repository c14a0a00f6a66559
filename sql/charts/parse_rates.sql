-- Share of each mapped field's values that parse, at each profiled run.
SELECT run_id, source || '.' || mapped_field AS field, parse_rate, parse_failures
FROM source_profiles
WHERE parse_rate IS NOT NULL
ORDER BY field, run_id
