"""LSUV against a bad initialization on a deep plain network, in one run.

Usage:
    python benchmarks/lsuv.py [--depth 12] [--epochs 40] [--seeds 0 1 2]

A plain (no normalization, no skip connections) MLP of `depth` Dense(64,
tanh) layers plus a softmax layer is trained on scikit-learn's digits with
SGD(0.05, momentum 0.9), batch 64, from two starting points built from the
same seed:
- "bad init": every kernel N(0, 0.08²), biases 0 (`--stddev`): each tanh
  layer shrinks the signal (64·0.08² ≈ 0.41 of the variance), so the network
  outputs the same near-uniform prediction for every input and the loss
  sits at ln 10 until the gradients have grown the weights;
- "bad init + LSUV": the same model, then `kt.initializers.lsuv` on 256
  training examples before training.
For each, `kt.callbacks`/`kt.diagnostics.CurveDiagnostics` records the
per-step losses and diagnoses the curve; the script prints whether the
diagnosis contains `slow_start`, and the number of steps until a 10-step
running mean of the training loss first goes below `--target` (default 0.5).
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import kerastoolkit as kt  # noqa: E402

STDDEV = 0.08


def build(depth, seed, stddev):
    keras.utils.set_random_seed(seed)
    bad = keras.initializers.RandomNormal(stddev=stddev, seed=seed)
    layers = [keras.Input((64,))]
    for i in range(depth):
        layers.append(keras.layers.Dense(64, activation="tanh", kernel_initializer=bad))
    layers.append(keras.layers.Dense(10, activation="softmax", kernel_initializer=bad))
    return keras.Sequential(layers)


def steps_to(losses, target, window=10):
    if len(losses) < window:
        return None
    running = np.convolve(losses, np.ones(window) / window, mode="valid")
    below = np.flatnonzero(running < target)
    return int(below[0]) + window if below.size else None


def run(depth, epochs, seed, use_lsuv, x, y, target, stddev):
    model = build(depth, seed, stddev)
    report = None
    if use_lsuv:
        report = kt.initializers.lsuv(model, x[:256], seed=seed)
    model.compile(
        optimizer=keras.optimizers.SGD(0.05, momentum=0.9),
        loss="sparse_categorical_crossentropy",
    )
    diagnostics = kt.diagnostics.CurveDiagnostics()
    model.fit(x, y, batch_size=64, epochs=epochs, shuffle=True, verbose=0,
              callbacks=[diagnostics])
    losses = np.asarray(diagnostics.step_losses()[0])
    codes = [f.code for f in diagnostics.report.findings]
    return {
        "codes": codes,
        "steps_to_target": steps_to(losses, target),
        "first_loss": float(losses[:10].mean()),
        "final_loss": float(losses[-10:].mean()),
        "steps": len(losses),
        "lsuv": report,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--target", type=float, default=0.5)
    parser.add_argument("--stddev", type=float, default=STDDEV,
                        help="standard deviation of the bad initialization")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    x, y = kt.data.load("digits", split="train", as_numpy=True)
    # Whole batches only (22 x 64 of the 1,437): every step's loss is exact.
    x = x.reshape(len(x), -1).astype("float32")[:1408]
    y = y[:1408]
    print(f"digits train: {x.shape}, depth {args.depth}, {args.epochs} epochs, "
          f"backend {keras.backend.backend()}")
    print("| seed | init | findings | steps to loss < target | loss, first 10 steps | loss, last 10 steps |")
    print("| ---: | --- | --- | ---: | ---: | ---: |")
    for seed in args.seeds:
        for use_lsuv in (False, True):
            r = run(args.depth, args.epochs, seed, use_lsuv, x, y, args.target, args.stddev)
            name = "bad init + LSUV" if use_lsuv else "bad init"
            reached = r["steps_to_target"]
            reached = f"> {r['steps']}" if reached is None else reached
            print(f"| {seed} | {name} | {', '.join(r['codes']) or 'none'} | {reached} | "
                  f"{r['first_loss']:.3f} | {r['final_loss']:.3f} |", flush=True)
            if use_lsuv and seed == args.seeds[0]:
                its = [l["iterations"] for l in r["lsuv"]]
                print(f"  (LSUV: {len(its)} layers, iterations {its}, variance before "
                      f"{r['lsuv'][0]['variance_before']:.3g}..{r['lsuv'][-1]['variance_before']:.3g})")


if __name__ == "__main__":
    main()
