-- One configured funnel's steps (`args`: its step conditions and window, as funnel() takes
-- them); the chart is the UNION ALL of every funnel, ordered by funnel and step.
SELECT {funnel} AS funnel, step, condition, customers, conversion_from_start, median_seconds
FROM funnel({args})
