"""Distributed fit throughput: 1 vs 2 worker processes, 1 vs 2 devices, toolkit overhead.

    python benchmarks/distribute.py [--epochs 5] [--repeats 3]

Three measurements of the same fit (an MLP 64-512-512-10 on the 1,797
scikit-learn digits, global batch 64, 28 steps per epoch; the first epoch,
with tracing, is not timed; examples/s from the median of the other epochs'
wall times):

1. `MultiWorkerMirroredStrategy` on 1 vs 2 local worker processes
   (127.0.0.1, `TF_CONFIG`, the toolkit's fix for keras-team/keras#20585;
   plain Keras 3.15 fails on 2 workers, so there is no plain baseline);
2. `MirroredStrategy` over 1 vs 2 logical CPU devices in one process;
3. the toolkit's overhead: the same 2-device `MirroredStrategy` fit, plain
   Keras (`keras.optimizers.SGD`, Keras's own trainer functions) against the
   toolkit's path (the multi-worker fix installed, `kt.optimizers.SGD`, the
   `Warmup` callback, strategy from `kt.distribute.strategy`-style code),
   interleaved `--repeats` times in one process; wall and CPU time ratios.

Each measurement runs in fresh processes (logical devices must be set before
TensorFlow starts). On a 2-core machine, 2 workers or 2 devices share the
same 2 cores: the point is correctness and overhead, not speed-up.
"""

import argparse
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
BATCH = 64


def _worker(spec):
    if spec.get("ports"):
        os.environ["TF_CONFIG"] = json.dumps({
            "cluster": {"worker": [f"127.0.0.1:{p}" for p in spec["ports"]]},
            "task": {"type": "worker", "index": spec["index"]}})
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    cpus = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(
        cpus[0], [tf.config.LogicalDeviceConfiguration()] * spec.get("devices", 1))
    import keras
    from sklearn.datasets import load_digits

    import kerastoolkit as kt

    d = load_digits()
    x = (d.data / 16.0).astype("float32")[: 28 * BATCH]
    y = d.target.astype("int32")[: 28 * BATCH]

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t, self.c = time.perf_counter(), time.process_time()

        def on_epoch_end(self, epoch, logs=None):
            self.times.append((time.perf_counter() - self.t, time.process_time() - self.c))

    def fit(strategy, toolkit):
        keras.utils.set_random_seed(0)
        if toolkit:
            kt.distribute.enable_multi_worker()
        else:
            kt.distribute.disable_multi_worker()
        with strategy.scope():
            model = keras.Sequential([
                keras.Input((64,)), keras.layers.Dense(512, activation="relu"),
                keras.layers.Dense(512, activation="relu"),
                keras.layers.Dense(10, activation="softmax")])
            opt = (kt.optimizers.SGD(0.05, momentum=0.9) if toolkit
                   else keras.optimizers.SGD(0.05, momentum=0.9))
            model.compile(opt, "sparse_categorical_crossentropy")
        timer = Timer()
        timer.times = []
        callbacks = [timer] + ([kt.callbacks.Warmup(warmup_steps=10)] if toolkit else [])
        model.fit(x, y, batch_size=BATCH, epochs=spec["epochs"], shuffle=False, verbose=0,
                  callbacks=callbacks)
        wall = statistics.median(t for t, _ in timer.times[1:])
        cpu = statistics.median(c for _, c in timer.times[1:])
        return {"examples_per_s": len(x) / wall, "wall": wall, "cpu": cpu}

    if spec["mode"] == "multi_worker":
        strategy = kt.distribute.strategy("multi_worker", verbose=0)
        result = fit(strategy, toolkit=True)
    elif spec["mode"] == "mirrored":
        devices = [dv.name for dv in tf.config.list_logical_devices("CPU")]
        strategy = tf.distribute.MirroredStrategy(devices)
        result = fit(strategy, toolkit=False)
    else:  # overhead: one strategy object, modes interleaved
        devices = [dv.name for dv in tf.config.list_logical_devices("CPU")]
        strategy = tf.distribute.MirroredStrategy(devices)
        result = {"plain": [], "toolkit": []}
        for _ in range(spec["repeats"]):
            for mode in ("plain", "toolkit"):
                result[mode].append(fit(strategy, toolkit=mode == "toolkit"))
    result["replicas"] = strategy.num_replicas_in_sync
    with open(spec["out"], "w") as f:
        json.dump(result, f)
    sys.stdout.flush()
    os._exit(0)  # skip TensorFlow's slow multi-worker teardown


def _run(specs, timeout=900):
    sys.path.insert(0, REPO)
    from tests.distribute._cluster import run_processes

    codes, logs = run_processes(specs, os.path.join("/tmp", "kt-bench-distribute"), timeout,
                                script=os.path.abspath(__file__))
    if any(codes):
        raise RuntimeError(f"benchmark process failed {codes}:\n{logs}")
    out = []
    for spec in specs:
        with open(spec["out"]) as f:
            out.append(json.load(f))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    if len(sys.argv) == 2 and sys.argv[1].startswith("{"):  # a process started by _run
        return _worker(json.loads(sys.argv[1]))
    args = parser.parse_args()
    sys.path.insert(0, REPO)
    from tests.distribute._cluster import free_ports

    tmp = "/tmp/kt-bench-distribute"
    os.makedirs(tmp, exist_ok=True)
    rows = []
    for n in (1, 2):
        ports = free_ports(n)
        specs = [dict(mode="multi_worker", ports=ports, index=i, epochs=args.epochs,
                      out=f"{tmp}/mw{n}-{i}.json") for i in range(n)]
        res = _run(specs)
        rows.append((f"MultiWorkerMirroredStrategy, {n} worker process(es)",
                     res[0]["replicas"], res[0]["examples_per_s"]))
    for n in (1, 2):
        (res,) = _run([dict(mode="mirrored", devices=n, epochs=args.epochs,
                            out=f"{tmp}/m{n}.json")])
        rows.append((f"MirroredStrategy, {n} logical CPU device(s)", res["replicas"],
                     res["examples_per_s"]))
    (over,) = _run([dict(mode="overhead", devices=2, epochs=args.epochs,
                         repeats=args.repeats, out=f"{tmp}/over.json")])
    print("| run | replicas | examples/s | ratio to the 1-process/1-device run |")
    print("| --- | ---: | ---: | ---: |")
    for i, (name, replicas, eps) in enumerate(rows):
        base = rows[0 if i < 2 else 2][2]
        print(f"| {name} | {replicas} | {eps:.0f} | {eps / base:.2f} |")
    for key in ("wall", "cpu"):
        plain = statistics.median(r[key] for r in over["plain"])
        toolkit = statistics.median(r[key] for r in over["toolkit"])
        print(f"\nToolkit / plain Keras MirroredStrategy (2 devices), median epoch {key} "
              f"time: {toolkit / plain:.3f} ({args.repeats} interleaved repeats)")


if __name__ == "__main__":
    main()
