"""`kt.callbacks.SelfHealing` on every backend: the JAX job re-runs this module.

A NaN in batch 3, a snapshot after every step: the rollback goes back to the
state after batch 2 and skips batch 3, and the run ends with the weights of a
plain Keras run that never saw batch 3 (BatchNorm statistics and Adam's
moments included), to float32 rounding.
"""

import keras
import numpy as np

import kerastoolkit as kt

BATCH = 32


def _mlp():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(32, activation="relu"),
                              keras.layers.BatchNormalization(), keras.layers.Dense(10, activation="softmax")])
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    return model


def test_nan_batch_run_equals_run_without_it():
    from sklearn.datasets import load_digits

    data = load_digits()
    x, y = (data.data[:256] / 16.0).astype("float32"), data.target[:256].astype("int32")
    bad = x.copy()
    bad[3 * BATCH + 1, 0] = np.nan
    model = _mlp()
    healing = kt.callbacks.SelfHealing(snapshot_every=1)
    model.fit(bad, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0, callbacks=[healing])
    assert [(e["batch"], e["restored"]["batch"], e["seen"]["kind"]) for e in healing.interventions] == [
        (3, 2, "non_finite_loss")]
    keep = np.concatenate([np.arange(b * BATCH, (b + 1) * BATCH) for b in (0, 1, 2, 4, 5, 6, 7)])
    reference = _mlp()
    reference.fit(x[keep], y[keep], batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
    for got, want in zip(model.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 7
