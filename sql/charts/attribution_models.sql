-- Each channel's conversions and share under every model of every attribution.
SELECT attribution, model, channel,
       sum(conversions) AS conversions, sum(value) AS value, sum(share) AS share
FROM attribution_results
GROUP BY attribution, model, channel
ORDER BY attribution, model, channel
