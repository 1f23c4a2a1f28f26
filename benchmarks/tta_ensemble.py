"""TTA throughput and the accuracy gained by TTA and ensembles on Fashion-MNIST (issue 9).

1. Throughput: `TTAPredictor` with K views (one batched forward pass)
   against K separate `model.predict` calls on the same images; the ratio
   `time(TTA) / (K × time(one predict))`. Target: at most 1.1.
2. Accuracy on a Fashion-MNIST subset with the default image classifier:
   one model; its TTA (identity, hflip, shift:1: 6 views); an ensemble of
   M independently trained models (M × E epochs in all); a snapshot
   ensemble (`kt.callbacks.SnapshotEnsemble`, M cycles over the same M × E
   epochs, Huang et al. 2017); and TTA of each ensemble. Several seeds.

Sized for a shared 2-core CPU (subset, few epochs; say so when quoting).
Run: `python benchmarks/tta_ensemble.py [--train 5000] [--epochs 3] [--members 3] [--seeds 2]`
"""

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras  # noqa: E402
import numpy as np  # noqa: E402

import kerastoolkit as kt  # noqa: E402
from _fashion import load_fashion  # noqa: E402

VIEWS = ["identity", "hflip", "shift:1"]


def accuracy(model, x, y):
    return float(np.mean(np.argmax(model.predict(x, verbose=0, batch_size=256), axis=1) == y))


def classifier(x, seed):
    keras.utils.set_random_seed(seed)
    model = kt.models.default_classifier((28, 28, 1), 10, normalization_data=x[:1000])
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    return model


def throughput(model, x, repeats=5):
    tta = kt.models.TTAPredictor(model, views=VIEWS)
    k = tta.num_views
    views = [x, x[:, :, ::-1]] + [np.roll(x, s, axis=a) for a in (2, 1) for s in (1, -1)]
    tta.predict(x, verbose=0, batch_size=256)
    model.predict(x, verbose=0, batch_size=256)
    single, tta_times, k_calls = [], [], []
    for _ in range(repeats):  # interleaved
        t0 = time.perf_counter()
        model.predict(x, verbose=0, batch_size=256)
        t1 = time.perf_counter()
        tta.predict(x, verbose=0, batch_size=256)
        t2 = time.perf_counter()
        for v in views:
            model.predict(v, verbose=0, batch_size=256)
        t3 = time.perf_counter()
        single.append(t1 - t0), tta_times.append(t2 - t1), k_calls.append(t3 - t2)
    s, t, kc = np.median(single), np.median(tta_times), np.median(k_calls)
    print(f"\nthroughput on {len(x)} images, K={k} views: one predict {s:.3f} s; TTA {t:.3f} s; "
          f"K predicts {kc:.3f} s; TTA / (K x one predict) = {t / (k * s):.3f}; "
          f"TTA / K predicts = {t / kc:.3f}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=5000)
    parser.add_argument("--epochs", type=int, default=3, help="epochs per member (E)")
    parser.add_argument("--members", type=int, default=3, help="ensemble size (M)")
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args()
    (x, y), (xt, yt) = load_fashion(args.train, 2000)
    fit = dict(batch_size=64, verbose=0)
    rows = {k: [] for k in ("single", "single + TTA", "independent ensemble", "independent + TTA",
                            "snapshot ensemble", "snapshot + TTA")}
    for seed in range(args.seeds):
        members = []
        for m in range(args.members):
            model = classifier(x, 1000 * seed + m)
            model.fit(x, y, epochs=args.epochs, **fit)
            members.append(model)
        if seed == 0:
            throughput(members[0], xt)
        rows["single"].append(accuracy(members[0], xt, yt))
        rows["single + TTA"].append(accuracy(kt.models.TTAPredictor(members[0], VIEWS), xt, yt))
        independent = kt.models.Ensemble(members)
        rows["independent ensemble"].append(accuracy(independent, xt, yt))
        rows["independent + TTA"].append(accuracy(kt.models.TTAPredictor(independent, VIEWS), xt, yt))
        model = classifier(x, 1000 * seed + 99)
        snap = kt.callbacks.SnapshotEnsemble(
            cycles=args.members, total_epochs=args.members * args.epochs,
            directory=tempfile.mkdtemp(), initial_learning_rate=2e-3,
        )
        model.fit(x, y, epochs=args.members * args.epochs, callbacks=[snap], **fit)
        snapshot = kt.models.Ensemble.from_files(snap.directory)
        rows["snapshot ensemble"].append(accuracy(snapshot, xt, yt))
        rows["snapshot + TTA"].append(accuracy(kt.models.TTAPredictor(snapshot, VIEWS), xt, yt))
        print(seed, {k: round(v[-1], 4) for k, v in rows.items()}, flush=True)
    print(f"\n{args.seeds} seeds, {args.train} training images, M={args.members}, E={args.epochs}\n")
    print("| predictor | test accuracy |\n| --- | ---: |")
    for name, values in rows.items():
        print(f"| {name} | {np.mean(values):.4f} ± {np.std(values):.4f} |")


if __name__ == "__main__":
    main()
