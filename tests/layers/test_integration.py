"""Every layer inside models: configs, `.keras` in a fresh process, SavedModel,
`mixed_float16`, a 2-replica MirroredStrategy and `jit_compile`."""

import keras
import numpy as np
import pytest

import kerastoolkit as kt
from tests.conftest import requires_tensorflow
from tests.harness import assert_config_roundtrip
from tests.harness import assert_saved_model_roundtrip
from tests.harness import fresh_process_predict

# The JAX job re-runs this file; JAX compiles every model afresh (minutes on
# the shared 2-core CI machine), so the two variants whose JAX path is the
# same jitted `fit` as test_training_vs_inference run on TensorFlow only.
tensorflow_only_for_time = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="same jitted fit as test_training_vs_inference on JAX; kept out of the JAX job's time budget",
)

RS = np.random.RandomState(3)
X = RS.rand(48, 8, 8, 2).astype("float32")
Y = RS.randint(0, 3, size=48)


def every_layer():
    return [
        kt.layers.InstanceNormalization(epsilon=1e-4, center=False),
        kt.layers.GhostBatchNormalization(8, momentum=0.9, gamma_initializer="ones"),
        kt.layers.WeightNormalization(keras.layers.Conv2D(4, 3, activation="relu"), data_init=False),
        kt.layers.WeightNoise(keras.layers.Dense(6), stddev=0.05, seed=2),
        kt.layers.DropConnect(keras.layers.Dense(6, use_bias=False), rate=0.2, seed=3),
        kt.layers.StochasticDepth(0.3, seed=4),
    ]


def build_model(seed=0):
    """One model with all six layers; StochasticDepth on a residual branch."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 2))
    h = kt.layers.WeightNormalization(keras.layers.Conv2D(4, 3, activation="relu"))(inputs)
    h = kt.layers.InstanceNormalization()(h)
    h = keras.layers.Conv2D(4, 3)(h)
    h = kt.layers.GhostBatchNormalization(virtual_batch_size=8)(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    h = kt.layers.WeightNoise(keras.layers.Dense(6, activation="relu"), stddev=0.05, seed=1)(h)
    branch = kt.layers.DropConnect(keras.layers.Dense(6, activation="relu"), rate=0.2, seed=2)(h)
    h = keras.layers.Add()([h, kt.layers.StochasticDepth(0.3, seed=3)(branch)])
    outputs = keras.layers.Dense(3)(h)
    return keras.Model(inputs, outputs)


def train(model, jit_compile=False, epochs=1):
    model(X[:16], training=True)  # WeightNormalization's data init, eagerly
    model.compile(
        optimizer=keras.optimizers.SGD(0.05),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=jit_compile,
    )
    # Whole batches here (one trace); the partial last batch is tested in
    # test_math and in test_jit_compile.
    return model.fit(X, Y, batch_size=24, epochs=epochs, verbose=0)


@pytest.mark.parametrize("index", range(6))
def test_config_roundtrip(index):
    layer = every_layer()[index]
    rebuilt = assert_config_roundtrip(layer)
    if hasattr(layer, "layer"):
        assert rebuilt.layer.get_config() == layer.layer.get_config()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    model = build_model()
    history = train(model)
    return model, history


def test_training_vs_inference(trained):
    model, history = trained
    assert np.all(np.isfinite(history.history["loss"]))
    a = keras.ops.convert_to_numpy(model(X, training=False))
    b = keras.ops.convert_to_numpy(model(X, training=False))
    np.testing.assert_array_equal(a, b)  # deterministic at inference
    c = keras.ops.convert_to_numpy(model(X, training=True))
    assert np.abs(c - a).max() > 1e-3  # noise, drops and ghost statistics
    wn = model.layers[1]
    assert float(keras.ops.convert_to_numpy(wn.initialized)) == 1.0
    # (the training call moved the ghost batch norm's moving statistics)
    np.testing.assert_allclose(
        model.predict(X, batch_size=16, verbose=0),
        keras.ops.convert_to_numpy(model(X, training=False)), atol=1e-5)


def test_keras_file_in_fresh_process_and_saved_model(trained, tmp_path):
    model, _ = trained
    path = tmp_path / "all_layers.keras"
    model.save(path)
    expected = keras.ops.convert_to_numpy(model(X, training=False))
    # The same model with the wrapped layers frozen (a transfer base) loads too.
    frozen = keras.models.clone_model(model)
    frozen.set_weights(model.get_weights())
    for layer in frozen.layers:
        if isinstance(layer, (kt.layers.WeightNormalization, kt.layers.WeightNoise, kt.layers.DropConnect)):
            layer.layer.trainable = False
    frozen.save(tmp_path / "frozen.keras")
    got = fresh_process_predict([path, tmp_path / "frozen.keras"], [X, X], tmp_path)
    for g in got:
        np.testing.assert_allclose(g, expected, atol=1e-5)
    if keras.backend.backend() == "tensorflow":
        assert_saved_model_roundtrip(model, X, tmp_path)


@pytest.fixture
def mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_float16")
    yield
    keras.mixed_precision.set_global_policy("float32")


@tensorflow_only_for_time
def test_mixed_float16(mixed_precision):
    model = build_model()
    history = train(model)
    assert np.all(np.isfinite(history.history["loss"]))
    assert model.layers[1].g.dtype == "float32"
    for training in (True, False):
        out = model(X[:8], training=training)
        assert keras.backend.standardize_dtype(out.dtype) == "float16"
    # The float16 output agrees with the float32 math of g·v/‖v‖ (NumPy).
    wn = model.layers[1]
    got = keras.ops.convert_to_numpy(wn(X[:4]))
    assert got.dtype == np.float16
    v = keras.ops.convert_to_numpy(wn.layer.kernel).astype("float64")
    w = keras.ops.convert_to_numpy(wn.g) * v / np.sqrt((v**2).sum(axis=(0, 1, 2)))
    x = X[:4].astype("float16").astype("float64")
    expected = np.zeros((4, 6, 6, 4))
    for i in range(3):
        for j in range(3):
            expected += np.einsum("bhwc,cf->bhwf", x[:, i:i + 6, j:j + 6], w[i, j])
    expected = np.maximum(expected + keras.ops.convert_to_numpy(wn.layer.bias), 0)
    assert np.abs(expected).max() > 0.1
    np.testing.assert_allclose(got.astype("float64"), expected, atol=1e-2, rtol=1e-2)


@requires_tensorflow
def test_mirrored_strategy(mirrored_strategy):
    with mirrored_strategy.scope():
        model = build_model()
        history = train(model)
    assert np.all(np.isfinite(history.history["loss"]))
    # Random layers ran on both replicas: training outputs differ call to call.
    a = keras.ops.convert_to_numpy(model(X, training=True))
    b = keras.ops.convert_to_numpy(model(X, training=True))
    assert np.abs(a - b).max() > 1e-4
    expected = keras.ops.convert_to_numpy(model(X, training=False))
    np.testing.assert_allclose(model.predict(X, batch_size=16, verbose=0), expected, atol=1e-5)


@requires_tensorflow
def test_weight_normalization_data_init_in_a_replica_step_raises(mirrored_strategy):
    with mirrored_strategy.scope():
        model = keras.Sequential([keras.Input((4,)), kt.layers.WeightNormalization(keras.layers.Dense(2))])
        model.compile("sgd", "mse")
    with pytest.raises(Exception, match="cannot initialise inside a multi-replica step"):
        model.fit(RS.rand(8, 4), RS.rand(8, 2), batch_size=4, verbose=0)


@tensorflow_only_for_time
def test_jit_compile():
    """XLA on TensorFlow (jax.jit is the JAX trainer's default)."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6, 3))
    h = keras.layers.Flatten()(kt.layers.InstanceNormalization()(inputs))
    h = kt.layers.WeightNormalization(keras.layers.Dense(5, activation="relu"))(h)
    h = kt.layers.GhostBatchNormalization(8)(h)
    # (WeightNoise runs the same substituted-kernel call as DropConnect; each
    # random layer costs ~10 s of XLA compilation of TensorFlow's RNG on CPU.)
    branch = kt.layers.DropConnect(keras.layers.Dense(5), rate=0.2, seed=2)(h)
    h = keras.layers.Add()([h, kt.layers.StochasticDepth(0.3, seed=3)(branch)])
    model = keras.Model(inputs, keras.layers.Dense(1)(h))
    x = RS.rand(44, 6, 3).astype("float32")
    model(x[:16], training=True)
    model.compile("sgd", "mse", jit_compile=True)
    history = model.fit(x, x[:, 0, :1], batch_size=16, epochs=3, verbose=0)  # last batch: 12
    # (the step retraced for the last batch sees a batch of unknown size;
    # GhostBatchNormalization must compile for 12, which 8 does not divide)
    assert np.all(np.isfinite(history.history["loss"]))
    assert history.history["loss"][-1] < history.history["loss"][0]
