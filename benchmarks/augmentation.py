"""Augmentation policies on Fashion-MNIST (issue 8): throughput and accuracy.

1. Throughput (images/s) of each toolkit layer and policy in a `tf.data`
   pipeline (raw uint8 images, batches of 128, `kt.data.augment_dataset`,
   mapped after batching) against Keras's own layers in the same run
   (`keras.layers.GaussianNoise`, `RandomFlip`, `RandomRotation`) and the
   pipeline without augmentation. One warm-up pass, then the median of 3
   timed passes over 10,000 images.
2. Accuracy: the same small CNN (`kt.models.default_classifier`,
   Standardize on the raw pixels) trained for 3 epochs on a 10,000-image
   subset of the training set, without augmentation and with each policy
   that suits the data (augmentation in the pipeline), tested on the 10,000
   test images. Short on purpose: augmentation pays off over longer runs,
   so this shows the cost of each policy after 3 epochs, not its best case.

Run: `python benchmarks/augmentation.py [--epochs 3 --train 10000]`.
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import kerastoolkit as kt  # noqa: E402

POLICIES = ["geometric", "photometric", "other", "rand-m5-n2", "randaugment", "autoaugment"]


def throughput(x, augment, repeats=3):
    dataset = tf.data.Dataset.from_tensor_slices(x).batch(128)
    if augment is not None:
        dataset = dataset.map(lambda b: tf.saturate_cast(tf.round(augment(tf.cast(b, tf.float32), training=True)), tf.uint8),
                              num_parallel_calls=tf.data.AUTOTUNE)
    dataset = dataset.prefetch(tf.data.AUTOTUNE)
    for _ in dataset:  # warm-up (tracing)
        pass
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in dataset:
            pass
        times.append(time.perf_counter() - start)
    return len(x) / float(np.median(times))


def accuracy(policy, x_train, y_train, x_test, y_test, epochs, seed=0):
    keras.utils.set_random_seed(seed)
    model = kt.models.default_classifier((28, 28, 1), 10, normalization_data=x_train)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    train = tf.data.Dataset.from_tensor_slices((x_train, y_train)).shuffle(len(x_train), seed=seed).batch(128)
    augment = kt.data.augmentation_for("fashion_mnist", policy, raw=True, seed=seed)
    if augment is not None:
        train = kt.data.augment_dataset(train, augment)
    start = time.perf_counter()
    model.fit(train.prefetch(tf.data.AUTOTUNE), epochs=epochs, verbose=0)
    seconds = time.perf_counter() - start
    _, test_accuracy = model.evaluate(x_test, y_test, batch_size=512, verbose=0)
    return test_accuracy, seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train", type=int, default=5000)
    parser.add_argument("--skip-accuracy", action="store_true")
    args = parser.parse_args()
    x_all, y_all = kt.data.load("fashion_mnist", "train", as_numpy=True, raw=True)
    x_test, y_test = kt.data.load("fashion_mnist", "test", as_numpy=True, raw=True)
    x = x_all[:10000]
    print(f"load average {os.getloadavg()[0]:.1f}")
    vr = (0, 255)
    candidates = [
        ("no augmentation", None),
        ("keras.layers.RandomFlip", keras.layers.RandomFlip("horizontal", seed=0)),
        ("keras.layers.RandomRotation(0.05)", keras.layers.RandomRotation(0.05, seed=0)),
        ("keras.layers.GaussianNoise(0.03) (stddev <= 1 only)", keras.layers.GaussianNoise(0.03, seed=0)),
        ("kt RandomGaussianNoise(0.03)", kt.layers.RandomGaussianNoise(0.03, value_range=vr, seed=0)),
        ("kt SaltAndPepperNoise(0.01)", kt.layers.SaltAndPepperNoise(0.01, value_range=vr, seed=0)),
        ("kt RandomJpegQuality(50, 95)", kt.layers.RandomJpegQuality(50, 95, value_range=vr, seed=0)),
        ("kt RandomLensDistortion(0.15)", kt.layers.RandomLensDistortion(0.15, value_range=vr, seed=0)),
    ]
    candidates += [(f"policy {p}", kt.data.augmentation_for("fashion_mnist", p, raw=True, seed=0)) for p in POLICIES]
    print("| pipeline | images/s | vs keras RandomRotation |\n| --- | ---: | ---: |")
    rates = {}
    for name, layer in candidates:
        rates[name] = throughput(x, layer)
        reference = rates.get("keras.layers.RandomRotation(0.05)")
        ratio = f"{rates[name] / reference:.2f}" if reference else ""
        print(f"| {name} | {rates[name]:,.0f} | {ratio} |", flush=True)
    if args.skip_accuracy:
        return
    x_train, y_train = x_all[: args.train], y_all[: args.train]
    print(f"\n{args.epochs} epochs on {args.train} training images, 10,000 test images")
    print("| policy | test accuracy | fit seconds |\n| --- | ---: | ---: |")
    for policy in [None, "geometric", "photometric", "other", "rand-m5-n2", "autoaugment"]:
        acc, seconds = accuracy(policy, x_train, y_train, x_test, y_test, args.epochs)
        print(f"| {policy or 'none'} | {acc:.4f} | {seconds:.0f} |", flush=True)


if __name__ == "__main__":
    main()
