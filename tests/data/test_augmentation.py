"""kt.data.augmentation policies, augmentation_for, and the default classifier with raw inputs."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import kerastoolkit as kt

pytestmark = pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="kt.data needs TensorFlow")


def layer_names(sequential):
    return [type(layer).__name__ for layer in sequential.layers]


def test_policies_are_the_documented_layers():
    assert layer_names(kt.data.augmentation("geometric")) == [
        "RandomFlip", "RandomRotation", "RandomShear", "RandomTranslation", "RandomZoom"
    ]
    assert "RandomFlip" not in layer_names(kt.data.augmentation("geometric", horizontal_flip=False))
    assert layer_names(kt.data.augmentation("photometric")) == ["RandomBrightness", "RandomContrast"]
    assert layer_names(kt.data.augmentation("photometric", channels=3))[-2:] == ["RandomSaturation", "RandomHue"]
    assert layer_names(kt.data.augmentation("other")) == [
        "RandomGaussianNoise", "SaltAndPepperNoise", "RandomJpegQuality", "RandomLensDistortion"
    ]
    assert layer_names(kt.data.augmentation("other", jpeg_quality=None, salt_pepper=None)) == [
        "RandomGaussianNoise", "RandomLensDistortion"
    ]
    assert layer_names(kt.data.augmentation("autoaugment")) == ["AutoAugment"]
    (rand,) = kt.data.augmentation("rand-m7-n3", value_range=(0, 255)).layers
    assert isinstance(rand, keras.layers.RandAugment)
    assert rand.num_ops == 3 and rand.factor == (0.0, pytest.approx(0.7)) and tuple(rand.value_range) == (0, 255)
    (plain,) = kt.data.augmentation("randaugment").layers
    assert plain.num_ops == 2 and plain.factor[1] == pytest.approx(0.9)
    rotation = kt.data.augmentation("geometric", rotation=0.2, seed=5).layers[1]
    assert rotation.factor == (-0.2, 0.2) and rotation.seed == 7


def test_datasets_get_suitable_policies():
    digits = kt.data.augmentation_for("digits", "geometric")
    assert "RandomFlip" not in layer_names(digits)  # a mirrored 2 is not a 2
    assert digits.layers[0].factor == (-0.03, 0.03)
    fashion = kt.data.augmentation_for("fashion_mnist", "geometric", raw=True)
    assert layer_names(fashion)[0] == "RandomFlip"
    contrast = kt.data.augmentation_for("fashion_mnist", "photometric", raw=True).layers[1]
    assert tuple(contrast.value_range) == (0, 255)
    assert kt.data.augmentation_for("digits", "none") is None
    with pytest.raises(ValueError, match="Received: dataset_name='mnist1d'"):
        kt.data.augmentation_for("mnist1d", "geometric")


def test_unknown_policies_and_bad_settings():
    with pytest.raises(ValueError, match=r"Did you mean 'geometric'.*Received: policy='geometrc'"):
        kt.data.augmentation("geometrc")
    with pytest.raises(ValueError, match="Received: policy='rand-x9'"):
        kt.data.augmentation("rand-x9")
    with pytest.raises(ValueError, match="Received: noise=-0.1"):
        kt.data.augmentation("other", noise=-0.1)
    with pytest.raises(ValueError, match="Received: rotaton=0.1"):
        kt.data.augmentation("geometric", rotaton=0.1)
    with pytest.raises(ValueError, match="Received: magnitude=12"):
        kt.data.augmentation("rand-m12-n2")


def test_policies_in_a_tf_data_pipeline_before_and_after_batching():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(8, 12, 12, 1)).astype("uint8")
    y = np.arange(8)
    dataset = tf.data.Dataset.from_tensor_slices((x, y))
    # RandAugment and AutoAugment are tested eagerly (tracing them into tf.data takes 20-60 s).
    geometric = kt.data.augmentation("geometric", value_range=(0, 255), seed=0)
    other = kt.data.augmentation("other", value_range=(0, 255), seed=0)
    before = kt.data.augment_dataset(dataset, geometric).batch(4)
    after = kt.data.augment_dataset(dataset.batch(4), other)
    for pipeline in (before, after):
        xs, ys = zip(*[(a.numpy(), b.numpy()) for a, b in pipeline])
        xs = np.concatenate(xs)
        assert xs.dtype == np.uint8 and xs.shape == x.shape  # raw pixels stay raw
        np.testing.assert_array_equal(np.concatenate(ys), y)
        assert np.any(xs != x)
    for augment in (geometric, other, kt.data.augmentation("photometric", value_range=(0, 255), seed=0)):
        # Inside a model at inference (training=False): the identity.
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(augment(x, training=False)), x.astype("float32"))


@pytest.mark.slow
def test_default_classifier_trains_on_raw_uint8_with_a_policy_and_serves_raw_uint8(tmp_path):
    """The CLI's path: raw pixels, Standardize adapted on the training split, policy in fit only."""
    x_train, y_train = kt.data.load("digits", "train", as_numpy=True, raw=True)
    x_test, _ = kt.data.load("digits", "test", as_numpy=True, raw=True)
    x_train, y_train = x_train[:256], y_train[:256]
    assert x_train.dtype == np.uint8 and x_train.max() == 16
    model = kt.models.default_classifier(
        (8, 8, 1), 10, normalization_data=x_train,
        augmentation=kt.data.augmentation_for("digits", "geometric", raw=True, seed=0),
    )
    assert model.inputs[0].dtype == "uint8"
    standardize = model.get_layer("standardize")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(standardize.mean), [x_train.mean()], rtol=1e-5)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(standardize.std), [x_train.std()], rtol=1e-5)
    model.compile(optimizer="adam", loss=kt.losses.SparseCategoricalCrossentropy(label_smoothing=0.1), metrics=["accuracy"])
    history = model.fit(x_train, y_train, batch_size=64, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    expected = model.predict(x_test[:16], verbose=0)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(x_test[:16])), expected, atol=1e-5)
    path = kt.export.saved_model(model, str(tmp_path / "digits"))
    served = kt.export.load(path)
    np.testing.assert_allclose(served(x_test[:16]), expected, atol=1e-5)
    assert served.input_spec.dtype == tf.uint8
