"""PreciseBatchNorm (also under MirroredStrategy) and SWA."""

import warnings

import keras
import numpy as np
import pytest

from kerastoolkit.callbacks import SWA, PreciseBatchNorm, recompute_batchnorm_statistics
from tests.callbacks._util import digits, small_cnn
from tests.conftest import requires_tensorflow
from tests.harness import assert_config_roundtrip, assert_saved_model_roundtrip


def np_precise_stats(model, x, num_batches, batch_size, seed=0, in_order=False):
    """Averages of per-batch mean and (biased) variance of the BN input.

    Batches of array rows as documented: a seeded random permutation of the
    rows, cut into consecutive batches.
    """
    conv = keras.Model(model.inputs[0], model.layers[0].output)  # the BN's input
    order = np.arange(len(x)) if in_order else np.random.default_rng(seed).permutation(len(x))
    means, variances = [], []
    for k in range(num_batches):
        rows = np.sort(order[k * batch_size:(k + 1) * batch_size])
        a = keras.ops.convert_to_numpy(conv(x[rows]))
        a = a.reshape(-1, a.shape[-1]).astype("float64")
        means.append(a.mean(0))
        variances.append(a.var(0))
    return np.mean(means, 0), np.mean(variances, 0)


def bn_stats(model):
    bn = model.layers[1]
    return (keras.ops.convert_to_numpy(bn.moving_mean),
            keras.ops.convert_to_numpy(bn.moving_variance))


def test_precise_batchnorm_sets_training_set_statistics():
    (x, y), _ = digits()
    model = small_cnn()
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    momentum = model.layers[1].momentum
    model.fit(x, y, batch_size=64, epochs=2, verbose=0,
              callbacks=[PreciseBatchNorm(x, num_batches=8, batch_size=48)])
    mean, var = np_precise_stats(model, x, 8, 48)
    got_mean, got_var = bn_stats(model)
    np.testing.assert_allclose(got_mean, mean, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got_var, var, rtol=1e-5, atol=1e-5)
    assert model.layers[1].momentum == momentum  # put back


@requires_tensorflow
def test_recompute_from_dataset_and_every_epoch():
    import tensorflow as tf

    (x, y), _ = digits()
    model = small_cnn()
    model.compile("adam", "sparse_categorical_crossentropy")
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(40)
    cb = PreciseBatchNorm(ds, num_batches=5, frequency="epoch")
    seen = []
    model.fit(ds, epochs=2, verbose=0, shuffle=False, callbacks=[
        cb, keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(bn_stats(model)[0]))])
    mean, _ = np_precise_stats(model, x, 5, 40, in_order=True)  # a dataset: its order
    np.testing.assert_allclose(seen[-1], mean, atol=1e-5)
    assert recompute_batchnorm_statistics(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]),
                                          np.zeros((4, 2), "float32")) == 0
    with pytest.raises(ValueError, match="num_batches=0"):
        PreciseBatchNorm(x, num_batches=0)
    with pytest.raises(ValueError, match="frequency='batch'"):
        PreciseBatchNorm(x, frequency="batch")
    assert_config_roundtrip(PreciseBatchNorm(num_batches=7, batch_size=16, frequency="epoch"))


def replica_means(model):
    value = model.layers[1].moving_mean.value
    return [np.asarray(c) for c in value.values]


@pytest.mark.slow
@requires_tensorflow
def test_mirrored_strategy_drift_and_fix(mirrored_strategy, tmp_path):
    (x, y), _ = digits()
    order = np.argsort(y, kind="stable")  # replicas see different digits
    x, y = x[order][:1024], y[order][:1024]
    with mirrored_strategy.scope():
        model = small_cnn()
        model.compile(keras.optimizers.SGD(0.05), "sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=128, epochs=2, shuffle=False, verbose=0)
    # Reproduce the trap: the replicas' moving statistics drift apart...
    r0, r1 = replica_means(model)
    assert np.max(np.abs(r0 - r1)) > 1e-5
    xt = x[::8]
    gap = np.max(np.abs(model.predict(xt, batch_size=64, verbose=0)
                        - keras.ops.convert_to_numpy(model(xt, training=False))))
    assert gap > 1e-5, gap  # the 1e-5 agreement below is not free
    # ...and after the callback every inference path agrees.
    model.fit(x, y, batch_size=128, epochs=1, shuffle=False, verbose=0,
              callbacks=[PreciseBatchNorm(x, num_batches=8, batch_size=128)])
    r0, r1 = replica_means(model)
    np.testing.assert_array_equal(r0, r1)
    mean, _ = np_precise_stats(model, x, 8, 128)
    np.testing.assert_allclose(r0, mean, atol=1e-5)
    direct = keras.ops.convert_to_numpy(model(xt, training=False))
    np.testing.assert_allclose(model.predict(xt, batch_size=64, verbose=0), direct, atol=1e-5)
    assert_saved_model_roundtrip(model, xt, tmp_path, atol=1e-5)


def test_swa_averages_weights_and_recomputes_bn():
    (x, y), _ = digits()
    model = small_cnn()
    model.compile(keras.optimizers.SGD(0.1, momentum=0.9), "sparse_categorical_crossentropy")
    recorded = []
    keep = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: recorded.append(
            [np.array(keras.ops.convert_to_numpy(w), "float64") for w in model.trainable_weights]))
    swa = SWA(start_epoch=1, frequency=2, data=x, num_batches=6, batch_size=50)
    hist = model.fit(x, y, batch_size=64, epochs=6, verbose=0, callbacks=[keep, swa])
    assert hist.history["swa_count"] == [0, 1, 1, 2, 2, 3]
    for i, w in enumerate(model.trainable_weights):
        expected = np.mean([recorded[e][i] for e in (1, 3, 5)], axis=0)
        np.testing.assert_allclose(keras.ops.convert_to_numpy(w), expected, rtol=1e-5, atol=1e-6)
    mean, var = np_precise_stats(model, x, 6, 50)
    np.testing.assert_allclose(bn_stats(model)[0], mean, atol=1e-5)
    np.testing.assert_allclose(bn_stats(model)[1], var, rtol=1e-5, atol=1e-5)


def test_swa_warns_without_data_and_rejects():
    (x, y), _ = digits()
    model = small_cnn()
    model.compile("sgd", "sparse_categorical_crossentropy")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(x[:128], y[:128], batch_size=64, epochs=1, verbose=0, callbacks=[SWA(0)])
    assert any("BatchNorm" in str(c.message) for c in caught)
    with pytest.raises(ValueError, match="start_epoch=-1"):
        SWA(-1)
    with pytest.raises(ValueError, match="frequency=0"):
        SWA(0, frequency=0)
    assert_config_roundtrip(SWA(3, frequency=2, num_batches=10, batch_size=32, backup_dir="/tmp/x"))
