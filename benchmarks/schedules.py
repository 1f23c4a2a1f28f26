"""Training-step time with toolkit schedules vs plain Keras, in one run.

Usage:
    python benchmarks/schedules.py [--repeats 5] [--epochs 3]

For each learning-rate setting, a small MLP is trained on scikit-learn's
digits with `keras.optimizers.SGD(momentum=0.9)`; the script reports the best
(minimum over repeats: the least disturbed by other load on a shared machine)
and the median time per training step, and the ratio of the best to that of a
constant float learning rate (plain Keras), measured in the same run with the
settings interleaved, both
eager-compiled (`tf.function`) and with `jit_compile=True`. The model is tiny on
purpose, so the schedule's share of the step is as large as it gets.
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

import kerastoolkit as kt  # noqa: E402

BATCH = 32


def settings(steps_per_epoch):
    total = 10 * steps_per_epoch
    return {
        "float 0.05 (plain Keras)": lambda: 0.05,
        "keras CosineDecay": lambda: keras.optimizers.schedules.CosineDecay(
            0.05, total
        ),
        "kt Cosine": lambda: kt.schedules.Cosine(0.05, total),
        "kt Cosine per epoch": lambda: kt.schedules.Cosine(
            0.05, 10, steps_per_epoch=steps_per_epoch
        ),
        "kt StepDecay per epoch": lambda: kt.schedules.StepDecay(
            0.05, 0.5, 3, steps_per_epoch=steps_per_epoch
        ),
        "kt OneCycle": lambda: kt.schedules.OneCycle(0.05, total),
        "kt CyclicCosine": lambda: kt.schedules.CyclicCosine(0.05, total, 5),
        "kt Warmup(Scaled(Cosine))": lambda: kt.schedules.Warmup(
            kt.schedules.Scaled(kt.schedules.Cosine(0.05, total), 0.5),
            warmup_steps=steps_per_epoch,
        ),
    }


def build(learning_rate, jit_compile):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(10),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=jit_compile,
    )
    return model


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()

    digits = load_digits()
    x = (digits.data / 16.0).astype("float32")
    y = digits.target.astype("int32")
    steps_per_epoch = -(-len(x) // BATCH)

    print(f"backend={keras.backend.backend()} keras={keras.__version__}")
    print(f"digits {x.shape}, batch {BATCH}, {steps_per_epoch} steps/epoch, "
          f"{args.epochs} epochs x {args.repeats} repeats")
    for jit_compile in (False, True):
        factories = settings(steps_per_epoch)
        models = {}
        for name, factory in factories.items():
            models[name] = build(factory(), jit_compile)
            models[name].fit(x, y, batch_size=BATCH, epochs=1, verbose=0)  # trace
        times = {name: [] for name in factories}
        for _ in range(args.repeats):
            for name, model in models.items():  # interleaved
                start = time.perf_counter()
                model.fit(x, y, batch_size=BATCH, epochs=args.epochs, verbose=0)
                elapsed = time.perf_counter() - start
                times[name].append(elapsed / (args.epochs * steps_per_epoch))
        base = min(times["float 0.05 (plain Keras)"])
        print(f"\njit_compile={jit_compile}")
        print("| learning rate | ms/step (best) | ms/step (median) | ratio vs float (best) |")
        print("| --- | ---: | ---: | ---: |")
        for name in factories:
            best, median = min(times[name]), statistics.median(times[name])
            print(f"| {name} | {1e3 * best:.3f} | {1e3 * median:.3f} "
                  f"| {best / base:.3f} |")


if __name__ == "__main__":
    main()
