"""Benchmarks for `kerastoolkit.callbacks` (issue 4).

1. Step-time overhead: `model.fit` with the toolkit's per-step callbacks
   (`Warmup`, `PlateauDecay`, `MomentumSchedule`) against the same fit without
   them, in the same process, epochs interleaved A/B, median per-step time.
   Target: overhead at most 3%.
2. LR range test: `find_learning_rate`'s suggestions (valley, steepest)
   against the best rate of a small grid of full trainings, on digits and a
   Fashion-MNIST subset (idx files from the Debian package).

Run: `python benchmarks/callbacks.py` (about 3 minutes on a 2-core CPU).
"""

import argparse
import gzip
import os
import struct
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import kerastoolkit as kt  # noqa: E402

FASHION = "/usr/share/datasets/fashion-mnist"


def load_digits():
    from sklearn.datasets import load_digits as sk_digits

    data = sk_digits()
    x = (data.data / 16.0).astype("float32")
    y = data.target.astype("int32")
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order], y[order]
    return (x[:1200], y[:1200]), (x[1200:], y[1200:])


def _idx(path):
    with gzip.open(path, "rb") as f:
        magic = struct.unpack(">I", f.read(4))[0]
        dims = struct.unpack(">" + "I" * (magic & 0xFF), f.read(4 * (magic & 0xFF)))
        return np.frombuffer(f.read(), dtype=np.uint8).reshape(dims)


def load_fashion(train=10000, test=2000):
    x = _idx(os.path.join(FASHION, "train-images-idx3-ubyte.gz"))[:train]
    y = _idx(os.path.join(FASHION, "train-labels-idx1-ubyte.gz"))[:train]
    xt = _idx(os.path.join(FASHION, "t10k-images-idx3-ubyte.gz"))[:test]
    yt = _idx(os.path.join(FASHION, "t10k-labels-idx1-ubyte.gz"))[:test]
    prep = lambda a: (a.reshape(len(a), -1) / 255.0).astype("float32")  # noqa: E731
    return (prep(x), y.astype("int32")), (prep(xt), yt.astype("int32"))


def mlp(dim, seed=0, hidden=(256, 128)):
    keras.utils.set_random_seed(seed)
    layers = [keras.Input((dim,))]
    layers += [keras.layers.Dense(h, activation="relu") for h in hidden]
    layers.append(keras.layers.Dense(10, activation="softmax"))
    return keras.Sequential(layers)


class EpochTimer(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.times = []

    def on_epoch_begin(self, epoch, logs=None):
        self._t = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self._t)


def cnn(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((784,)),
        keras.layers.Reshape((28, 28, 1)),
        keras.layers.Conv2D(32, 3, activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Conv2D(64, 3, activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Flatten(),
        keras.layers.Dense(10, activation="softmax"),
    ])


VARIANTS = ("plain", "keras_schedule", "toolkit")


def overhead(epochs, rounds, batch_size, model_fn=None, train=20000):
    """Steady-state ms/step (epochs 2..E of each fit) of three variants.

    - `plain`: SGD(momentum=0.5) with a float learning rate, no callbacks;
    - `keras_schedule`: the same with Keras's own `CosineDecay` with warmup
      (a reference: what any in-graph schedule costs);
    - `toolkit`: float rate plus `Warmup`, `PlateauDecay` and
      `MomentumSchedule` callbacks.
    """
    (x, y), _ = load_fashion(train=train, test=10)
    steps = len(x) // batch_size
    model_fn = model_fn or (lambda: mlp(x.shape[1]))
    steady = {name: [] for name in VARIANTS}
    first = {name: [] for name in VARIANTS}
    for _ in range(rounds):  # alternate so all see the same machine load
        for name in VARIANTS:
            model = model_fn()
            lr = 0.05
            if name == "keras_schedule":
                lr = keras.optimizers.schedules.CosineDecay(
                    0.0, 20 * steps, warmup_target=0.05, warmup_steps=steps
                )
            model.compile(keras.optimizers.SGD(lr, momentum=0.5),
                          "sparse_categorical_crossentropy")
            callbacks = []
            if name == "toolkit":
                callbacks = [
                    kt.callbacks.Warmup(warmup_steps=steps),
                    kt.callbacks.PlateauDecay(monitor="loss", patience=1, factor=0.5),
                    kt.callbacks.MomentumSchedule(
                        kt.schedules.Warmup(0.9, warmup_steps=steps, start=0.5)
                    ),
                ]
            timer = EpochTimer()
            model.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=0,
                      callbacks=callbacks + [timer])
            first[name].append(timer.times[0])
            steady[name].extend(t / steps for t in timer.times[1:])
    return {
        name: {
            "median_ms": 1e3 * np.median(steady[name]),
            "min_ms": 1e3 * np.min(steady[name]),
            "first_s": float(np.median(first[name])),
        }
        for name in VARIANTS
    } | {"samples": len(steady["plain"]), "steps": steps}


def grid_vs_finder(name, data, epochs, grid, batch_size):
    (x, y), (xt, yt) = data
    results = []
    for lr in grid:
        model = mlp(x.shape[1])
        model.compile(keras.optimizers.SGD(lr, momentum=0.9), "sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        model.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=0)
        loss, acc = model.evaluate(xt, yt, verbose=0)
        results.append((lr, loss if np.isfinite(loss) else float("inf"), acc))
    model = mlp(x.shape[1])
    model.compile(keras.optimizers.SGD(1e-3, momentum=0.9), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    t0 = time.perf_counter()
    finder = kt.callbacks.find_learning_rate(model, x, y, batch_size=batch_size,
                                             min_lr=1e-5, max_lr=10.0, num_steps=100)
    finder_s = time.perf_counter() - t0
    suggested = {}
    for label, lr in (("valley", finder.valley), ("steepest", finder.steepest)):
        model = mlp(x.shape[1])
        model.compile(keras.optimizers.SGD(lr, momentum=0.9), "sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        model.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=0)
        suggested[label] = (lr,) + tuple(model.evaluate(xt, yt, verbose=0))
    best = max(results, key=lambda r: r[2])
    return {"name": name, "grid": results, "best": best, "suggested": suggested,
            "finder_s": finder_s, "finder_steps": len(finder.losses), "epochs": epochs}


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=5, help="epochs per timed fit")
    parser.add_argument("--rounds", type=int, default=4, help="alternating fits per variant")
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()
    print(f"keras {keras.__version__}, backend {keras.backend.backend()}")
    print("\n## Step time with per-step callbacks (Warmup + PlateauDecay + MomentumSchedule)")
    print("Fashion-MNIST, SGD, batch 128; ms/step over epochs 2-E of alternating fits "
          f"per variant ({args.epochs} epochs each; {args.rounds} fits per variant for "
          f"the MLP, {max(1, args.rounds - 1)} for the CNN)")
    print("| model | variant | ms/step median | ms/step min | ratio (median) | ratio (min) |"
          "\n| --- | --- | --- | --- | --- | --- |")
    for label, fn, train, rounds in (
        ("MLP 784-256-128-10, 20k images", None, 20000, args.rounds),
        ("CNN 2 conv + dense, 5k images", cnn, 5000, max(1, args.rounds - 1)),
    ):
        o = overhead(args.epochs, rounds, args.batch_size, fn, train)
        base = o["plain"]
        for name, text in (("plain", "plain Keras, float rate"),
                           ("keras_schedule", "plain Keras, CosineDecay with warmup"),
                           ("toolkit", "Warmup + PlateauDecay + MomentumSchedule")):
            r = o[name]
            print(f"| {label} | {text} | {r['median_ms']:.3f} | {r['min_ms']:.3f} | "
                  f"{r['median_ms'] / base['median_ms']:.3f} | {r['min_ms'] / base['min_ms']:.3f} |")
    grid = [1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0]
    for name, data, epochs in (
        ("digits (1200 train / 597 test, MLP 64-256-128-10)", load_digits(), 15),
        ("Fashion-MNIST (10k train / 2k test subset, MLP 784-256-128-10)", load_fashion(), 3),
    ):
        r = grid_vs_finder(name, data, epochs, grid, args.batch_size if "Fashion" in name else 32)
        print(f"\n## LR range test vs grid: {r['name']}, SGD momentum 0.9, {epochs} epochs")
        print("| learning rate | test loss | test accuracy |\n| --- | --- | --- |")
        for lr, loss, acc in r["grid"]:
            mark = " (best)" if lr == r["best"][0] else ""
            print(f"| {lr:g}{mark} | {loss:.4f} | {acc:.4f} |")
        for label, (lr, loss, acc) in r["suggested"].items():
            print(f"| finder {label}: {lr:.3g} | {loss:.4f} | {acc:.4f} |")
        print(f"finder: {r['finder_steps']} steps, {r['finder_s']:.1f} s; "
              f"valley / best grid rate = {r['suggested']['valley'][0] / r['best'][0]:.2f}")


if __name__ == "__main__":
    main()
