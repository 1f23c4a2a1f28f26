"""A labelled corpus of real training runs made to fail in each known way.

Every run is a real `model.fit` on digits (scikit-learn), Fashion-MNIST (a
6000-image subset of the Debian idx files) or mnist1d (generated), with
`kerastoolkit.diagnostics.CurveDiagnostics` attached. Each run carries the set
of codes planted in it; healthy runs carry none. `score.py` scores the
diagnoses.

    python benchmarks/diagnostics/corpus.py --out benchmarks/diagnostics/corpus_results.json
    python benchmarks/diagnostics/score.py benchmarks/diagnostics/corpus_results.json

`--only NAME` runs the runs whose name contains NAME (for tuning).
"""

import argparse
import gzip
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

import keras  # noqa: E402

from kerastoolkit.diagnostics import CurveDiagnostics  # noqa: E402

FASHION = "/usr/share/datasets/fashion-mnist"


# ------------------------------------------------------------------ data


def _split(x, y, n_train, n_val, seed):
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(x))
    tr, va = idx[:n_train], idx[n_train:n_train + n_val]
    mean, std = x[tr].mean(0), x[tr].std(0) + 1e-6
    x = ((x - mean) / std).astype("float32")
    return x[tr], y[tr].astype("int32"), x[va], y[va].astype("int32")


def load_digits(seed=0):
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    return _split(d.data.astype("float32"), d.target, 1400, 397, seed)


def _idx(path):
    with gzip.open(path, "rb") as handle:
        data = handle.read()
    ndim = data[3]
    shape = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def load_fashion(seed=0):
    x = _idx(f"{FASHION}/train-images-idx3-ubyte.gz")[:8000].reshape(8000, -1)
    y = _idx(f"{FASHION}/train-labels-idx1-ubyte.gz")[:8000]
    return _split(x.astype("float32") / 255.0, y, 6000, 1500, seed)


def load_mnist1d(seed=0):
    from mnist1d.data import get_dataset_args
    from mnist1d.data import make_dataset

    d = make_dataset(get_dataset_args())
    x = np.concatenate([d["x"], d["x_test"]]).astype("float32")
    y = np.concatenate([d["y"], d["y_test"]])
    return _split(x, y, 4000, 1000, seed)


LOADERS = {"digits": load_digits, "fashion": load_fashion, "mnist1d": load_mnist1d}
_CACHE = {}


def data(name):
    if name not in _CACHE:
        _CACHE[name] = LOADERS[name]()
    return _CACHE[name]


# ------------------------------------------------------------------ models


def mlp(n_in, widths, activation="relu", kernel_initializer="he_normal",
        bias_initializer="zeros", dropout=0.0, n_out=10):
    layers = [keras.Input((n_in,))]
    for w in widths:
        layers.append(keras.layers.Dense(
            w, activation=activation, kernel_initializer=kernel_initializer,
            bias_initializer=bias_initializer))
        if dropout:
            layers.append(keras.layers.Dropout(dropout))
    layers.append(keras.layers.Dense(n_out, kernel_initializer=kernel_initializer))
    return keras.Sequential(layers)


def dead_bias(fraction, value=-20.0):
    """Bias initializer: `fraction` of the units get a large negative bias."""

    def init(shape, dtype=None):
        b = np.zeros(shape, "float32")
        b[: int(fraction * shape[0])] = value
        return keras.ops.convert_to_tensor(b, dtype=dtype)

    return init


class SignFlippedSGD(keras.optimizers.SGD):
    """SGD whose update has the wrong sign (a bug in the update)."""

    def update_step(self, gradient, variable, learning_rate):
        super().update_step(-gradient, variable, learning_rate)


# ------------------------------------------------------------------ runs

# name -> (planted codes, builder, dataset); a builder returns the report.
RUNS = {}
SEED = [0]  # the seed of the run being built (weights init, shuffling)


def run(name, planted, datasets=("digits", "fashion", "mnist1d")):
    def register(builder):
        for ds in datasets:
            RUNS[f"{ds}/{name}"] = (tuple(planted), builder, ds)
        return builder

    return register


def _fit(model, ds, optimizer, epochs, batch_size=64, shuffle=True, sort=False,
         n_train=None, val=True, statistics=False, x_override=None,
         steps_per_execution=1):
    x, y, xv, yv = data(ds)
    if n_train:
        x, y = x[:n_train], y[:n_train]
    if x_override is not None:
        x = x_override(x)
    if sort:
        order = np.argsort(y, kind="stable")
        x, y = x[order], y[order]
    model.compile(optimizer=optimizer, steps_per_execution=steps_per_execution,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    cb = CurveDiagnostics(
        statistics_every=25 if statistics else None,
        statistics_data=(xv[:128], yv[:128]) if statistics else None,
    )
    if shuffle == "numpy":
        # what many scripts do: after `keras.utils.set_random_seed`, on the
        # TF backend this repeats one permutation every epoch
        model.fit(x, y, batch_size=batch_size, epochs=epochs, shuffle=True,
                  validation_data=(xv, yv) if val else None, verbose=0,
                  callbacks=[cb])
    elif shuffle:
        # `fit(shuffle=True)` on NumPy arrays repeats one order every epoch
        # once `keras.utils.set_random_seed` is called (TF backend): reshuffle
        # with tf.data instead.
        import tensorflow as tf

        train = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(
            len(x), seed=SEED[0] + 1, reshuffle_each_iteration=True).batch(batch_size)
        model.fit(train, epochs=epochs, verbose=0, callbacks=[cb],
                  validation_data=(xv, yv) if val else None)
    else:
        model.fit(x, y, batch_size=batch_size, epochs=epochs, shuffle=False,
                  validation_data=(xv, yv) if val else None, verbose=0,
                  callbacks=[cb])
    return cb.report


@run("healthy", [])
def healthy(ds):
    x, *_ = data(ds)
    epochs = 12
    steps = epochs * int(np.ceil(len(x) / 64))
    sched = keras.optimizers.schedules.CosineDecay(1e-3, steps)
    return _fit(mlp(x.shape[1], [128, 64], dropout=0.3), ds,
                keras.optimizers.AdamW(sched, weight_decay=1e-3), epochs,
                statistics=True)


@run("unshuffled", ["unshuffled"])
def unshuffled(ds):
    x, *_ = data(ds)
    return _fit(mlp(x.shape[1], [64]), ds, keras.optimizers.Adam(1e-3), 4,
                shuffle=False, sort=True)


@run("lr_high", ["diverging"])
def lr_high(ds):
    x, *_ = data(ds)
    return _fit(mlp(x.shape[1], [128, 64]), ds, keras.optimizers.Adam(0.3), 6)


@run("lr_low", ["not_training"])
def lr_low(ds):
    x, *_ = data(ds)
    return _fit(mlp(x.shape[1], [128, 64]), ds, keras.optimizers.SGD(1e-6), 4)


@run("sign_flip", ["diverging"])
def sign_flip(ds):
    x, *_ = data(ds)
    return _fit(mlp(x.shape[1], [128, 64]), ds, SignFlippedSGD(1e-3), 2)


@run("zero_init", ["not_training"])
def zero_init(ds):
    x, *_ = data(ds)
    return _fit(mlp(x.shape[1], [64] * 6, kernel_initializer="zeros"), ds,
                keras.optimizers.Adam(1e-3), 4)


def _tiny_init_run(ds, statistics=False):
    """A deep tanh MLP with a tiny initialization, otherwise the healthy recipe.

    The only fault is the init: AdamW with the cosine-decayed rate and the
    dropout of the healthy runs (without them the loss was still falling at
    the end, `not_converged`, or Fashion-MNIST overfit once learning took
    off), and enough epochs (30 on Fashion-MNIST, whose plateau is longest)
    for the loss to settle after the plateau.
    """
    x, *_ = data(ds)
    init = keras.initializers.RandomNormal(stddev=0.01)
    epochs = 30 if ds == "fashion" else 14
    steps = epochs * int(np.ceil(len(x) / 64))
    sched = keras.optimizers.schedules.CosineDecay(1e-3, steps)
    model = mlp(x.shape[1], [64] * 6, activation="tanh", kernel_initializer=init,
                dropout=0.3)
    return _fit(model, ds, keras.optimizers.AdamW(sched, weight_decay=1e-3), epochs,
                statistics=statistics)


@run("tiny_init", ["slow_start"])
def tiny_init(ds):
    return _tiny_init_run(ds)


@run("overfit", ["overfitting_definite"])
def overfit(ds):
    # 60 training examples, three 512-unit layers, no regularization. (With
    # two layers the validation loss on digits could stall instead of rise.)
    x, *_ = data(ds)
    return _fit(mlp(x.shape[1], [512, 512, 512]), ds, keras.optimizers.Adam(3e-3), 30,
                n_train=60, batch_size=20)


@run("short", ["not_converged"])
def short(ds):
    x, *_ = data(ds)
    return _fit(mlp(x.shape[1], [64]), ds, keras.optimizers.SGD(0.003), 8,
                batch_size=128)


@run("nan_inputs", ["nan"])
def nan_inputs(ds):
    x, *_ = data(ds)

    def poison(x):
        x = x.copy()
        x[len(x) // 2 + 7, 3] = np.inf  # one corrupt sample mid-epoch
        return x

    return _fit(mlp(x.shape[1], [64]), ds, keras.optimizers.Adam(1e-3), 3,
                shuffle=False, x_override=poison)


@run("dead_relu", ["dead_relu"], datasets=("digits", "mnist1d"))
def dead_relu(ds):
    x, *_ = data(ds)
    model = mlp(x.shape[1], [256, 64], bias_initializer=dead_bias(0.6))
    epochs = 10
    steps = epochs * int(np.ceil(len(x) / 64))
    return _fit(model, ds, keras.optimizers.Adam(
        keras.optimizers.schedules.CosineDecay(1e-3, steps)), epochs, statistics=True)


@run("tiny_init_stats",
     ["slow_start", "vanishing_activations", "vanishing_gradients"],
     datasets=("digits", "mnist1d"))
def tiny_init_stats(ds):
    return _tiny_init_run(ds, statistics=True)


@run("big_init_stats",
     ["exploding_activations", "exploding_gradients", "not_converged"],
     datasets=("digits", "mnist1d"))
def big_init_stats(ds):
    x, *_ = data(ds)
    init = keras.initializers.RandomNormal(stddev=0.5)
    return _fit(mlp(x.shape[1], [64] * 5, activation="linear", kernel_initializer=init),
                ds, keras.optimizers.Adam(1e-3), 4, statistics=True)


@run("lr_low_stats", ["not_training", "update_ratio"], datasets=("digits", "mnist1d"))
def lr_low_stats(ds):
    x, *_ = data(ds)
    return _fit(mlp(x.shape[1], [128, 64]), ds, keras.optimizers.SGD(1e-6), 4,
                statistics=True)


@run("fixed_order_overfit", ["repeated_order", "overfitting_definite"])
def fixed_order_overfit(ds):
    # `fit(numpy, shuffle=True)` after `set_random_seed`: the same permutation
    # every epoch; 200 examples and a wide MLP: it overfits too. Both codes.
    x, *_ = data(ds)
    return _fit(mlp(x.shape[1], [256, 256]), ds, keras.optimizers.Adam(3e-3), 30,
                n_train=200, batch_size=20, shuffle="numpy")


@run("nan_behind_relu", ["chance_plateau"])
def nan_behind_relu(ds):
    # One NaN in one example of the last batch of epoch 0: the first layer's
    # weights become NaN, ReLU maps NaN to 0, the loss sits at ln 10.
    x, *_ = data(ds)

    def poison(x):
        x = x.copy()
        x[1000, 10] = np.nan
        return x

    return _fit(mlp(x.shape[1], [64]), ds, keras.optimizers.Adam(3e-3), 5,
                n_train=1024, batch_size=32, shuffle=False, x_override=poison)


@run("partial_last_batch", [])
def partial_last_batch(ds):
    # the healthy recipe with a last batch of one example every epoch (the
    # running-mean recovery made it a periodic error: a false `unshuffled`)
    x, *_ = data(ds)
    n = (len(x) // 64 - 1) * 64 + 1
    epochs = 12
    steps = epochs * int(np.ceil(n / 64))
    sched = keras.optimizers.schedules.CosineDecay(1e-3, steps)
    return _fit(mlp(x.shape[1], [128, 64], dropout=0.3), ds,
                keras.optimizers.AdamW(sched, weight_decay=1e-3), epochs, n_train=n)


@run("steps_per_execution", [])
def steps_per_execution(ds):
    # the healthy recipe run 4 steps per call: every step must be recorded
    x, *_ = data(ds)
    epochs = 12
    steps = epochs * int(np.ceil(len(x) / 64))
    sched = keras.optimizers.schedules.CosineDecay(1e-3, steps)
    return _fit(mlp(x.shape[1], [128, 64], dropout=0.3), ds,
                keras.optimizers.AdamW(sched, weight_decay=1e-3), epochs,
                steps_per_execution=4)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=None, help="run names containing this")
    parser.add_argument("--out", default=None, help="write results JSON here")
    parser.add_argument("--seeds", type=int, default=2,
                        help="run every configuration with seeds 0..SEEDS-1")
    args = parser.parse_args(argv)
    results = []
    start = time.time()
    for seed in range(args.seeds):
        for base, (planted, builder, ds) in RUNS.items():
            name = f"{base}#{seed}"
            if args.only and args.only not in name:
                continue
            SEED[0] = seed
            keras.utils.set_random_seed(seed)
            t0 = time.time()
            report = builder(ds)
            results.append({
                "run": name, "planted": list(planted), "found": report.codes,
                "seconds": round(time.time() - t0, 1),
                "final": {k: v[-1] for k, v in (report.epochs or {}).items()},
                "findings": [f.to_dict() for f in report.findings],
            })
            ok = set(report.codes) == set(planted)
            print(f"{'ok ' if ok else 'BAD'} {name:34s} planted={list(planted)} "
                  f"found={report.codes} ({time.time() - t0:.1f}s)", flush=True)
            keras.backend.clear_session()
    print(f"total {time.time() - start:.0f}s", flush=True)
    if args.out:
        with open(args.out, "w") as handle:
            json.dump({"seconds": round(time.time() - start, 1), "runs": results},
                      handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
