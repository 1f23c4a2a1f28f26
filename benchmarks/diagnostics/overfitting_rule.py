"""The overfitting rule, before and after "validation must stall", on real runs.

Two sources of real learning curves:

- the labelled corpus (`corpus.py`): every run is re-run (its builders, the
  same seeds) and its per-epoch `loss`/`val_loss` diagnosed by the rule of
  `kerastoolkit.diagnostics.curves.detect_overfitting` and by the rule it
  replaced (kept below, verbatim, for the comparison);
- `kerastoolkit train` runs: every `epochs.csv` under the folders given
  (`--runs DIR ...`), e.g. one run of every dataset and preset.

For each run: the codes the old and the new rule give, whether the
validation loss is lowest at the last epoch, and the planted codes (corpus).

    python benchmarks/diagnostics/overfitting_rule.py --seeds 1 --runs /tmp/runs --out FILE
"""

import argparse
import glob
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))

from kerastoolkit.diagnostics import curves  # noqa: E402
from kerastoolkit.diagnostics import logs as logs_lib  # noqa: E402


def old_rule(loss, val, t):
    """`detect_overfitting` as it was before validation had to stall."""
    mask = np.isfinite(val) & np.isfinite(loss)
    loss, val = loss[mask], val[mask]
    n = len(val)
    if n < 4:
        return None
    vs = curves._smooth3(val)
    best = int(np.argmin(val))
    vmin = float(val[best])
    vend = float(vs[-1])
    noise = float(np.median(np.abs(np.diff(val)))) if n > 2 else 0.0
    rise = vend - vmin
    if (best <= n - 3 and rise > t["overfitting_rise"] * abs(vmin) and rise > 2 * noise
            and loss[-1] < loss[best]):
        return "overfitting_definite"
    k = max(3, n // 3)
    train_drop = float(loss[-k] - loss[-1])
    val_drop = float(vs[-k] - np.min(vs[-k:]))
    gap_growth = float((vs[-1] - loss[-1]) - (vs[-k] - loss[-k]))
    if (train_drop > 0 and val_drop < t["overfitting_val_share"] * train_drop
            and gap_growth > t["overfitting_gap"] * abs(vmin) and gap_growth > 2 * noise):
        return "overfitting_possible"
    return None


def judge(name, loss, val, planted=None):
    t = curves.DEFAULT_THRESHOLDS
    loss, val = np.asarray(loss, "float64"), np.asarray(val, "float64")
    new = curves.detect_overfitting(loss, val, t)
    finite = np.isfinite(val)
    return {"run": name, "planted": planted, "epochs": int(len(val)),
            "old": old_rule(loss, val, t), "new": None if new is None else new.code,
            "val_best_at_end": bool(finite.any() and int(np.nanargmin(val)) == len(val) - 1),
            "val_loss": [float(v) for v in val], "loss": [float(v) for v in loss]}


def corpus_runs(seeds, only):
    import keras

    import corpus

    rows = []
    for seed in range(seeds):
        for base, (planted, builder, dataset) in corpus.RUNS.items():
            name = f"{base}#{seed}"
            if only and only not in name:
                continue
            corpus.SEED[0] = seed
            keras.utils.set_random_seed(seed)
            report = builder(dataset)
            epochs = report.epochs or {}
            keras.backend.clear_session()
            if "val_loss" not in epochs:
                continue
            rows.append(judge(name, epochs["loss"], epochs["val_loss"], list(planted)))
            print(json.dumps({k: v for k, v in rows[-1].items() if k not in ("loss", "val_loss")}),
                  flush=True)
    return rows


def train_runs(folders):
    rows = []
    for folder in folders:
        for path in sorted(glob.glob(os.path.join(folder, "**", "epochs.csv"), recursive=True)):
            epochs = logs_lib.load_epochs(path)
            if "val_loss" not in epochs:
                continue
            rows.append(judge(os.path.relpath(path, folder), epochs["loss"], epochs["val_loss"]))
            print(json.dumps({k: v for k, v in rows[-1].items() if k not in ("loss", "val_loss")}),
                  flush=True)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=0, help="corpus seeds to re-run (0: none)")
    parser.add_argument("--only", default=None, help="corpus runs whose name contains this")
    parser.add_argument("--runs", nargs="*", default=[], help="folders of train runs")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    rows = corpus_runs(args.seeds, args.only) + train_runs(args.runs)
    changed = [r for r in rows if r["old"] != r["new"]]
    print(f"{len(rows)} runs with validation; the rule changed on {len(changed)}:")
    for r in changed:
        print(f"  {r['run']}: {r['old']} -> {r['new']} (val best at the end: "
              f"{r['val_best_at_end']}, planted {r['planted']})")
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(rows, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
