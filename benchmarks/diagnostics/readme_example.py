"""The diagnosed run shown in the README: writes docs/images/diagnosed_run.png.

A deep tanh MLP on Fashion-MNIST (6000 images) initialised far too small,
with `CurveDiagnostics` gathering activation/gradient statistics.

    python benchmarks/diagnostics/readme_example.py
"""

import os
import shutil
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from corpus import load_fashion  # noqa: E402

import kerastoolkit as kt  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
    keras.utils.set_random_seed(0)
    x, y, x_val, y_val = load_fashion()
    tiny = keras.initializers.RandomNormal(stddev=0.01)
    model = keras.Sequential(
        [keras.Input((784,))]
        + [keras.layers.Dense(64, activation="tanh", kernel_initializer=tiny) for _ in range(6)]
        + [keras.layers.Dense(10, kernel_initializer=tiny)]
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    log_dir = tempfile.mkdtemp()
    cb = kt.diagnostics.CurveDiagnostics(
        log_dir=log_dir, statistics_every=50, statistics_data=(x_val[:128], y_val[:128])
    )
    import tensorflow as tf

    train = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(
        len(x), seed=1, reshuffle_each_iteration=True).batch(64)
    model.fit(train, epochs=24, validation_data=(x_val, y_val), verbose=0, callbacks=[cb])
    print(cb.report)
    out = os.path.join(ROOT, "docs", "images", "diagnosed_run.png")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    shutil.copy(os.path.join(log_dir, "curves.png"), out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
