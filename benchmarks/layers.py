"""Forward+backward time of the toolkit's layers against the nearest Keras layer.

Usage:
    python benchmarks/layers.py [--repeats 7] [--steps 30] [--jit]

Each pair is a one-layer model trained with `train_on_batch` (forward,
backward and an SGD update; the loss is the mean square of the output), on
the same input, timed for `--steps` steps after two warm-up steps; the
settings are interleaved over `--repeats` rounds and the best round (the
least disturbed by other load on a shared machine) is reported, with the
ratio toolkit / Keras. Pairs:
- `kt.layers.InstanceNormalization()` vs `keras.layers.GroupNormalization(groups=-1)`
  on a (64, 16, 16, 32) batch;
- `kt.layers.GhostBatchNormalization(16)` vs `keras.layers.BatchNormalization()`
  on a (128, 16, 16, 32) batch (8 ghost batches);
- `kt.layers.WeightNormalization(Dense(256))` vs `keras.layers.Dense(256)`
  on a (256, 256) batch.
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import kerastoolkit as kt  # noqa: E402

PAIRS = {
    "InstanceNormalization vs GroupNormalization(groups=-1)": (
        (64, 16, 16, 32),
        lambda: kt.layers.InstanceNormalization(),
        lambda: keras.layers.GroupNormalization(groups=-1),
    ),
    "GhostBatchNormalization(16) vs BatchNormalization": (
        (128, 16, 16, 32),
        lambda: kt.layers.GhostBatchNormalization(16),
        lambda: keras.layers.BatchNormalization(),
    ),
    "WeightNormalization(Dense(256)) vs Dense(256)": (
        (256, 256),
        lambda: kt.layers.WeightNormalization(keras.layers.Dense(256)),
        lambda: keras.layers.Dense(256),
    ),
}


def make(shape, layer_fn, jit):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input(shape[1:]), layer_fn()])
    x = np.random.RandomState(0).rand(*shape).astype("float32")
    model(x, training=True)  # WeightNormalization's data init, eagerly
    model.compile(optimizer=keras.optimizers.SGD(1e-3), loss="mse", jit_compile=jit)
    y = np.zeros((shape[0],) + tuple(model.output_shape[1:]), "float32")
    for _ in range(2):
        model.train_on_batch(x, y)
    return model, x, y


def time_steps(model, x, y, steps):
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    return (time.perf_counter() - start) / steps * 1e3


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--jit", action="store_true", help="compile with jit_compile=True")
    args = parser.parse_args()
    print(f"backend {keras.backend.backend()}, jit_compile={args.jit}, "
          f"best of {args.repeats} rounds of {args.steps} steps")
    print("| pair | toolkit ms/step | Keras ms/step | ratio |")
    print("| --- | ---: | ---: | ---: |")
    for name, (shape, ours, theirs) in PAIRS.items():
        models = [make(shape, ours, args.jit), make(shape, theirs, args.jit)]
        best = [float("inf"), float("inf")]
        for _ in range(args.repeats):
            for i, (model, x, y) in enumerate(models):
                best[i] = min(best[i], time_steps(model, x, y, args.steps))
        print(f"| {name} | {best[0]:.3f} | {best[1]:.3f} | {best[0] / best[1]:.2f} |", flush=True)


if __name__ == "__main__":
    main()
