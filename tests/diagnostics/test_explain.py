"""Saliency and Grad-CAM maps (tf-keras-vis) against maps computed here with GradientTape."""

import os

import keras
import numpy as np
import pytest

import kerastoolkit as kt
from tests.conftest import requires_tensorflow

pytest.importorskip("tf_keras_vis")
pytestmark = requires_tensorflow


def sequential_cnn():
    keras.utils.set_random_seed(0)
    return keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(4, 3, padding="same", activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(10, activation="softmax"),
    ])


def nested_cnn():
    keras.utils.set_random_seed(1)
    inner_in = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inner_in)
    h = keras.layers.Conv2D(6, 3, padding="same", activation="relu")(h)
    backbone = keras.Model(inner_in, h, name="backbone")
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.GlobalAveragePooling2D()(backbone(inputs))
    return keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x)), backbone


@pytest.fixture(scope="module")
def images():
    return kt.data.load("digits", "test", as_numpy=True)[0][:4]


def logits_model(model):
    """The class logits: the input of the last (softmax) Dense layer times its kernel."""
    dense = model.layers[-1]
    return lambda x: keras.ops.matmul(model_features(model, x), dense.kernel) + dense.bias


def model_features(model, x):
    for layer in model.layers[:-1]:
        x = layer(x)
    return x


def normalise(m):
    m = m - m.min(axis=(1, 2), keepdims=True)
    return m / np.maximum(m.max(axis=(1, 2), keepdims=True), 1e-12)


def test_saliency_of_a_sequential_model(images, tmp_path):
    import tensorflow as tf

    model = sequential_cnn()
    weights = [w.copy() for w in model.get_weights()]
    out = kt.diagnostics.explain(model, images, tmp_path / "grid" / "explain.png")
    assert os.path.getsize(tmp_path / "grid" / "explain.png") > 1000
    classes = np.argmax(model.predict(images, verbose=0), axis=1)
    np.testing.assert_array_equal(out["classes"], classes)
    x = tf.constant(images)
    with tf.GradientTape() as tape:
        tape.watch(x)
        logits = logits_model(model)(x)
        score = tf.reduce_sum(tf.gather(logits, classes, axis=1, batch_dims=1))
    expected = normalise(np.abs(tape.gradient(score, x).numpy()).max(axis=-1))
    np.testing.assert_allclose(out["saliency"], expected, atol=1e-4)
    assert out["gradcam"].shape == (4, 8, 8)
    for a, b in zip(weights, model.get_weights()):  # the model is not modified
        np.testing.assert_array_equal(a, b)
    assert model.layers[-1].activation is keras.activations.softmax


def test_gradcam_of_a_nested_backbone(images, tmp_path):
    import tensorflow as tf

    model, backbone = nested_cnn()
    classes = np.array([1, 2, 3, 4])
    out = kt.diagnostics.explain(model, images, tmp_path / "cam.png", classes=classes, methods=["gradcam"])
    dense = model.layers[-1]
    with tf.GradientTape() as tape:
        a = backbone(tf.constant(images))
        tape.watch(a)
        logits = tf.matmul(tf.reduce_mean(a, axis=(1, 2)), dense.kernel) + dense.bias
        score = tf.reduce_sum(tf.gather(logits, classes, axis=1, batch_dims=1))
    grads = tape.gradient(score, a).numpy()
    alpha = grads.mean(axis=(1, 2), keepdims=True)
    cam = np.maximum((alpha * a.numpy()).sum(axis=-1), 0)
    np.testing.assert_allclose(out["gradcam"], normalise(cam), atol=1e-3)  # tf-keras-vis adds ε to max−min
    assert "saliency" not in out


def test_explain_errors(images, tmp_path):
    model = sequential_cnn()
    with pytest.raises(ValueError, match="Received: x.shape"):
        kt.diagnostics.explain(model, images[0], tmp_path / "a.png")
    with pytest.raises(ValueError, match="Received: methods"):
        kt.diagnostics.explain(model, images, tmp_path / "a.png", methods=["lime"])
    with pytest.raises(ValueError, match="Received: classes"):
        kt.diagnostics.explain(model, images, tmp_path / "a.png", classes=[1, 2])
    keras.utils.set_random_seed(0)
    mlp = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")])
    with pytest.raises(ValueError, match="rank-4"):
        kt.diagnostics.explain(mlp, images, tmp_path / "a.png", methods=["gradcam"])
