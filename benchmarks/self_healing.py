"""`kt.callbacks.SelfHealing`: its overhead, the runs it rescues, and healthy runs left alone.

    python benchmarks/self_healing.py overhead [--repeats 3] [--train 6400]
    python benchmarks/self_healing.py rescue [--seeds 0 1 2] [--epochs 20]
    python benchmarks/self_healing.py healthy [--only NAME]

- `overhead`: the Fashion-MNIST CNN (`kt.models.default_classifier`, the
  `kerastoolkit train` model) on a subset, Adam, batch 128, the same fit
  without and with the callback (snapshots every K steps for several K),
  interleaved, repeated. Per-step wall and CPU time of the epochs after the
  first (the first traces), the median over steps; the ratio to plain Keras.
- `rescue`: runs that fail with plain Keras, on digits (1437 training and
  360 test images, an MLP 64-256-256-10), each with plain Keras, with
  `keras.callbacks.TerminateOnNaN`, with `SelfHealing`, and without the
  fault; the final test accuracy over several seeds:
  (a) SGD with momentum 0.9 at 0.3, a few times too high (0.05 trains
  well): the loss falls for an epoch, then the run collapses;
  (b) three training examples hold a NaN (every epoch, in shuffled batches);
  (c) a warmup over 3 epochs to 0.5, ten times the rate that works, SGD
  with momentum 0.9.
- `healthy`: every preset on every dataset as `kerastoolkit train` builds it
  (the preset's callbacks, `SelfHealing` among them), shorter: the
  interventions on runs with no fault (there should be none), and how close
  each rule came to firing (`margins`: 1 is an intervention).
"""

import argparse
import json
import os
import resource
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import kerastoolkit as kt  # noqa: E402
from kerastoolkit.callbacks.self_healing import _Detector  # noqa: E402


def _cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# ------------------------------------------------------------------ overhead


class StepTimer(keras.callbacks.Callback):
    """Wall and CPU seconds between consecutive batch ends, epochs after the first."""

    def on_train_begin(self, logs=None):
        self.wall, self.cpu, self._last = [], [], None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch, self._last = epoch, None

    def on_train_batch_end(self, batch, logs=None):
        now = (time.perf_counter(), _cpu())
        if self._last is not None and self._epoch > 0:
            self.wall.append(now[0] - self._last[0])
            self.cpu.append(now[1] - self._last[1])
        self._last = now


def overhead(args):
    from _fashion import load_fashion

    (x, y), _ = load_fashion(train=args.train, test=10)
    configs = {"keras": None}
    for k in args.every:
        configs[f"K={k}"] = k
    results = {name: {"wall": [], "cpu": []} for name in configs}
    for repeat in range(args.repeats):
        for name, every in configs.items():
            keras.utils.set_random_seed(repeat)
            model = kt.models.default_classifier((28, 28, 1), 10, normalization_data=x)
            model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy",
                          metrics=["accuracy"])
            timer = StepTimer()
            callbacks = [timer] if every is None else [kt.callbacks.SelfHealing(snapshot_every=every), timer]
            model.fit(x, y, batch_size=128, epochs=args.epochs, verbose=0, callbacks=callbacks)
            results[name]["wall"].append(float(np.median(timer.wall)))
            results[name]["cpu"].append(float(np.median(timer.cpu)))
            print(f"repeat {repeat} {name}: {1e3 * results[name]['wall'][-1]:.1f} ms/step wall, "
                  f"{1e3 * results[name]['cpu'][-1]:.1f} ms CPU", flush=True)
    base = results["keras"]
    summary = {"components": components(x, y)}
    for name, r in results.items():
        wall = [a / b for a, b in zip(r["wall"], base["wall"])]
        cpu = [a / b for a, b in zip(r["cpu"], base["cpu"])]
        summary[name] = {"ms_per_step_wall": r["wall"], "ms_per_step_cpu": r["cpu"],
                         "ratio_wall": wall, "ratio_cpu": cpu,
                         "median_ratio_wall": float(np.median(wall)),
                         "median_ratio_cpu": float(np.median(cpu))}
        print(f"{name:8s} wall x{np.median(wall):.3f} (per repeat {np.round(wall, 3).tolist()}), "
              f"CPU x{np.median(cpu):.3f} (per repeat {np.round(cpu, 3).tolist()})")
    return summary


def components(x, y, calls=300):
    """CPU and wall time of the callback's own work per step, measured alone
    (less noisy than the difference of two fits on a shared machine): the
    traced checks (the loss tracker before the step, the tracker and finite
    weights after it), the Python rules, and one snapshot copy; against one
    plain training step of the same model."""
    from kerastoolkit.callbacks import self_healing

    keras.utils.set_random_seed(0)
    model = kt.models.default_classifier((28, 28, 1), 10, normalization_data=x)
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    timer = StepTimer()
    model.fit(x, y, batch_size=128, epochs=2, verbose=0, callbacks=[timer])
    state = self_healing._make_state(model)
    detector = _Detector(50, 20, 10.0, 0.5)
    losses = 0.5 + 0.1 * np.random.default_rng(0).random(calls)

    def timed(function, n):
        function(0)  # traces
        wall, cpu = time.perf_counter(), _cpu()
        for i in range(n):
            function(i)
        return (time.perf_counter() - wall) / n, (_cpu() - cpu) / n

    def rules(i):
        if detector.check(losses[i]) is None:
            detector.accept(losses[i])

    out = {
        "step": (float(np.median(timer.wall)), float(np.median(timer.cpu))),
        "check": timed(lambda i: (state.tracker(), state.observe()), calls),
        "rules": timed(rules, calls),
        "snapshot": timed(lambda i: state.save(0), calls // 5),
        "variables": int(sum(np.prod(v.shape) for v in state.state + state.metrics)),
    }
    step_cpu = out["step"][1]
    for name in ("check", "rules", "snapshot"):
        print(f"{name:9s} {1e3 * out[name][0]:.3f} ms wall, {1e3 * out[name][1]:.3f} ms CPU "
              f"({100 * out[name][1] / step_cpu:.2f}% of a step's {1e3 * step_cpu:.1f} ms CPU)")
    for every in (1, 10, 50):
        share = (out["check"][1] + out["rules"][1] + out["snapshot"][1] / every) / step_cpu
        out[f"estimate_K={every}"] = share
        print(f"estimated overhead with K={every}: {100 * share:.2f}% CPU")
    return out


# ------------------------------------------------------------------ rescue


def _digits():
    x, y = kt.data.load("digits", "train", as_numpy=True)
    xt, yt = kt.data.load("digits", "test", as_numpy=True)
    return x.reshape(len(x), -1), y, xt.reshape(len(xt), -1), yt


def _mlp(seed, optimizer):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(256, activation="relu"),
                              keras.layers.Dense(256, activation="relu"),
                              keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer, "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _scenario(name, faulty, seed):
    """`(optimizer, callbacks, poisoned training inputs or None)` of a scenario."""
    sgd = keras.optimizers.SGD
    if name == "a_rate_too_high":
        return sgd(0.3 if faulty else 0.05, momentum=0.9), [], None
    if name == "b_nan_examples":
        poison = np.random.default_rng(seed).choice(1437, size=3, replace=False) if faulty else None
        return keras.optimizers.Adam(1e-3), [], poison
    if name == "c_warmup_overshoot":
        return sgd(0.5 if faulty else 0.05, momentum=0.9), [kt.callbacks.Warmup(warmup_epochs=3)], None
    raise ValueError(name)


def rescue(args):
    x, y, xt, yt = _digits()
    out = {}
    for scenario in args.scenarios:
        out[scenario] = {}
        for variant in args.variants:
            accuracies, interventions = [], []
            for seed in args.seeds:
                optimizer, callbacks, poison = _scenario(scenario, variant != "no_fault", seed)
                x_fit = x.copy()
                if poison is not None:
                    x_fit[poison, 10] = np.nan
                healing = None
                if variant == "terminate_on_nan":
                    callbacks = callbacks + [keras.callbacks.TerminateOnNaN()]
                if variant == "self_healing":
                    healing = kt.callbacks.SelfHealing(**({"factor": args.factor} if args.factor else {}))
                    callbacks = callbacks + [healing]
                model = _mlp(seed, optimizer)
                try:
                    model.fit(x_fit, y, batch_size=32, epochs=args.epochs, verbose=0,
                              shuffle=True, callbacks=callbacks)
                except kt.callbacks.SelfHealingError:
                    pass  # gave up: the model holds its newest snapshot
                probabilities = model.predict(xt, verbose=0)
                accuracy = float(np.mean(np.argmax(np.nan_to_num(probabilities), -1) == yt))
                if not np.isfinite(probabilities).all():
                    accuracy = float(np.mean(yt == 0))  # NaN outputs: no prediction
                accuracies.append(accuracy)
                if healing is not None:
                    interventions.append([
                        (e["step"], e["seen"]["kind"], e["action"], round(e["learning_rate"]["after"], 6))
                        for e in healing.interventions])
            out[scenario][variant] = {"accuracy": accuracies, "mean": float(np.mean(accuracies))}
            if interventions:
                out[scenario][variant]["interventions"] = interventions
            print(f"{scenario:20s} {variant:17s} test accuracy {np.round(accuracies, 4).tolist()} "
                  f"mean {np.mean(accuracies):.4f}", flush=True)
            for seed, entries in zip(args.seeds, interventions):
                print(f"    seed {seed}: {len(entries)} interventions {entries[:8]}", flush=True)
    return out


# ------------------------------------------------------------------ healthy runs


DATASETS = {"digits": (20, 32, None), "mnist1d": (20, 64, None), "fashion_mnist": (3, 128, 10000)}


class Losses(keras.callbacks.Callback):
    """Each step's own loss from Keras's loss tracker (as SelfHealing reads it)."""

    def on_train_begin(self, logs=None):
        from kerastoolkit import _keras_compat

        self.tracker = _keras_compat.loss_tracker_variables(self.model)
        self.losses = []

    def on_epoch_begin(self, epoch, logs=None):
        self.previous = (0.0, 0.0)

    def on_train_batch_end(self, batch, logs=None):
        total, count = (float(keras.ops.convert_to_numpy(v)) for v in self.tracker)
        self.losses.append((total - self.previous[0]) / max(count - self.previous[1], 1e-12))
        self.previous = (total, count)


def margins(losses, healing):
    """How far each rule came to its threshold: the largest `(x − level) / (threshold − level)`
    over the run (1: an intervention; the level is the median for spikes, the best for divergence)."""
    detector = _Detector(healing.window, healing.min_steps, healing.spike_threshold, healing.divergence)
    spike = divergence = 0.0
    for loss in losses:
        if detector.seen >= detector.min_steps:
            threshold, median = detector.spike_threshold_for_next()
            spike = max(spike, (loss - median) / (threshold - median))
            current, threshold = detector.divergence_of(loss)
            divergence = max(divergence, (current - detector.best) / (threshold - detector.best))
        if detector.check(loss) is None:
            detector.accept(loss)
    return spike, divergence


def healthy(args):
    out = {}
    for name in kt.presets.names():
        for dataset, (epochs, batch_size, n) in DATASETS.items():
            for batch in ([batch_size, 8] if dataset == "digits" and name in ("adam", "sgd_warmup_cosine") else [batch_size]):
                run = f"{dataset}/{name}/b{batch}"
                if args.only and args.only not in run:
                    continue
                out[run] = _healthy_run(dataset, name, epochs, batch, n)
                print(run, out[run], flush=True)
    return out


def _healthy_run(dataset, name, epochs, batch_size, n, seed=0):
    recipe = kt.presets.get(name)
    images = dataset in ("digits", "fashion_mnist")
    keras.utils.set_random_seed(seed)
    x, y = kt.data.load(dataset, "train", as_numpy=True, raw=images)
    if n:
        x, y = x[:n], y[:n]
    n_val = len(x) // 10
    meta = kt.data.info(dataset)
    policy = recipe.config["augmentation"]
    augmentation = kt.data.augmentation_for(dataset, policy, raw=images, seed=seed) if policy and images else None
    previous = keras.mixed_precision.global_policy()
    if recipe.config["dtype_policy"]:
        keras.mixed_precision.set_global_policy(recipe.config["dtype_policy"])
    try:
        model = kt.models.default_classifier(meta.input_shape, meta.num_classes, normalization_data=x[n_val:],
                                             augmentation=augmentation, dropout=recipe.config["dropout"])
        steps = -(-(len(x) - n_val) // batch_size)
        recipe.compile(model, steps_per_epoch=steps, epochs=epochs, batch_size=batch_size)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    callbacks = recipe.callbacks(epochs=epochs, directory=f"/tmp/self_healing_snapshots/{dataset}_{name}",
                                 data=x[n_val:])
    (healing,) = [c for c in callbacks if isinstance(c, kt.callbacks.SelfHealing)]
    losses = Losses()
    start = time.time()
    history = model.fit(x[n_val:], y[n_val:], batch_size=batch_size, epochs=epochs, verbose=0,
                        validation_data=(x[:n_val], y[:n_val]), callbacks=callbacks + [losses])
    spike, divergence = margins(losses.losses, healing)
    return {"steps": len(losses.losses), "interventions": len(healing.interventions),
            "spike_margin": round(spike, 3), "divergence_margin": round(divergence, 3),
            "val_accuracy": round(float(history.history["val_accuracy"][-1]), 4),
            "seconds": round(time.time() - start, 1)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("overhead", "rescue", "healthy"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--train", type=int, default=6400)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--every", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--only", default="")
    parser.add_argument("--scenarios", nargs="+", default=["a_rate_too_high", "b_nan_examples", "c_warmup_overshoot"])
    parser.add_argument("--variants", nargs="+", default=["keras", "terminate_on_nan", "self_healing", "no_fault"])
    parser.add_argument("--factor", type=float, default=None, help="SelfHealing's factor (default: its own)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    start = time.time()
    if args.mode == "overhead":
        args.epochs = args.epochs or 3
        result = overhead(args)
    elif args.mode == "rescue":
        args.epochs = args.epochs or 20
        result = rescue(args)
    else:
        result = healthy(args)
    result = {"mode": args.mode, "seconds": round(time.time() - start, 1), "results": result}
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
