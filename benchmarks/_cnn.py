"""The issue-23 Fashion-MNIST setup shared by the headline benchmarks.

One small CNN for every run (two 3x3 convolution + 2x2 max-pooling blocks
with 32 and 64 filters, Dense 128, Dense 10 softmax), the full 60,000
training images and the 10,000 test images (`kt.data.load`, inputs in
[0, 1]). A recipe is applied whole, as a Keras user would: its
`standardization` layer in front (adapted to the training images), its
dropout before each dense layer, its dtype policy on every layer but the
float32 softmax, and `recipe.fit` (its optimizer, schedule, loss,
augmentation pipeline and callbacks).
"""

import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import kerastoolkit as kt  # noqa: E402


def fashion():
    """`(x, y, x_test, y_test)`: all 60,000 training and 10,000 test images, float32 in [0, 1].

    `KT_BENCH_SMOKE=N` keeps the first N training and N // 2 test images (to try a script quickly).
    """
    x, y = kt.data.load("fashion_mnist", "train", as_numpy=True)
    x_test, y_test = kt.data.load("fashion_mnist", "test", as_numpy=True)
    n = int(os.environ.get("KT_BENCH_SMOKE", 0))
    if n:
        return x[:n], y[:n], x_test[: n // 2], y_test[: n // 2]
    return x, y, x_test, y_test


def cnn(recipe=None, x_train=None, filters=(32, 64), dense=128, name=None):
    """The issue's CNN, with the recipe's standardization, dropout and dtype policy (`None`: plain Keras)."""
    config = recipe.config if recipe is not None else {"dtype_policy": None, "dropout": None, "standardization": None}
    previous = keras.mixed_precision.global_policy()
    if config["dtype_policy"]:
        keras.mixed_precision.set_global_policy(config["dtype_policy"])
    try:
        inputs = keras.Input((28, 28, 1))
        x = inputs
        if config["standardization"]:
            x = recipe.standardization(x_train)(x)
        for f in filters:
            x = keras.layers.Conv2D(f, 3, activation="relu")(x)
            x = keras.layers.MaxPooling2D(2)(x)
        x = keras.layers.Flatten()(x)
        for units in (dense,) if dense else ():
            if config["dropout"]:
                x = keras.layers.Dropout(config["dropout"])(x)
            x = keras.layers.Dense(units, activation="relu")(x)
        if config["dropout"]:
            x = keras.layers.Dropout(config["dropout"])(x)
        outputs = keras.layers.Dense(10, activation="softmax", dtype="float32")(x)
        return keras.Model(inputs, outputs, name=name)
    finally:
        keras.mixed_precision.set_global_policy(previous)


def accuracy(model, x, y, batch_size=1000):
    return float(np.mean(np.argmax(model.predict(x, batch_size=batch_size, verbose=0), axis=-1) == y))


class EpochLog(keras.callbacks.Callback):
    """Training seconds (its own test evaluation excluded) and test accuracy after every epoch."""

    def __init__(self, x_test, y_test, label="", evaluated=None, keep_weights=False):
        super().__init__()
        self.x_test, self.y_test, self.label = x_test, y_test, label
        self.evaluated = evaluated  # the model to test, when not the one trained (a Distiller's student)
        self.weights = [] if keep_weights else None  # every epoch's weights, for averages after the run
        self.seconds = 0.0
        self.history = []  # (epoch, cumulative training seconds, test accuracy, training loss, training accuracy)

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds += time.perf_counter() - self.start
        model = self.evaluated or self.model
        if self.weights is not None:
            self.weights.append([np.array(w) for w in model.get_weights()])
        acc = accuracy(model, self.x_test, self.y_test)
        train = [round(float(logs[k]), 4) if logs and k in logs else None for k in ("loss", "accuracy")]
        self.history.append((epoch + 1, round(self.seconds, 2), round(acc, 4), *train))
        print(f"  {self.label} epoch {epoch + 1:2d} {self.seconds:7.1f} s  test accuracy {acc:.4f}  "
              f"(training loss {train[0]}, accuracy {train[1]})", flush=True)


def plain_keras(x, y, x_test, y_test, seed, epochs=10, label="plain"):
    """Plain Keras: `Adam()` at a constant rate, batch 128, inputs in [0, 1], a reshuffled tf.data pipeline."""
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    model = cnn()
    model.compile(keras.optimizers.Adam(), "sparse_categorical_crossentropy", metrics=["accuracy"])
    data = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    log = EpochLog(x_test, y_test, label)
    model.fit(data.batch(128).prefetch(tf.data.AUTOTUNE), epochs=epochs, callbacks=[log], verbose=0)
    return model, log


def run_recipe(recipe, x, y, x_test, y_test, seed, epochs=None, label="", directory="/tmp/kt_bench_snapshots",
               filters=(32, 64), dense=128, keep_weights=False):
    """`recipe.fit` on the CNN (standardization in front); returns `(model, EpochLog)`."""
    keras.utils.set_random_seed(seed)
    model = cnn(recipe, x, filters=filters, dense=dense)
    log = EpochLog(x_test, y_test, label, keep_weights=keep_weights)
    recipe.fit(model, (x, y), epochs=epochs, directory=directory, callbacks=[log], verbose=0, seed=seed)
    return model, log


class Results:
    """A JSON list of result records, rewritten after every record (a killed job loses one run at most)."""

    def __init__(self, path):
        self.path = path
        self.records = []
        if os.path.exists(path):
            with open(path) as f:
                self.records = json.load(f)

    def find(self, **keys):
        return next((r for r in self.records if all(r.get(k) == v for k, v in keys.items())), None)

    def add(self, record):
        self.records = [r for r in self.records if not (r["run"] == record["run"] and r["seed"] == record["seed"])]
        self.records.append(record)
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.records, f, indent=1)
        os.replace(tmp, self.path)


def machine():
    """The CPU model and the load average, for the record."""
    name = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            name = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": name, "cores": os.cpu_count(), "load_average": os.getloadavg()}
