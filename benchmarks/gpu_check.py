"""GPU check: a toolkit fit against plain Keras, data-parallel, mixed_float16.

    python benchmarks/gpu_check.py            # on a machine with GPUs
    python benchmarks/gpu_check.py --allow-cpu --steps 20   # smoke run anywhere

Uses `tf.distribute.MirroredStrategy` over every GPU when TensorFlow is
installed and the backend is TensorFlow; otherwise Keras's JAX backend with
`keras.distribution.DataParallel` over every GPU (GPU machines here have JAX,
not TensorFlow). Both runs use the `mixed_float16` policy, the same model
(a small CNN on generated 32x32x3 images, labels from a fixed random teacher,
nothing downloaded), the same data and global batch. The toolkit run uses
`kt.optimizers.SGD` with a momentum schedule, `kt.callbacks.Warmup` and
`kt.callbacks.CurveDiagnostics`; the plain run `keras.optimizers.SGD`.
Modes are interleaved; the first epoch (compilation) is not timed. Prints
the device, the replica count, the median step time of each mode and their
ratio, and checks that both runs trained (final loss below the first).
"""

import argparse
import importlib.util
import json
import os
import statistics
import sys
import time

HAS_TF = importlib.util.find_spec("tensorflow") is not None
os.environ.setdefault("KERAS_BACKEND", "tensorflow" if HAS_TF else "jax")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402

import kerastoolkit as kt  # noqa: E402


def data(n, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 32, 32, 3)).astype("float32")
    teacher = rng.normal(size=(32 * 32 * 3, 10)).astype("float32")
    y = np.argmax(x.reshape(n, -1) @ teacher, axis=1).astype("int32")
    return x, y


def build(toolkit):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((32, 32, 3)),
        keras.layers.Conv2D(64, 3, padding="same", activation="relu"),
        keras.layers.Conv2D(64, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(128, 3, padding="same", activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(10, activation="softmax", dtype="float32"),
    ])
    if toolkit:
        optimizer = kt.optimizers.SGD(
            0.05, momentum=kt.schedules.Warmup(0.9, warmup_steps=50, start=0.5))
    else:
        optimizer = keras.optimizers.SGD(0.05, momentum=0.9)
    model.compile(optimizer, "sparse_categorical_crossentropy")
    return model


class Timer(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.times = []

    def on_epoch_begin(self, epoch, logs=None):
        self.t = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self.t)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch-size", type=int, default=512, help="global batch")
    parser.add_argument("--steps", type=int, default=100, help="steps per epoch")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--allow-cpu", action="store_true", help="run without a GPU")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = [d.name for d in tf.config.list_logical_devices("GPU")]
    else:
        gpus = [d for d in keras.distribution.list_devices() if "cpu" not in d.lower()]
    if not gpus and not args.allow_cpu:
        sys.exit("No GPU found (pass --allow-cpu for a smoke run).")
    keras.mixed_precision.set_global_policy("mixed_float16")
    if backend == "tensorflow":
        strategy = tf.distribute.MirroredStrategy(gpus or None)
        scope, replicas = strategy.scope, strategy.num_replicas_in_sync
    else:
        devices = gpus or keras.distribution.list_devices()
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
        import contextlib

        scope, replicas = contextlib.nullcontext, len(devices)
    x, y = data(args.batch_size * args.steps)
    results = {"plain": [], "toolkit": []}
    losses = {}
    for _ in range(args.repeats):
        for mode in ("plain", "toolkit"):
            with scope():
                model = build(mode == "toolkit")
            timer = Timer()
            callbacks = [timer]
            if mode == "toolkit":
                callbacks += [kt.callbacks.Warmup(warmup_steps=20), kt.callbacks.CurveDiagnostics()]
            hist = model.fit(x, y, batch_size=args.batch_size, epochs=args.epochs,
                             shuffle=False, verbose=0, callbacks=callbacks)
            results[mode].append(statistics.median(timer.times[1:]) / args.steps)
            losses[mode] = hist.history["loss"]
    step = {mode: statistics.median(v) for mode, v in results.items()}
    report = {
        "backend": backend,
        "devices": gpus or ["cpu"],
        "replicas": replicas,
        "policy": "mixed_float16",
        "global_batch": args.batch_size,
        "step_ms": {m: 1000 * s for m, s in step.items()},
        "toolkit_over_plain": step["toolkit"] / step["plain"],
        "loss_first_last": {m: (v[0], v[-1]) for m, v in losses.items()},
    }
    print(json.dumps(report, indent=2))
    for mode, values in losses.items():
        if not values[-1] < values[0]:
            sys.exit(f"The {mode} run did not train: loss {values}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
