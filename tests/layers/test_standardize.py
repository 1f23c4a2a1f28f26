"""kt.layers.Standardize: statistics against NumPy on the whole array, saved with the model."""

import keras
import numpy as np
import pytest

import kerastoolkit as kt
from tests.conftest import requires_tensorflow
from tests.harness import assert_config_roundtrip, assert_saved_model_roundtrip


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(300, 6, 5, 2)).astype("uint8")
    x[:, 0, 0, :] = 7  # a constant pixel: its own std is 0
    x[:, :, :, 1] //= 4  # channels on different scales
    return x


def numpy_reference(x, mode):
    """Mean and std from the whole array, as the lecture defines them."""
    x = x.astype(np.float64)
    if mode == "per_channel":
        return x.mean(axis=(0, 1, 2)), x.std(axis=(0, 1, 2))
    mean_image = x.mean(axis=0)
    return mean_image, np.sqrt(((x - mean_image) ** 2).mean(axis=(0, 1, 2)))


@pytest.mark.parametrize("mode", ["per_channel", "mean_image"])
def test_streamed_statistics_equal_whole_array_numpy(images, mode):
    mean, std = numpy_reference(images, mode)
    layer = kt.layers.Standardize(mode)
    layer.adapt(images, batch_size=7)  # 43 uneven batches
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer.mean), mean, rtol=1e-6)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer.std), std, rtol=1e-6)
    assert float(keras.ops.convert_to_numpy(layer.count)) == len(images)
    # A list of batches (any iterable) gives the same statistics.
    again = kt.layers.Standardize(mode).adapt([images[:100], images[100:101], images[101:]])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(again.std), std, rtol=1e-6)
    # Forward: raw uint8 in, (x − μ)/σ out; scale=False only centres.
    got = keras.ops.convert_to_numpy(layer(images[:9]))
    np.testing.assert_allclose(got, (images[:9] - mean) / std, rtol=1e-5, atol=1e-5)
    centred = kt.layers.Standardize(mode, scale=False).adapt(images)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(centred(images[:9])), images[:9] - mean, atol=1e-4)


@requires_tensorflow
def test_adapt_streams_a_tf_data_dataset_of_pairs(images):
    import tensorflow as tf

    labels = np.arange(len(images))
    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(32)
    layer = kt.layers.Standardize("per_channel").adapt(dataset)
    mean, std = numpy_reference(images, "per_channel")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer.mean), mean, rtol=1e-6)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer.std), std, rtol=1e-6)


def test_use_before_adapt_is_an_error(images):
    layer = kt.layers.Standardize()
    with pytest.raises(ValueError, match="before adapt"):
        layer(images[:2])
    inputs = keras.Input(images.shape[1:])
    model = keras.Model(inputs, kt.layers.Standardize()(inputs))  # building is fine
    if keras.backend.backend() == "tensorflow":  # JAX traces with abstract weights: not checkable there
        with pytest.raises(ValueError, match="before adapt"):
            model.predict(images[:2].astype("float32"), verbose=0)


def test_bad_arguments(images):
    with pytest.raises(ValueError, match="Received: mode='per_pixel'"):
        kt.layers.Standardize("per_pixel")
    with pytest.raises(ValueError, match="Received: epsilon=-1"):
        kt.layers.Standardize(epsilon=-1)
    with pytest.raises(TypeError, match="Received: scale='yes'"):
        kt.layers.Standardize(scale="yes")
    layer = kt.layers.Standardize("mean_image").adapt(images)
    with pytest.raises(ValueError, match="does not match"):
        layer.adapt(images[:, :4])
    with pytest.raises(ValueError, match="no data"):
        kt.layers.Standardize().adapt([])


def test_config_mixed_float16_and_inside_a_jit_compiled_model(images):
    layer = kt.layers.Standardize("mean_image", scale=False, epsilon=1e-3, name="s")
    assert_config_roundtrip(layer)
    mean, std = numpy_reference(images, "per_channel")
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        half = kt.layers.Standardize().adapt(images)
        out = half(images[:5])
        assert keras.backend.standardize_dtype(out.dtype) == "float16"
    finally:
        keras.config.set_dtype_policy(policy)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(out).astype(np.float64), (images[:5] - mean) / std, atol=2e-2)
    inputs = keras.Input(images.shape[1:], dtype="uint8")
    x = kt.layers.Standardize().adapt(images)(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Flatten()(x)))
    model.compile(optimizer="sgd", loss="mse", jit_compile=True)
    model.fit(images[:32], np.zeros((32, 3)), batch_size=16, epochs=1, verbose=0)
    np.testing.assert_allclose(
        model.predict(images[:8], verbose=0), keras.ops.convert_to_numpy(model(images[:8])), atol=1e-5
    )


@requires_tensorflow
def test_saved_model_serves_raw_uint8_with_the_saved_statistics(images, tmp_path):
    inputs = keras.Input(images.shape[1:], dtype="uint8")
    outputs = kt.layers.Standardize("mean_image").adapt(images)(inputs)
    model = keras.Model(inputs, outputs)
    assert_saved_model_roundtrip(model, images[:6], tmp_path)
    mean, std = numpy_reference(images, "mean_image")
    import tensorflow as tf

    loaded = tf.saved_model.load(str(tmp_path / "exported"))
    served = loaded.serve(tf.constant(images[:6])).numpy()
    np.testing.assert_allclose(served, (images[:6] - mean) / std, rtol=1e-5, atol=1e-5)
