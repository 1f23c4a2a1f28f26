"""Hinton et al.'s distillation result, in shape, on a Fashion-MNIST subset (issue 9).

Hinton et al. (2015) on MNIST: big net 67 test errors, small net alone 146,
small net distilled at T=20 74. Here: a 784-512-512-10 teacher (dropout), a
784-32-10 student, the same student budget (epochs, batch, optimizer) for
every variant, several seeds:

- student alone (hard labels);
- distilled from the live teacher (`kt.models.Distiller`);
- from stored soft targets (`kt.models.soft_targets`, saved with NumPy and
  read back, `Distiller(teacher=None)`);
- from an ensemble teacher (the teacher and two more of its kind,
  `kt.models.Ensemble`, average of distributions);
- from a black-box teacher (a Python function returning the teacher's
  probabilities only).

Reported: test accuracy (mean ± std over seeds) and the fraction of the
teacher-student gap recovered, `(acc − alone) / (teacher − alone)`. Target:
at least half. Sized for a shared 2-core CPU: `--train` examples, `--epochs`
epochs (defaults 5000 and 8, about 10 minutes on a quiet machine).

Run: `python benchmarks/distillation.py [--train 5000] [--epochs 8] [--seeds 3]`
"""

import argparse
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras  # noqa: E402
import numpy as np  # noqa: E402

import kerastoolkit as kt  # noqa: E402
from _fashion import load_fashion  # noqa: E402


def net(hidden, seed, dropout=0.0):
    keras.utils.set_random_seed(seed)
    layers = [keras.Input((784,))]
    for units in hidden:
        layers.append(keras.layers.Dense(units, activation="relu"))
        if dropout:
            layers.append(keras.layers.Dropout(dropout))
    layers.append(keras.layers.Dense(10))  # logits
    return keras.Sequential(layers)


def accuracy(model, x, y):
    return float(np.mean(np.argmax(model.predict(x, verbose=0, batch_size=512), axis=1) == y))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=5000)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--temperature", type=float, default=4.0)
    parser.add_argument("--alpha", type=float, default=0.1)
    args = parser.parse_args()
    (x, y), (xt, yt) = load_fashion(args.train, 2000, images=False)
    hard = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    T, fit = args.temperature, dict(epochs=args.epochs, batch_size=64, verbose=0)
    results = {k: [] for k in ("teacher", "alone", "live", "stored", "ensemble", "black_box")}
    for seed in range(args.seeds):
        teachers = []
        for k in range(3):
            t = net((512, 512), 100 * seed + k, dropout=0.2)
            t.compile(keras.optimizers.Adam(1e-3), hard)
            t.fit(x, y, **fit)
            teachers.append(t)
        teacher = teachers[0]
        results["teacher"].append(accuracy(teacher, xt, yt))

        def student_run(kind):
            student = net((32,), 100 * seed + 50)
            if kind == "alone":
                student.compile(keras.optimizers.Adam(1e-3), hard)
                student.fit(x, y, **fit)
                return accuracy(student, xt, yt)
            if kind == "live":
                d = kt.models.Distiller(teacher, student, temperature=T, alpha=args.alpha)
                d.compile(keras.optimizers.Adam(1e-3), hard)
                d.fit(x, y, **fit)
                return accuracy(student, xt, yt)
            if kind == "stored":
                q = kt.models.soft_targets(teacher, x, temperature=T)
            elif kind == "ensemble":
                q = kt.models.soft_targets(kt.models.Ensemble(teachers, from_logits=True), x, temperature=T)
            else:  # a black box: probabilities only
                probs = lambda b: keras.ops.convert_to_numpy(keras.ops.softmax(teacher(b)))  # noqa: E731
                q = kt.models.soft_targets(probs, x, temperature=T, teacher_outputs="probabilities")
            path = os.path.join(tempfile.mkdtemp(), "q.npy")
            np.save(path, q)
            d = kt.models.Distiller(None, student, temperature=T, alpha=args.alpha)
            d.compile(keras.optimizers.Adam(1e-3), hard)
            d.fit(x, (y, np.load(path)), **fit)
            return accuracy(student, xt, yt)

        for kind in ("alone", "live", "stored", "ensemble", "black_box"):
            results[kind].append(student_run(kind))
        print(seed, {k: round(v[-1], 4) for k, v in results.items()}, flush=True)
    t, a = np.mean(results["teacher"]), np.mean(results["alone"])
    print(f"\n{args.seeds} seeds, {args.train} training examples, {args.epochs} epochs, T={T}, alpha={args.alpha}\n")
    print("| model | test accuracy | gap recovered |\n| --- | ---: | ---: |")
    for kind, values in results.items():
        gap = "" if kind in ("teacher", "alone") else f"{(np.mean(values) - a) / (t - a):.2f}"
        print(f"| {kind} | {np.mean(values):.4f} ± {np.std(values):.4f} | {gap} |")


if __name__ == "__main__":
    main()
