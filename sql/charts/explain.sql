-- One pair's comparisons in order: the running total of weight_bits makes the waterfall;
-- the decision row is the total.
SELECT row_number() OVER () AS step, comparison, level,
       left AS left_value, right AS right_value, m, u, weight_bits
FROM explain_pair({left}, {right})
