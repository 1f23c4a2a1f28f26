"""Issue 23, item 2: time to 90% test accuracy on full Fashion-MNIST, against plain Keras in the same process.

    python benchmarks/headline_speed.py --race --presets fast_cpu,fast --repeats 2
    python benchmarks/headline_speed.py --throughput
    python benchmarks/headline_speed.py --accuracy --presets fast_cpu --set batch_size=512

The issue's CNN (`_cnn.py`) on all 60,000 training images; test accuracy on
the 10,000 test images after every epoch; the wall time counts the `fit`
calls only (the per-epoch test evaluation is excluded).

- `--race`: plain Keras (Adam 1e-3, batch 128, 10 epochs) and each preset
  (its own epochs, batch size, schedule, standardization and dtype policy;
  `--batch-sizes` also races the first preset at other batch sizes, its
  Adam rate scaled by the square root of the batch ratio) run interleaved epoch
  by epoch in this process, so that a busy machine slows all alike; the
  ratio is "preset's time to 90% / plain Keras's time to 90%" (plain
  Keras's whole run when it never gets there). `--repeats` repeats the
  race with new seeds.
- `--throughput`: seconds per epoch of the same CNN, float32 and
  mixed_bfloat16, batch sizes 64-1024, with and without XLA, with the input
  pipeline as a reshuffled `tf.data` dataset and as NumPy arrays:
  interleaved, the first (tracing) epoch not timed. bfloat16 runs on a
  tenth of the data (scaled up) where the CPU has no bfloat16 units.
- `--accuracy`: only the test accuracy after each epoch (no competing run),
  to choose a recipe on a busy machine.

Results go to `--out` (JSON, rewritten after every run).
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras  # noqa: E402
import numpy as np  # noqa: E402

import kerastoolkit as kt  # noqa: E402
from _cnn import Results, accuracy, cnn, fashion, machine  # noqa: E402

TARGET = 0.90


def scale_batch(recipe, batch_size):
    """The recipe at another batch size, its Adam rate scaled by the square root of the ratio.

    The square-root rule for adaptive methods (Malladi et al. 2022); the
    linear rule (Goyal et al. 2017) is SGD's.
    """
    ratio = batch_size / recipe.config["batch_size"]
    return recipe.replace(batch_size=batch_size, learning_rate=recipe.learning_rate() * ratio**0.5)


class Race:
    """One run, trained one epoch at a time (`fit(initial_epoch=...)`)."""

    def __init__(self, name, data, seed, recipe=None, epochs=10, jit_compile="auto"):
        import tensorflow as tf

        x, y, self.x_test, self.y_test = data
        self.name, self.recipe = name, recipe
        keras.utils.set_random_seed(seed)
        if recipe is None:
            self.batch_size, self.epochs, self.callbacks = 128, epochs, []
            self.model = cnn()
            self.model.compile(keras.optimizers.Adam(), "sparse_categorical_crossentropy", jit_compile=jit_compile)
        else:
            self.batch_size = recipe.config["batch_size"] or 128
            self.epochs = recipe.config["epochs"] or epochs
            self.model = cnn(recipe, x)
            steps = -(-len(x) // self.batch_size)
            self.model.compile(
                optimizer=recipe.optimizer(steps_per_epoch=steps, epochs=self.epochs, batch_size=self.batch_size),
                loss=recipe.loss(), jit_compile=jit_compile,
            )
            self.callbacks = recipe.callbacks(epochs=self.epochs, directory=f"/tmp/kt_speed_{name}", data=x)
        data = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
        self.train = data.batch(self.batch_size).prefetch(tf.data.AUTOTUNE)
        if recipe is not None and recipe.augmentation() is not None:
            augment = recipe.augmentation()
            self.train = self.train.map(lambda a, b: (augment(a, training=True), b), num_parallel_calls=tf.data.AUTOTUNE)
        self.epoch, self.seconds, self.history = 0, 0.0, []

    def step(self):
        if self.epoch >= self.epochs or self.reached():
            return False
        start = time.perf_counter()
        self.model.fit(self.train, epochs=self.epoch + 1, initial_epoch=self.epoch, callbacks=self.callbacks,
                       verbose=0, shuffle=False)
        self.seconds += time.perf_counter() - start
        self.epoch += 1
        acc = accuracy(self.model, self.x_test, self.y_test)
        self.history.append((self.epoch, round(self.seconds, 2), round(acc, 4)))
        print(f"  {self.name:24s} epoch {self.epoch:2d} {self.seconds:7.1f} s  test accuracy {acc:.4f}", flush=True)
        return True

    def reached(self):
        return any(a >= TARGET for _, _, a in self.history)

    def time_to_target(self):
        return next((s for _, s, a in self.history if a >= TARGET), None)


def race(args, data, results):
    names = [n for n in args.presets.split(",") if n]
    overrides = {k: json.loads(v) for k, v in (item.split("=", 1) for item in args.set)}
    for repeat in range(args.repeats):
        seed = args.seed + repeat
        label = f"race{args.label}"
        if results.find(run=label, seed=seed):
            continue
        before = machine()
        runs = [Race("plain", data, seed, jit_compile=args.jit)]
        for name in names:
            runs.append(Race(name, data, seed, kt.presets.get(name, **overrides), jit_compile=args.jit))
        first = kt.presets.get(names[0], **overrides) if names else None
        for b in args.batch_sizes:
            if first is None or b == first.config["batch_size"]:
                continue
            scaled = scale_batch(first, b)
            runs.append(Race(f"{names[0]}@{b}", data, seed, scaled, jit_compile=args.jit))
        while any([r.step() for r in runs]):
            pass
        plain = runs[0]
        reference = plain.time_to_target() or plain.seconds
        record = {"run": label, "seed": seed, "machine_before": before, "machine_after": machine(),
                  "plain_reached": plain.reached(), "runs": []}
        for r in runs:
            t = r.time_to_target()
            record["runs"].append({
                "name": r.name, "recipe": r.recipe.to_dict() if r.recipe else "plain Keras", "history": r.history,
                "batch_size": r.batch_size, "seconds_to_90": t,
                "ratio": round(t / reference, 3) if t else None,
                "seconds_per_epoch": round(r.seconds / max(r.epoch, 1), 2),
            })
        results.add(record)
        for r in record["runs"]:
            print(f"{r['name']:24s} 90% after {r['seconds_to_90']} s: ratio {r['ratio']} "
                  f"({r['seconds_per_epoch']} s/epoch)", flush=True)


def throughput(args, data, results):
    import tensorflow as tf

    x, y, _, _ = data
    has_bf16 = "avx512_bf16" in open("/proc/cpuinfo").read() or "amx_bf16" in open("/proc/cpuinfo").read()
    configs = []
    for batch in args.batch_sizes:
        configs.append(("float32", batch, False, "tf.data"))
    configs += [("float32", 128, True, "tf.data"), ("float32", 512, True, "tf.data"), ("float32", 128, False, "numpy"),
                ("mixed_bfloat16", 128, False, "tf.data"), ("mixed_bfloat16", 512, False, "tf.data")]
    models = {}
    for policy, batch, jit, pipeline in configs:
        keras.utils.set_random_seed(0)
        recipe = kt.presets.get("adam", dtype_policy=None if policy == "float32" else policy)
        model = cnn(recipe, x)
        model.compile(keras.optimizers.Adam(), "sparse_categorical_crossentropy", jit_compile=jit)
        n = len(x) if policy == "float32" or has_bf16 else len(x) // 10
        if pipeline == "numpy":
            fit = dict(x=x[:n], y=y[:n], batch_size=batch, shuffle=True)
        else:
            ds = tf.data.Dataset.from_tensor_slices((x[:n], y[:n])).shuffle(n, seed=0, reshuffle_each_iteration=True)
            fit = dict(x=ds.batch(batch).prefetch(tf.data.AUTOTUNE))
        model.fit(**fit, epochs=1, verbose=0)  # tracing
        models[(policy, batch, jit, pipeline)] = (model, fit, len(x) / n)
    times = {key: [] for key in models}
    for _ in range(args.repeats):
        for key, (model, fit, scale) in models.items():
            start = time.perf_counter()
            model.fit(**fit, epochs=1, verbose=0)
            times[key].append((time.perf_counter() - start) * scale)
            print(f"  {key}: {times[key][-1]:.2f} s/epoch", flush=True)
    reference = np.median(times[("float32", 128, False, "tf.data")])
    record = {"run": f"throughput{args.label}", "seed": 0, "machine": machine(), "has_bf16_units": has_bf16, "rows": []}
    for key, values in times.items():
        record["rows"].append({"dtype": key[0], "batch_size": key[1], "jit_compile": key[2], "pipeline": key[3],
                               "seconds_per_epoch": round(float(np.median(values)), 2), "all": [round(v, 2) for v in values],
                               "vs_float32_128": round(float(np.median(values) / reference), 3)})
        print(record["rows"][-1], flush=True)
    results.add(record)


def accuracy_only(args, data, results):
    overrides = {k: json.loads(v) for k, v in (item.split("=", 1) for item in args.set)}
    for name in args.presets.split(","):
        base = kt.presets.get(name, **overrides)
        for b in args.batch_sizes or [base.config["batch_size"]]:
            recipe = scale_batch(base, b) if b != base.config["batch_size"] else base
            label = name + "".join(f"+{k}={json.dumps(v)}" for k, v in overrides.items()) + f"@{b}" + args.label
            accuracy_run(args, data, results, recipe, label)


def accuracy_run(args, data, results, recipe, label):
    if results.find(run=label, seed=args.seed):
        return
    run = Race(label, data, args.seed, recipe)
    run.reached = lambda: False  # train every epoch
    while run.step():
        pass
    results.add({"run": label, "seed": args.seed, "recipe": recipe.to_dict(), "history": run.history,
                 "machine": machine()})


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--race", action="store_true")
    parser.add_argument("--throughput", action="store_true")
    parser.add_argument("--accuracy", action="store_true")
    parser.add_argument("--presets", default="fast")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=JSON")
    parser.add_argument("--batch-sizes", type=int, nargs="*", default=[64, 128, 256, 512, 1024])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jit", default="auto", type=lambda s: {"true": True, "false": False}.get(s.lower(), s))
    parser.add_argument("--label", default="")
    parser.add_argument("--out", default="benchmarks/results/headline_speed.json")
    args = parser.parse_args()
    data = fashion()
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    results = Results(args.out)
    if args.throughput:
        throughput(args, data, results)
    if args.accuracy:
        accuracy_only(args, data, results)
    if args.race:
        race(args, data, results)


if __name__ == "__main__":
    main()
