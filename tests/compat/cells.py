"""The compatibility matrix's cells: factors, covering design, model and checks.

Factors (issue 13): optimizer x learning rate x callback x wrapper x
persistence; the backend is the process's (the JAX job runs the same cells).
Every cell either works, checked against the rate the optimizer applied at
each step and against an uninterrupted run, or fails at once with an error
naming the combination (`REFUSED`).

Covering design: `pairwise(FACTORS)` is a deterministic greedy all-pairs
generator (in the spirit of AETG, Cohen et al. 1997). While some pair of
factor values is uncovered, it starts a row from the first uncovered pair (in
factor order, then value order) and fills every other factor, in factor
order, with the value that covers the most still-uncovered pairs with the
values chosen so far (ties: the first value). Each row covers at least one new
pair, so it ends; every pair of values of any two factors is in some row.

This module is imported by the test (`test_matrix.py`) and by the child
process that continues the runs (`python -m tests.compat.cells SPEC`).
"""

import itertools
import json
import os
import sys
import warnings

import keras
import numpy as np

import kerastoolkit as kt
from kerastoolkit import _rate

FACTORS = {
    "optimizer": ["keras_sgd", "keras_adam", "keras_adamw", "kt_sgd", "swats",
                  "lookahead_adam", "lars", "noise_adam"],
    "callback": ["warmup", "plateau", "momentum", "snapshot", "swa", "precise_bn",
                 "lr_finder", "curves"],
    "rate": ["float", "keras_schedule", "kt_schedule"],
    "wrapper": ["none", "mixed_float16", "jit_compile"],
    "persistence": ["keras_checkpoint", "backup_restore"],
}

# Cells that must fail at once, and the words their error must contain.
REFUSED = {
    ("swa", "keras_checkpoint"): "`SWA` starts at epoch 2",
}

LR0 = 0.05
EPOCHS = 3  # the checkpoint / the kill is after epoch 2 (index 1)
BATCH = 32
ROWS = 64  # 2 steps per epoch


def pairwise(factors):
    """Rows (dicts) covering every pair of values of any two factors."""
    names = list(factors)
    uncovered = set()
    for a, b in itertools.combinations(range(len(names)), 2):
        for va in factors[names[a]]:
            for vb in factors[names[b]]:
                uncovered.add(((a, va), (b, vb)))

    def order(pair):
        (a, va), (b, vb) = pair
        return (a, factors[names[a]].index(va), b, factors[names[b]].index(vb))

    rows = []
    while uncovered:
        (a, va), (b, vb) = min(uncovered, key=order)
        row = {a: va, b: vb}
        for f in range(len(names)):
            if f in row:
                continue

            def gain(value, f=f):
                return sum(_pair(f, value, g, row[g]) in uncovered for g in row)

            row[f] = max(factors[names[f]], key=lambda v: (gain(v), -factors[names[f]].index(v)))
        for f, g in itertools.combinations(sorted(row), 2):
            uncovered.discard(((f, row[f]), (g, row[g])))
        rows.append({names[f]: row[f] for f in sorted(row)})
    return rows


def each_value(rows, factors):
    """A few of `rows` in which every value of every factor appears (greedy).

    The backend is the sixth factor: TensorFlow runs every row of the
    all-pairs design over the other five, JAX these rows, so every pair
    (backend, any factor value) is covered too.
    """
    missing = {(name, value) for name, values in factors.items() for value in values}
    chosen = []
    while missing:
        best = max(rows, key=lambda r: sum((n, r[n]) in missing for n in factors))
        chosen.append(best)
        missing -= {(n, best[n]) for n in factors}
    return chosen


def _pair(f, vf, g, vg):
    return ((f, vf), (g, vg)) if f < g else ((g, vg), (f, vf))


def cell_id(cell):
    return "-".join(cell[name] for name in FACTORS)


def data():
    from sklearn.datasets import load_digits

    digits = load_digits()
    return (digits.data[:ROWS] / 16.0).astype("float32"), digits.target[:ROWS].astype("int32")


# --- the rate, independently (NumPy) ---------------------------------------


def base_rate(rate, t):
    if rate == "float":
        return LR0
    if rate == "keras_schedule":  # ExponentialDecay(LR0, 4, 0.5)
        return LR0 * 0.5 ** (t / 4)
    return LR0 * (1 - min(t, 20) / 20)  # kt.schedules.Linear(LR0, total=20)


def expected_rate(cell, epoch, t):
    """The rate the optimizer must apply at its step `t` (in epoch `epoch`)."""
    rate, callback = cell["rate"], cell["callback"]
    if callback == "warmup":  # Goyal et al.: linear from 0 over W = 3 steps
        return base_rate(rate, 0) * t / 3 if t < 3 else base_rate(rate, t - 3)
    if callback == "plateau":  # the metric worsens at epoch 1: x0.5 from epoch 2
        return base_rate(rate, t) * (0.5 if epoch >= 2 else 1.0)
    if callback == "snapshot":  # Huang et al. Eq. 2, one epoch (2 steps) per cycle
        return base_rate(rate, 0) / 2 * (np.cos(np.pi * (t % 2) / 2) + 1)
    return base_rate(rate, t)


# --- building a cell ---------------------------------------------------------


def make_rate(rate):
    if rate == "float":
        return LR0
    if rate == "keras_schedule":
        return keras.optimizers.schedules.ExponentialDecay(LR0, decay_steps=4, decay_rate=0.5)
    return kt.schedules.Linear(LR0, total=20)


def make_optimizer(name, rate):
    lr = make_rate(rate)
    if name == "keras_sgd":
        return keras.optimizers.SGD(lr, momentum=0.5)
    if name == "keras_adam":
        return keras.optimizers.Adam(lr)
    if name == "keras_adamw":
        return keras.optimizers.AdamW(lr, weight_decay=0.01)
    if name == "kt_sgd":
        return kt.optimizers.SGD(lr, momentum=0.5)
    if name == "swats":
        return kt.optimizers.SWATS(lr)
    if name == "lookahead_adam":
        return kt.optimizers.Lookahead(keras.optimizers.Adam(lr), sync_period=3)
    if name == "lars":
        return kt.optimizers.LARS(lr, momentum=0.5)
    return kt.optimizers.GradientNoise(keras.optimizers.Adam(lr), eta=0.01, seed=3)


class policy:
    """`mixed_float16` for the cells that ask for it, `float32` again after."""

    def __init__(self, cell):
        self.mixed = cell["wrapper"] == "mixed_float16"

    def __enter__(self):
        if self.mixed:
            keras.mixed_precision.set_global_policy("mixed_float16")

    def __exit__(self, *exc):
        keras.mixed_precision.set_global_policy("float32")


def make_model(cell):
    keras.utils.set_random_seed(0)
    with policy(cell):
        model = keras.Sequential([
            keras.Input((64,)),
            keras.layers.Dense(8),
            keras.layers.BatchNormalization(),
            keras.layers.ReLU(),
            keras.layers.Dense(10),
            keras.layers.Activation("linear", dtype="float32"),
        ])
        model.compile(
            optimizer=make_optimizer(cell["optimizer"], cell["rate"]),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            jit_compile=cell["wrapper"] == "jit_compile",
        )
    return model


class InjectMetric(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        logs["fake"] = float(epoch + 1)  # gets worse every epoch


def make_callbacks(cell, workdir, x, backup=None):
    """The callbacks under test (those that must precede the others first)."""
    name = cell["callback"]
    backup = backup or os.path.join(workdir, "backup")
    if name == "warmup":
        return [kt.callbacks.Warmup(warmup_steps=3)]
    if name == "plateau":
        return [InjectMetric(), kt.callbacks.PlateauDecay(
            monitor="fake", patience=0, factor=0.5, backup_dir=backup)]
    if name == "momentum":
        beta = keras.optimizers.schedules.PolynomialDecay(0.5, 4, 0.9)
        return [kt.callbacks.MomentumSchedule(beta)]
    if name == "snapshot":
        return [kt.callbacks.SnapshotEnsemble(
            cycles=3, total_epochs=3, directory=os.path.join(workdir, "snaps"))]
    if name == "swa":
        return [kt.callbacks.SWA(start_epoch=1, data=x, num_batches=2, batch_size=BATCH,
                                 backup_dir=backup)]
    if name == "precise_bn":
        return [kt.callbacks.PreciseBatchNorm(x, num_batches=2, batch_size=BATCH)]
    if name == "curves":
        return [kt.callbacks.CurveDiagnostics(backup_dir=backup)]
    return []  # lr_finder: a separate sweep first (see `run_uninterrupted`)


class RateProbe(keras.callbacks.Callback):
    """(epoch, step, rate) before every step, from the optimizer that owns the rate."""

    def __init__(self):
        super().__init__()
        self.records = []
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if keras.backend.backend() == "jax":
            self.model.jax_state_sync()
        optimizer = _rate.base_optimizer(self.model.optimizer)
        step = int(keras.ops.convert_to_numpy(optimizer.iterations))
        rate = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
        self.records.append((self._epoch, step, rate))


def fit_kwargs():
    return dict(batch_size=BATCH, shuffle=False, verbose=0)


def numpy_weights(model):
    return [np.asarray(keras.ops.convert_to_numpy(w), "float64") for w in model.weights]


def run_uninterrupted(cell, workdir):
    """The in-process part of a cell: the whole run, a checkpoint or a kill."""
    x, y = data()
    result = {}
    model = make_model(cell)
    if cell["callback"] == "lr_finder":
        before = numpy_weights(model)
        sweep = RateProbe()
        finder = kt.callbacks.LRFinder(min_lr=1e-4, max_lr=1e-1, num_steps=2)
        model.fit(x, y, epochs=2, callbacks=[finder, sweep], **fit_kwargs())
        result["sweep"] = [r for _, _, r in sweep.records]
        result["sweep_restored"] = all(
            np.array_equal(a, b) for a, b in zip(before, numpy_weights(model))
        ) and int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 0
    probe = RateProbe()
    callbacks = make_callbacks(cell, workdir, x) + [probe]
    if cell["persistence"] == "keras_checkpoint":
        callbacks.append(keras.callbacks.ModelCheckpoint(
            os.path.join(workdir, "ckpt_{epoch}.keras")))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(x, y, epochs=EPOCHS, callbacks=callbacks, **fit_kwargs())
    result["rates"] = probe.records
    result["final"] = numpy_weights(model)
    if cell["persistence"] == "backup_restore":
        killed = make_model(cell)

        class Kill(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                if epoch == 2:
                    raise KeyboardInterrupt  # a killed job

        callbacks = make_callbacks(cell, workdir, x) + [
            keras.callbacks.BackupAndRestore(os.path.join(workdir, "backup")), Kill()]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                killed.fit(x, y, epochs=EPOCHS, callbacks=callbacks, **fit_kwargs())
        except KeyboardInterrupt:
            pass
    return result


def run_continuation(cell, workdir):
    """In a fresh process: continue from the checkpoint or the backup."""
    x, y = data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if cell["persistence"] == "keras_checkpoint":
            # Under the run's policy: Keras wraps the loaded optimizer in a
            # LossScaleOptimizer only then (loaded under float32, Keras skips
            # the saved optimizer variables with a warning).
            with policy(cell):
                model = keras.saving.load_model(os.path.join(workdir, "ckpt_2.keras"))
            # As on another machine: the `.keras` file without the callbacks'
            # saved states (the uninterrupted run's are in `backup`).
            model.fit(x, y, epochs=EPOCHS, initial_epoch=2, callbacks=make_callbacks(
                cell, workdir, x, backup=os.path.join(workdir, "no-backup")), **fit_kwargs())
        else:
            model = make_model(cell)
            model.fit(x, y, epochs=EPOCHS, callbacks=make_callbacks(cell, workdir, x) + [
                keras.callbacks.BackupAndRestore(os.path.join(workdir, "backup"))],
                **fit_kwargs())
    return numpy_weights(model)


def main(spec_path):
    """Continues every cell of the spec; writes each result or error beside it."""
    with open(spec_path) as f:
        spec = json.load(f)
    for item in spec:
        cell, workdir = item["cell"], item["workdir"]
        try:
            weights = run_continuation(cell, workdir)
            np.savez(os.path.join(workdir, "continued.npz"), *weights)
        except Exception as error:  # recorded, checked by the test
            with open(os.path.join(workdir, "error.txt"), "w") as f:
                f.write(f"{type(error).__name__}: {error}")


if __name__ == "__main__":
    main(sys.argv[1])
