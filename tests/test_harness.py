"""The harness itself, on plain Keras objects."""

import numpy as np
import pytest
import keras

from tests.conftest import requires_tensorflow
from tests import harness


def _small_model():
    inputs = keras.Input((6,))
    x = keras.layers.Dense(8, activation="relu")(inputs)
    x = keras.layers.BatchNormalization()(x)
    outputs = keras.layers.Dense(3, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def _data(n=64):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 6)).astype("float32")
    y = (x[:, 0] > 0).astype("int32") + (x[:, 1] > 1).astype("int32")
    return x, y


def test_config_roundtrip_on_keras_objects():
    schedule = keras.optimizers.schedules.CosineDecay(0.1, 100, alpha=0.01)
    rebuilt = harness.assert_config_roundtrip(schedule)
    assert float(rebuilt(37)) == pytest.approx(float(schedule(37)))
    harness.assert_config_roundtrip(keras.layers.Dense(4, use_bias=False))


class _NumpyConfig(keras.optimizers.schedules.LearningRateSchedule):
    def __init__(self, rate=0.1):
        self.rate = rate

    def __call__(self, step):
        return self.rate

    def get_config(self):
        return {"rate": np.float32(self.rate)}  # not JSON-safe


def test_config_roundtrip_rejects_unsafe_or_unregistered_objects():
    with pytest.raises(TypeError, match="JSON serializable"):
        harness.assert_config_roundtrip(_NumpyConfig(0.2))

    class Unregistered(keras.layers.Layer):
        pass

    with pytest.raises(TypeError, match="Could not locate class"):
        harness.assert_config_roundtrip(Unregistered(name="unregistered"))


@pytest.mark.slow
def test_keras_roundtrip_in_fresh_process(tmp_path):
    model = _small_model()
    x, y = _data()
    model.fit(x, y, epochs=2, verbose=0)
    harness.assert_keras_roundtrip(model, x, tmp_path)


@pytest.mark.slow
def test_fresh_process_reports_failures(tmp_path):
    with pytest.raises(AssertionError, match="fresh process"):
        harness.fresh_process_predict(
            [tmp_path / "missing.keras"], [np.zeros((1, 6))], tmp_path
        )


@requires_tensorflow
def test_saved_model_roundtrip(tmp_path):
    model = _small_model()
    x, y = _data()
    model.fit(x, y, epochs=2, verbose=0)
    harness.assert_saved_model_roundtrip(model, x, tmp_path)


@requires_tensorflow
def test_mirrored_strategy_has_two_replicas(mirrored_strategy):
    import tensorflow as tf

    assert mirrored_strategy.num_replicas_in_sync == 2
    with mirrored_strategy.scope():
        model = _small_model()
    x, y = _data(128)
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    values = mirrored_strategy.experimental_local_results(model.weights[0].value)
    assert len(values) == 2
    np.testing.assert_array_equal(values[0].numpy(), values[1].numpy())
    assert isinstance(model.weights[0].value, tf.distribute.DistributedValues)
