"""Time to accuracy on Fashion-MNIST: plain Keras against the kt.presets recipes.

    python benchmarks/time_to_accuracy.py [--presets fast,cosine_warmup_adamw] [--out results.json]

One small CNN for every run (two 3x3 convolution + 2x2 max-pooling blocks,
32 and 64 filters, then one dense softmax layer; the recipe's dropout, if
any, before it, and its dtype policy, if any, on every layer but the
float32 softmax). Trained on the first 55,000 training images (the last
5,000 are the validation set the recipes' callbacks monitor), evaluated on
the 10,000 test images after every epoch.

- baseline: plain Keras, `Adam()` at a constant rate, batch 128, no
  callbacks, 10 epochs, inputs scaled to [0, 1];
- each preset: its optimizer, schedule, warmup, batch size (128 when the
  recipe has none), epochs (10 when it has none), callbacks, loss (label
  smoothing on one-hot labels), dropout and input standardization.

The baseline and `fast` run in the same process, interleaved epoch by
epoch, so that a busy machine slows both alike. The wall time counts
training only (the per-epoch test evaluation is excluded). The ratio
"fast time to 90% / baseline time to 90%" is the number to read; absolute
times depend on the machine's load.
"""

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import kerastoolkit as kt  # noqa: E402

TARGET = 0.90


def cnn(dropout=None, standardization=None, dtype=None):
    inputs = keras.Input((28, 28, 1))
    x = inputs
    if standardization is not None:
        x = standardization(x)
    for filters in (32, 64):
        x = keras.layers.Conv2D(filters, 3, activation="relu", dtype=dtype)(x)
        x = keras.layers.MaxPooling2D(2, dtype=dtype)(x)
    x = keras.layers.Flatten(dtype=dtype)(x)
    if dropout:
        x = keras.layers.Dropout(dropout, dtype=dtype)(x)
    outputs = keras.layers.Dense(10, activation="softmax", dtype="float32" if dtype else None)(x)
    return keras.Model(inputs, outputs)


def standardization_layer(recipe, x_train):
    """The recipe's standardization: kt.layers.Standardize, else Keras's Normalization (said aloud)."""
    mode = recipe.config["standardization"]
    if mode is None:
        return None, "none"
    try:
        return recipe.standardization(x_train), f"kt.layers.Standardize({mode})"
    except ImportError:
        if mode != "per_channel":
            raise
        layer = keras.layers.Normalization(axis=-1)
        layer.adapt(x_train)
        return layer, "keras.layers.Normalization (per channel; kt.layers.Standardize not installed)"


class Run:
    """One training run, advanced one epoch at a time."""

    def __init__(self, name, data, recipe=None):
        x_train, y_train, x_val, y_val, self.x_test, self.y_test = data
        self.name = name
        keras.utils.set_random_seed(0)
        if recipe is None:
            self.model = cnn()
            self.model.compile(optimizer=keras.optimizers.Adam(), loss="categorical_crossentropy", metrics=["accuracy"])
            self.batch_size, self.epochs, self.callbacks, self.note = 128, 10, [], "plain Keras"
        else:
            self.batch_size = recipe.config["batch_size"] or 128
            self.epochs = recipe.config["epochs"] or 10
            layer, self.note = standardization_layer(recipe, x_train)
            self.model = cnn(recipe.config["dropout"], layer, recipe.config["dtype_policy"])
            if recipe.config["dtype_policy"]:
                self.note += f", {recipe.config['dtype_policy']}"
            steps = -(-len(x_train) // self.batch_size)
            self.model.compile(
                optimizer=recipe.optimizer(steps_per_epoch=steps, epochs=self.epochs, batch_size=self.batch_size),
                loss=recipe.loss(sparse=False),
                metrics=["accuracy"],
            )
            self.callbacks = recipe.callbacks(epochs=self.epochs, directory=f"/tmp/tta_snapshots_{name}", data=x_train)
        import tensorflow as tf

        self.train = (
            tf.data.Dataset.from_tensor_slices((x_train, y_train))
            .shuffle(len(x_train), seed=0, reshuffle_each_iteration=True)
            .batch(self.batch_size)
            .prefetch(2)
        )
        self.validation = (x_val, y_val)
        self.epoch = 0
        self.seconds = 0.0
        self.history = []  # (epoch, cumulative seconds, test accuracy)
        self.stopped = False

    def step(self):
        """Trains one more epoch; returns False when the run is over."""
        if self.stopped or self.epoch >= self.epochs:
            return False
        start = time.perf_counter()
        self.model.fit(
            self.train, validation_data=self.validation, epochs=self.epoch + 1, initial_epoch=self.epoch,
            callbacks=self.callbacks, verbose=0,
        )
        self.seconds += time.perf_counter() - start
        self.epoch += 1
        self.stopped = bool(self.model.stop_training)
        probabilities = self.model.predict(self.x_test, batch_size=1000, verbose=0)
        accuracy = float(np.mean(np.argmax(probabilities, axis=1) == self.y_test))
        self.history.append((self.epoch, round(self.seconds, 2), round(accuracy, 4)))
        print(f"{self.name:22s} epoch {self.epoch:2d}  {self.seconds:7.1f} s  test accuracy {accuracy:.4f}", flush=True)
        return True

    def time_to(self, target):
        return next((seconds for _, seconds, accuracy in self.history if accuracy >= target), None)

    def summary(self):
        return {
            "name": self.name,
            "note": self.note,
            "batch_size": self.batch_size,
            "epochs_planned": self.epochs,
            "history": self.history,
            "final_accuracy": self.history[-1][2] if self.history else None,
            "best_accuracy": max(a for _, _, a in self.history) if self.history else None,
            "seconds_to_90": self.time_to(TARGET),
        }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default=",".join(kt.presets.names()), help="comma-separated preset names (default: all)")
    parser.add_argument("--out", default="time_to_accuracy.json", help="results file (JSON), rewritten after every run")
    parser.add_argument("--train-size", type=int, default=55000, help="training images (default: 55000)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the plain-Keras baseline")
    parser.add_argument(
        "--set", action="append", default=[], metavar="PRESET.FIELD=JSON",
        help="override a recipe field, e.g. --set fast.epochs=10 (the run is named PRESET+FIELD=VALUE)",
    )
    args = parser.parse_args()
    overrides = {}
    for item in args.set:
        key, value = item.split("=", 1)
        preset, field = key.split(".", 1)
        overrides.setdefault(preset, {})[field] = json.loads(value)

    def recipe_of(name):
        extra = overrides.get(name, {})
        label = name + "".join(f"+{k}={v}" for k, v in extra.items())
        return label, kt.presets.get(name, **extra)

    x, y = kt.data.load("fashion_mnist", "train", as_numpy=True)
    x_test, y_test = kt.data.load("fashion_mnist", "test", as_numpy=True)
    one_hot = np.eye(10, dtype="float32")
    n = args.train_size
    data = (x[:n], one_hot[y[:n]], x[55000:], one_hot[y[55000:]], x_test, y_test)

    names = [p for p in args.presets.split(",") if p]
    results = []

    def save():
        baseline = next((r for r in results if r["name"] == "baseline"), None)
        for r in results:
            if baseline and baseline["seconds_to_90"] and r["seconds_to_90"]:
                r["time_to_90_vs_baseline"] = round(r["seconds_to_90"] / baseline["seconds_to_90"], 3)
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)

    # The baseline and `fast` interleaved, epoch by epoch.
    pair = [] if args.no_baseline else [Run("baseline", data)]
    if "fast" in names:
        pair.append(Run(*recipe_of("fast")[:1], data, recipe_of("fast")[1]))
        names.remove("fast")
    while any([run.step() for run in pair]):
        pass
    results.extend(run.summary() for run in pair)
    save()
    for name in names:
        label, recipe = recipe_of(name)
        run = Run(label, data, recipe)
        while run.step():
            pass
        results.append(run.summary())
        save()
    for r in results:
        ratio = r.get("time_to_90_vs_baseline")
        print(f"{r['name']:22s} final {r['final_accuracy']:.4f} best {r['best_accuracy']:.4f} "
              f"90% after {r['seconds_to_90']} s ({ratio}x baseline)")


if __name__ == "__main__":
    main()
