"""Issue 23, item 5: a snapshot ensemble against independent models at equal budget, full Fashion-MNIST.

    python benchmarks/headline_ensembles.py --models /tmp/kt_models --members 3 --seed 0

Independent: `kt.models.Ensemble` of the M models `headline_accuracy.py`
trained with the `accurate` preset (`full_s0.keras` ... in `--models`, or
`--name`), E
epochs each, M x E epochs in all. Snapshot: one run of the same preset for
M x E epochs with a cyclic cosine rate restarted M times from its peak rate
(`kt.callbacks.SnapshotEnsemble`, Huang et al. 2017; no one-cycle, no SWA),
one snapshot at the end of each cycle, averaged the same way. Test accuracy
of each member, of the ensembles, and with the preset's TTA views.
"""

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras  # noqa: E402

import kerastoolkit as kt  # noqa: E402
from _cnn import Results, accuracy, fashion, machine, run_recipe  # noqa: E402


def evaluate(members, recipe, x_test, y_test):
    ensemble = kt.models.Ensemble(members)
    views = recipe.tta_views((28, 28, 1))
    return {
        "members": [accuracy(m, x_test, y_test) for m in members],
        "ensemble": accuracy(ensemble, x_test, y_test, batch_size=500),
        "ensemble_tta": accuracy(kt.models.TTAPredictor(ensemble, views), x_test, y_test, batch_size=250),
        "members_tta": [accuracy(kt.models.TTAPredictor(m, views), x_test, y_test, batch_size=500) for m in members],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", required=True)
    parser.add_argument("--preset", default="accurate")
    parser.add_argument("--members", type=int, default=3)
    parser.add_argument("--name", default="full",
                        help="the members' file names in --models: NAME_s0.keras, NAME_s1.keras, ... "
                             "(headline_accuracy.py saves RUN+LABEL_sSEED.keras)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/results/headline_ensembles.json")
    args = parser.parse_args()
    x, y, x_test, y_test = fashion()
    recipe = kt.presets.get(args.preset)
    epochs = recipe.config["epochs"]
    results = Results(args.out)
    if not results.find(run="independent", seed=args.seed):
        paths = [os.path.join(args.models, f"{args.name}_s{args.seed + i}.keras") for i in range(args.members)]
        members = [keras.saving.load_model(p) for p in paths]
        record = {"run": "independent", "seed": args.seed, "paths": paths, "epochs": args.members * epochs}
        record.update(evaluate(members, recipe, x_test, y_test))
        results.add(record)
        print(record, flush=True)
    if not results.find(run="snapshot", seed=args.seed):
        start, before = time.time(), machine()
        snapshot = recipe.replace(schedule="cyclic_cosine", schedule_options={}, snapshots=args.members, swa=None,
                                  epochs=args.members * epochs)
        directory = tempfile.mkdtemp(prefix="kt_snapshots_")
        _, log = run_recipe(snapshot, x, y, x_test, y_test, args.seed, label="snapshot", directory=directory)
        members = kt.models.Ensemble.from_files(directory).members
        record = {"run": "snapshot", "seed": args.seed, "recipe": snapshot.to_dict(), "history": log.history,
                  "epochs": args.members * epochs, "wall_seconds": round(time.time() - start, 1),
                  "machine_before": before, "machine_after": machine()}
        record.update(evaluate(list(members), recipe, x_test, y_test))
        results.add(record)
        print({k: v for k, v in record.items() if k != "recipe"}, flush=True)


if __name__ == "__main__":
    main()
