"""TTAPredictor and dense_evaluation against hand-computed NumPy views and averages."""

import keras
import numpy as np
import pytest

import kerastoolkit as kt
from tests.conftest import requires_tensorflow


def conv_net(size=8, seed=0, softmax=True):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((size, size, 1))
    x = keras.layers.Conv2D(6, 3, activation="relu")(inputs)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(10, activation="softmax" if softmax else None)(x)
    return keras.Model(inputs, outputs)


@pytest.fixture(scope="module")
def images():
    x, _ = kt.data.load("digits", "test", as_numpy=True)
    return x[:24]


def predict(model, x):
    return keras.ops.convert_to_numpy(model(x, training=False)).astype("float64")


def np_shift(x, dy, dx):
    out = np.zeros_like(x)
    h, w = x.shape[1:3]
    src = x[:, max(0, -dy) : h - max(0, dy), max(0, -dx) : w - max(0, dx)]
    out[:, max(0, dy) : max(0, dy) + src.shape[1], max(0, dx) : max(0, dx) + src.shape[2]] = src
    return out


def test_identity_view_is_model_predict(images):
    model = conv_net()
    tta = kt.models.TTAPredictor(model, views=["identity"])
    np.testing.assert_array_equal(tta.predict(images, verbose=0), model.predict(images, verbose=0))
    assert tta.num_views == 1


def test_flip_and_shift_averages_match_numpy(images):
    model = conv_net()
    tta = kt.models.TTAPredictor(model, views=["identity", "hflip", "shift:1"])
    views = [images, images[:, :, ::-1]] + [
        np_shift(images, dy, dx) for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0))
    ]
    probs = np.stack([predict(model, v) for v in views])
    np.testing.assert_allclose(predict(tta, images), probs.mean(axis=0), atol=1e-6)
    # Geometric mean: renormalised exp of the mean log-probability.
    geo = kt.models.TTAPredictor(model, views=["identity", "hflip", "shift:1"], mean="geometric")
    g = np.exp(np.log(probs).mean(axis=0))
    np.testing.assert_allclose(predict(geo, images), g / g.sum(axis=1, keepdims=True), atol=1e-6)
    # fastai's beta: β on the plain view, 1−β over the others.
    weighted = kt.models.TTAPredictor(model, views=["hflip", "identity", "shift:1"], beta=0.4)
    expected = 0.4 * probs[0] + 0.6 * probs[1:].mean(axis=0)
    np.testing.assert_allclose(predict(weighted, images), expected, atol=1e-6)


def test_crops_feed_a_model_built_for_the_smaller_size(images):
    model = conv_net(size=6, softmax=False)
    tta = kt.models.TTAPredictor(model, views=["crops:10"], from_logits=True, input_shape=(8, 8, 1))
    origins = [(1, 1), (0, 0), (0, 2), (2, 0), (2, 2)]
    crops = [images[:, i : i + 6, j : j + 6] for i, j in origins]
    crops += [c[:, :, ::-1] for c in crops]
    logits = np.stack([predict(model, c) for c in crops])
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    expected = (e / e.sum(axis=-1, keepdims=True)).mean(axis=0)
    np.testing.assert_allclose(predict(tta, images), expected, atol=1e-6)
    assert tta.num_views == 10


def test_all_views_run_in_one_forward_pass(images):
    calls = []

    class Counting(keras.layers.Layer):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def call(self, x):
            calls.append(tuple(x.shape))
            return self.inner(x, training=False)

    inputs = keras.Input((8, 8, 1))
    counting = keras.Model(inputs, Counting(conv_net())(inputs))
    tta = kt.models.TTAPredictor(counting, views=["identity", "hflip", "shift:2"])
    calls.clear()
    tta(images[:5])
    assert calls == [(30, 8, 8, 1)]  # 6 views × 5 images, one call


def test_dense_evaluation_averages_the_crops_of_a_fully_convolutional_net(images):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((None, None, 1))
    x = keras.layers.Conv2D(5, 3, activation="relu")(inputs)
    x = keras.layers.Conv2D(10, 3)(x)  # receptive field 5×5, no padding
    fcn = keras.Model(inputs, keras.layers.Softmax()(x))
    dense = kt.models.dense_evaluation(fcn, images)
    crops = [images[:, i : i + 5, j : j + 5] for i in range(4) for j in range(4)]
    per_crop = np.stack([predict(fcn, c)[:, 0, 0] for c in crops])
    np.testing.assert_allclose(dense, per_crop.mean(axis=0), atol=1e-6)
    np.testing.assert_allclose(kt.models.dense_evaluation(fcn, images[0]), dense[0], atol=1e-6)
    with pytest.raises(ValueError, match="Received: images.shape"):
        kt.models.dense_evaluation(fcn, images[None])


def test_bad_views_are_named():
    model = conv_net()
    with pytest.raises(ValueError, match=r"Received: views=\[\]"):
        kt.models.TTAPredictor(model, views=[])
    with pytest.raises(ValueError, match="keep the batch size.*Received: views\\[1\\]"):
        kt.models.TTAPredictor(model, views=["identity", lambda x: x[:1]])
    with pytest.raises(ValueError, match="Received: views\\[0\\]='rotate'"):
        kt.models.TTAPredictor(model, views=["rotate"])
    with pytest.raises(ValueError, match="Received: views\\[0\\]='crops:3'"):
        kt.models.TTAPredictor(model, views=["crops:3"])
    with pytest.raises(ValueError, match="model takes"):
        kt.models.TTAPredictor(model, views=["identity"], input_shape=(10, 10, 1))
    with pytest.raises(ValueError, match="do not fit"):
        kt.models.TTAPredictor(conv_net(size=6), views=["crops:5"], input_shape=(4, 4, 1))
    with pytest.raises(ValueError, match="Received: mean='median'"):
        kt.models.TTAPredictor(model, mean="median")
    with pytest.raises(ValueError, match="Received: beta=1.5"):
        kt.models.TTAPredictor(model, beta=1.5)
    with pytest.raises(ValueError, match="identity"):
        kt.models.TTAPredictor(model, views=["hflip"], beta=0.5)
    with pytest.raises(TypeError, match="Received: views\\[0\\]=3"):
        kt.models.TTAPredictor(model, views=[3])
    with pytest.raises(TypeError, match="Received: model="):
        kt.models.TTAPredictor("model")


def test_ensemble_from_files_and_its_tta(images, tmp_path):
    members = [conv_net(seed=s) for s in (1, 2, 3)]
    for i, m in enumerate(members):
        m.save(tmp_path / f"snapshot_{i + 1:02d}.keras")
    from_dir = kt.models.Ensemble.from_files(tmp_path)
    from_list = kt.models.Ensemble.from_files([tmp_path / "snapshot_01.keras", tmp_path / "snapshot_03.keras"])
    per_member = np.stack([predict(m, images) for m in members])
    np.testing.assert_allclose(predict(from_dir, images), per_member.mean(axis=0), atol=1e-6)
    np.testing.assert_allclose(predict(from_list, images), per_member[[0, 2]].mean(axis=0), atol=1e-6)
    tta = kt.models.TTAPredictor(from_dir, views=["identity", "hflip"])
    flipped = np.stack([predict(m, images[:, :, ::-1]) for m in members])
    expected = (per_member.mean(axis=0) + flipped.mean(axis=0)) / 2
    np.testing.assert_allclose(predict(tta, images), expected, atol=1e-6)
    with pytest.raises(ValueError, match="same output shape.*Received: members\\[1\\]"):
        inputs = keras.Input((8, 8, 1))
        other = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Flatten()(inputs)))
        kt.models.Ensemble([members[0], other])
    with pytest.raises(ValueError, match="Received: paths="):
        kt.models.Ensemble.from_files([tmp_path / "missing.keras"])


@requires_tensorflow
@pytest.mark.slow
def test_tta_of_an_ensemble_exports_as_one_saved_model(images, tmp_path):
    import tensorflow as tf

    ensemble = kt.models.Ensemble([conv_net(seed=1), conv_net(seed=2)])
    tta = kt.models.TTAPredictor(ensemble, views=["identity", "hflip", "shift:1"])
    path = kt.export.saved_model(tta, str(tmp_path / "tta"))
    served = tf.saved_model.load(path)  # keep a reference while serving
    outputs = served.signatures["serving_default"](inputs=tf.constant(images))
    got = outputs["probabilities"].numpy()
    np.testing.assert_allclose(got, predict(tta, images), atol=1e-5)
    np.testing.assert_array_equal(outputs["top_k_indices"].numpy()[:, 0], np.argmax(got, axis=1))
    assert len(served.signatures["serving_default"].structured_input_signature[1]) == 1
