"""Overhead of `CurveDiagnostics` on `model.fit`, against plain Keras, same run.

Fits the same MLP on a Fashion-MNIST subset (6000 images) with no callback,
with `CurveDiagnostics()` (per-step loss, no statistics) and with activation/
gradient statistics every N steps. The modes are interleaved, repeated, and
timed per epoch after the first (which includes tracing); the result is the
ratio of median epoch times to plain Keras.

    python benchmarks/diagnostics/overhead.py [--repeats 6] [--epochs 5]
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

import keras  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from corpus import load_fashion  # noqa: E402

from kerastoolkit.diagnostics import CurveDiagnostics  # noqa: E402


class EpochTimer(keras.callbacks.Callback):
    """Wall and CPU time of every epoch (a per-epoch hook: no per-step cost).

    CPU time (all threads of this process) is less disturbed than wall time
    by other processes on a shared machine.
    """

    def on_train_begin(self, logs=None):
        self.times = []

    def on_epoch_begin(self, epoch, logs=None):
        self._t = (time.perf_counter(), time.process_time())

    def on_epoch_end(self, epoch, logs=None):
        self.times.append((time.perf_counter() - self._t[0],
                           time.process_time() - self._t[1]))


def fit_once(mode, x, y, xv, yv, epochs, batch_size):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((x.shape[1],)),
        keras.layers.Dense(256, activation="relu"),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dense(10),
    ])
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    timer = EpochTimer()
    callbacks = [timer]
    if mode == "diagnostics":
        callbacks.append(CurveDiagnostics())
    elif mode == "diagnostics_no_nan_capture":
        callbacks.append(CurveDiagnostics(capture_nan_batch=False))
    elif mode.startswith("statistics_every_"):
        every = int(mode.rsplit("_", 1)[1])
        callbacks.append(CurveDiagnostics(statistics_every=every,
                                          statistics_data=(xv[:128], yv[:128])))
    model.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=0, callbacks=callbacks)
    keras.backend.clear_session()
    return timer.times[1:]  # the first epoch includes tracing


def callback_cost_us(n=200_000):
    """Microseconds per `on_train_batch_end` call of the recording callback."""
    cb = CurveDiagnostics()
    cb.on_train_begin()
    logs = {"loss": np.float32(0.5)}
    start = time.perf_counter()
    for i in range(n):
        cb.on_train_batch_end(i, logs)
    return 1e6 * (time.perf_counter() - start) / n


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args(argv)
    x, y, xv, yv = load_fashion()
    modes = ["plain", "diagnostics", "diagnostics_no_nan_capture",
             "statistics_every_100", "statistics_every_20"]
    times = {m: [] for m in modes}
    for rep in range(args.repeats):
        order = modes if rep % 2 == 0 else modes[::-1]
        for mode in order:
            times[mode] += fit_once(mode, x, y, xv, yv, args.epochs, args.batch_size)
    steps = int(np.ceil(len(x) / args.batch_size))
    wall = {m: np.array([t[0] for t in v]) for m, v in times.items()}
    cpu = {m: np.array([t[1] for t in v]) for m, v in times.items()}
    print(f"backend {keras.backend.backend()}, {len(x)} examples, batch "
          f"{args.batch_size} ({steps} steps/epoch), {args.repeats} repeats x "
          f"{args.epochs - 1} timed epochs per mode")
    print("| mode | median wall s/epoch | wall ratio | median CPU s/epoch | CPU ratio |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for mode in modes:
        w, c = float(np.median(wall[mode])), float(np.median(cpu[mode]))
        print(f"| {mode} | {w:.3f} | {w / np.median(wall['plain']):.3f} | {c:.3f} | "
              f"{c / np.median(cpu['plain']):.3f} |")
    print()
    print(f"per-step Python cost of CurveDiagnostics.on_train_batch_end: "
          f"{callback_cost_us():.2f} us (plain step: "
          f"{1e6 * np.median(wall['plain']) / steps:.0f} us wall)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
