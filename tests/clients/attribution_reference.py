"""The reference for Panorama's attribution: PyPI's `channelattribution` on the same paths.

    python3 attribution_reference.py PATHS.csv NSIM

PATHS.csv has `path` (channels joined by " > "), `conv`, `null` and `value` (the value of
the path's conversions) per distinct path, as Panorama's `attribution_paths` gives them.
Prints JSON: {"markov": {channel: [conversions, value]}, "first_touch": {...},
"last_touch": {...}, "linear": {...}} — the heuristic models as [conversions, value] too.
"""
import json
import sys

import pandas as pd
from ChannelAttribution import heuristic_models, markov_model


def main(paths, nsim):
    df = pd.read_csv(paths)
    out = {}
    # max_step: the package cuts its simulated paths at a length taken from the data by
    # default, which loses the conversions of longer walks through the chain's cycles (2% of
    # a channel's credit on the test's paths); at 100 steps what is lost is below 1e-9, and
    # the simulation approaches the exact absorption probabilities Panorama computes.
    m = markov_model(df, "path", "conv", var_null="null", var_value="value", order=1,
                     nsim_start=float(nsim), max_step=100, verbose=0, flg_pro=False, seed=7)
    out["markov"] = {r.channel_name: [r.total_conversions, r.total_conversion_value]
                     for r in m.itertuples()}
    h = heuristic_models(df, "path", "conv", var_value="value", flg_pro=False)
    for model, ours in [("first_touch", "first_touch"), ("last_touch", "last_touch"),
                        ("linear_touch", "linear")]:
        out[ours] = {}
        for r in h.itertuples():
            conv = getattr(r, f"{model}_conversions")
            value = getattr(r, f"{model}_value")
            out[ours][r.channel_name] = [conv, value]
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
