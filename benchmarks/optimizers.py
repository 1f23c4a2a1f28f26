"""Training-step time of each kerastoolkit optimizer vs its nearest Keras one.

Pairs (toolkit vs Keras built-in), on the same model and data, in one run:

- `kt.optimizers.SGD` with a momentum schedule vs `keras.optimizers.SGD(momentum=0.9)`
- `kt.optimizers.Lookahead(Adam)` vs `keras.optimizers.Adam`
- `kt.optimizers.LARS` vs `keras.optimizers.SGD(momentum=0.9)`
- `kt.optimizers.SWATS` vs `keras.optimizers.Adam`
- `kt.optimizers.GradientNoise(Adam)` vs `keras.optimizers.Adam`

each with the default compiled `model.fit` and with `jit_compile=True`.
Every model is compiled and warmed up first; then the measurements are
interleaved (for each repeat, every model trains one epoch, in an order that
alternates toolkit/baseline first), and the ratio reported is the median of
the per-repeat ratios toolkit / baseline.

Usage:

    python benchmarks/optimizers.py --repeats 15 --output /tmp/optimizers.md  # then into BENCHMARKS.md
"""

import argparse
import datetime
import os
import platform
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import kerastoolkit as kt  # noqa: E402


def pairs():
    """name -> (toolkit factory, baseline name, baseline factory)."""
    return {
        "SGD(momentum schedule) vs SGD(momentum)": (
            lambda: kt.optimizers.SGD(
                0.01,
                momentum=keras.optimizers.schedules.PolynomialDecay(
                    0.5, 1000, 0.99)),
            lambda: keras.optimizers.SGD(0.01, momentum=0.9),
        ),
        "Lookahead(Adam) vs Adam": (
            lambda: kt.optimizers.Lookahead(keras.optimizers.Adam(1e-3)),
            lambda: keras.optimizers.Adam(1e-3),
        ),
        "LARS vs SGD(momentum)": (
            lambda: kt.optimizers.LARS(1.0, momentum=0.9),
            lambda: keras.optimizers.SGD(0.01, momentum=0.9),
        ),
        "SWATS vs Adam": (
            lambda: kt.optimizers.SWATS(1e-3),
            lambda: keras.optimizers.Adam(1e-3),
        ),
        "GradientNoise(Adam) vs Adam": (
            lambda: kt.optimizers.GradientNoise(keras.optimizers.Adam(1e-3),
                                                eta=0.01, seed=0),
            lambda: keras.optimizers.Adam(1e-3),
        ),
        "GradientNoise(Adam, bfloat16 noise) vs Adam": (
            lambda: kt.optimizers.GradientNoise(keras.optimizers.Adam(1e-3),
                                                eta=0.01, seed=0,
                                                noise_dtype="bfloat16"),
            lambda: keras.optimizers.Adam(1e-3),
        ),
    }


def data(samples):
    from sklearn.datasets import load_digits

    digits = load_digits()
    reps = int(np.ceil(samples / len(digits.data)))
    x = np.tile(digits.data / 16.0, (reps, 1))[:samples].astype("float32")
    y = np.tile(digits.target, reps)[:samples].astype("int32")
    return x, y


def build(optimizer, width, jit_compile, weights=None):
    model = keras.Sequential([
        keras.Input((64,)),
        keras.layers.Dense(width, activation="relu"),
        keras.layers.Dense(width, activation="relu"),
        keras.layers.Dense(10),
    ])
    if weights is not None:
        model.set_weights(weights)
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=jit_compile,
    )
    return model


def epoch_seconds(model, x, y, batch_size):
    start = time.perf_counter()
    model.fit(x, y, batch_size=batch_size, epochs=1, shuffle=False, verbose=0)
    return time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--steps", type=int, default=30,
                        help="training steps per timed epoch")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--only", default=None,
                        help="time only the pairs whose name contains this")
    parser.add_argument("--output", default=None,
                        help="write a markdown results section here")
    args = parser.parse_args(argv)
    selected = {k: v for k, v in pairs().items() if not args.only or args.only in k}

    x, y = data(args.steps * args.batch_size)
    keras.utils.set_random_seed(0)
    weights = build(keras.optimizers.SGD(), args.width, False).get_weights()

    models = {}
    for jit in (False, True):
        for name, (ours, theirs) in selected.items():
            for role, factory in (("toolkit", ours), ("keras", theirs)):
                model = build(factory(), args.width, jit, weights)
                epoch_seconds(model, x, y, args.batch_size)  # compile + warm up
                models[(jit, name, role)] = model

    times = {key: [] for key in models}
    for repeat in range(args.repeats):
        for jit in (False, True):
            for name in selected:
                roles = ("toolkit", "keras") if repeat % 2 else ("keras", "toolkit")
                for role in roles:
                    times[(jit, name, role)].append(
                        epoch_seconds(models[(jit, name, role)], x, y,
                                      args.batch_size))

    rows = []
    for jit in (False, True):
        for name in selected:
            ours = times[(jit, name, "toolkit")]
            theirs = times[(jit, name, "keras")]
            ratio = statistics.median(a / b for a, b in zip(ours, theirs))
            rows.append((name, "jit_compile=True" if jit else "default",
                         1000 * statistics.median(ours) / args.steps,
                         1000 * statistics.median(theirs) / args.steps, ratio))

    params = sum(int(np.prod(w.shape)) for w in weights)
    command = "python benchmarks/optimizers.py " + " ".join(
        a for a in (argv if argv is not None else sys.argv[1:]))
    lines = [
        "## Optimizers: training-step time vs the nearest Keras optimizer",
        "",
        f"- Command: `{command.strip()}`",
        f"- Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- Machine: 2-core CPU ({platform.machine()}), Keras "
        f"{keras.__version__}, backend {keras.backend.backend()}",
        f"- Model: MLP 64-{args.width}-{args.width}-10 ({params:,} parameters), "
        f"batch {args.batch_size}, {args.steps} steps per timed epoch, "
        f"{args.repeats} interleaved repeats. ms/step: median epoch time / "
        "steps. Ratio: median over repeats of toolkit / Keras epoch time, "
        "the two epochs run back to back (target <= 1.10).",
        "",
        "| pair | compile | toolkit ms/step | Keras ms/step | ratio |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for name, mode, ours, theirs, ratio in rows:
        lines.append(f"| {name} | {mode} | {ours:.2f} | {theirs:.2f} | "
                     f"{ratio:.3f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text)
    return rows


if __name__ == "__main__":
    main()
