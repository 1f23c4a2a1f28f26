"""Preflight on a corpus of real broken setups and healthy ones.

Each setup is a compiled model and its training data, broken in one known way
(or healthy), on digits, Fashion-MNIST (a 6000-image subset) and mnist1d.
`kt.preflight.check` must name every broken setup by the expected check and
find nothing on the healthy ones. Some setups break only the optimizer (the
model and data are the healthy ones); some healthy ones feed raw inputs to a
model that scales them itself, or class-sorted arrays that `fit` shuffles.

    python benchmarks/preflight_corpus.py [--datasets digits fashion mnist1d] [--out FILE]
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

import keras  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "diagnostics"))
from corpus import LOADERS  # noqa: E402

import kerastoolkit as kt  # noqa: E402


def mlp(d_in, init="glorot_uniform", out_activation=None, scale=1.0):
    init = keras.initializers.VarianceScaling(scale, "fan_avg", "uniform") if scale != 1.0 else init
    return keras.Sequential([
        keras.Input((d_in,)),
        keras.layers.Dense(64, activation="relu", kernel_initializer=init),
        keras.layers.Dense(64, activation="relu", kernel_initializer=init),
        keras.layers.Dense(10, activation=out_activation, kernel_initializer=init),
    ])


def dead_branch(d_in):
    inputs = keras.Input((d_in,))
    a = keras.layers.Dense(64, activation="relu", name="used")(inputs)
    b = keras.layers.Dense(64, activation="relu", name="dead_branch")(inputs)
    b = keras.layers.Lambda(lambda t: keras.ops.stop_gradient(t) * 0.0, name="cut")(b)
    h = keras.layers.Add()([a, b])
    return keras.Model(inputs, keras.layers.Dense(10)(h))


def compile_(model, from_logits=True, optimizer=None):
    model.compile(optimizer or keras.optimizers.Adam(1e-3),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits))
    return model


def scaled_mlp(d_in, front):
    """The MLP behind an in-model scaling layer (raw inputs in)."""
    model = mlp(d_in)
    return keras.Sequential([keras.Input((d_in,)), front, *model.layers])


def adapted(layer, x):
    layer.adapt(x)
    return layer


# Setups where only the optimizer is wrong (the model and data are the
# healthy ones): the trial of the model's own optimizer must name it.
OPTIMIZER_ONLY = {
    "rate_far_too_high": (lambda: keras.optimizers.Adam(10.0), ("optimizer_explodes", "optimizer_nan")),
    "rate_far_too_low": (lambda: keras.optimizers.SGD(1e-7), ("optimizer_flat",)),
    "schedule_zero_at_step_0": (lambda: keras.optimizers.Adam(
        keras.optimizers.schedules.CosineDecay(0.0, decay_steps=1000)), ("optimizer_flat",)),
    "clipping_zeroes_updates": (lambda: keras.optimizers.SGD(0.05, momentum=0.9, clipnorm=1e-9),
                                ("optimizer_flat",)),
}


def setups(x, y, x_raw):
    """(name, expected codes (any of them) or None, model, data, shuffle)."""
    d = x.shape[1]
    rng = np.random.default_rng(0)
    order = np.argsort(y, kind="stable")
    nan_x = x.copy()
    nan_x[7, 3] = np.nan
    const_x = np.zeros_like(x) + 0.5
    yield "healthy", None, compile_(mlp(d)), (x, y), True
    yield "healthy_unshuffled_arrays", None, compile_(mlp(d)), (x, y), False
    yield "labels_misaligned_by_one", "no_signal", compile_(mlp(d)), (x, np.roll(y, 1)), True
    yield "labels_shuffled", "no_signal", compile_(mlp(d)), (x, rng.permutation(y)), True
    yield "sorted_data", "data_order", compile_(mlp(d)), (x[order], y[order]), False
    yield "raw_0_255_inputs", "input_scale", compile_(mlp(d)), (x_raw, y), True
    yield "softmax_with_from_logits", "logits_mismatch", compile_(mlp(d, out_activation="softmax")), (x, y), True
    yield "dead_branch", "dead_gradients", compile_(dead_branch(d)), (x, y), True
    yield "init_tenfold_too_large", "init_loss", compile_(mlp(d, scale=100.0)), (x, y), True
    yield "labels_out_of_range", "labels_out_of_range", compile_(mlp(d)), (x, y + 1), True
    yield "one_nan_in_data", "non_finite_inputs", compile_(mlp(d)), (nan_x, y), False
    yield "constant_input", "constant_input", compile_(mlp(d)), (const_x, y), True
    for name, (make, expected) in OPTIMIZER_ONLY.items():
        yield name, expected, compile_(mlp(d), optimizer=make()), (x, y), True
    # healthy: raw inputs scaled inside the model, sorted arrays that fit
    # shuffles, a warmup that starts at rate 0, momentum SGD
    yield "healthy_in_model_rescaling", None, compile_(scaled_mlp(d, keras.layers.Rescaling(
        1 / 255.0))), (x_raw, y), True
    yield "healthy_in_model_normalization", None, compile_(scaled_mlp(d, adapted(
        keras.layers.Normalization(), x_raw))), (x_raw, y), True
    yield "healthy_in_model_standardize", None, compile_(scaled_mlp(d, adapted(
        kt.layers.Standardize(), x_raw))), (x_raw, y), True
    yield "healthy_sorted_arrays_fit_shuffles", None, compile_(mlp(d)), (x[order], y[order]), True
    warmup = keras.optimizers.schedules.CosineDecay(0.0, 3000, warmup_target=1e-3, warmup_steps=300)
    yield "healthy_warmup_from_zero", None, compile_(mlp(d), optimizer=keras.optimizers.AdamW(
        warmup)), (x, y), True
    yield "healthy_sgd_momentum", None, compile_(mlp(d), optimizer=keras.optimizers.SGD(
        0.05, momentum=0.9)), (x, y), True


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--datasets", nargs="+", default=["digits", "fashion", "mnist1d"])
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    rows = []
    for name in args.datasets:
        xtr, ytr, _, _ = LOADERS[name](0)
        xtr, ytr = xtr[:1024], ytr[:1024]
        # "raw" inputs: the standardized inputs mapped back to a 0-255 range
        lo, hi = xtr.min(), xtr.max()
        x_raw = ((xtr - lo) / (hi - lo) * 255.0).astype("float32")
        for setup, expected, model, data, shuffle in setups(xtr, ytr, x_raw):
            keras.utils.set_random_seed(0)
            start = time.perf_counter()
            report = kt.preflight.check(model, data, batch_size=32, shuffle=shuffle)
            seconds = time.perf_counter() - start
            codes = report.codes
            accepted = (expected,) if isinstance(expected, str) else expected
            ok = (not codes) if expected is None else any(c in codes for c in accepted)
            rows.append({"dataset": name, "setup": setup, "expected": expected,
                         "codes": codes, "ok": ok, "seconds": round(seconds, 2),
                         "timings": report.timings})
            print(f"{name:8s} {setup:34s} expected={expected!s:20s} got={codes} "
                  f"{'OK' if ok else 'MISS'} ({seconds:.1f} s)", flush=True)
    n_ok = sum(r["ok"] for r in rows)
    print(f"{n_ok}/{len(rows)} setups right")
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(rows, handle, indent=1)
    return 0 if n_ok == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
