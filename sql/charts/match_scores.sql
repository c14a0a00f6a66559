-- Compared pairs per match weight bin, with the threshold the chart draws as a rule.
SELECT weight_bin, pairs, matched, threshold_weight
FROM match_score_histogram
ORDER BY weight_bin
