"""What is served is what the model means: a logits model's probabilities (softmax in the
graph, said in the metadata), ensembles and TTA around logits models, the refusal when it
cannot tell, and a TTA predictor served with its own input shape and views."""

import json
import os

import keras
import numpy as np
import pytest

from tests.conftest import requires_tensorflow

pytestmark = requires_tensorflow


def softmax(z):  # independent of the toolkit and of Keras
    z = np.asarray(z, "float64")
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _logits_model(seed, x, y, compile_it=True):
    """The Keras tutorials' classifier: Dense(10) without activation, from_logits=True."""
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(16, activation="relu"), keras.layers.Dense(10)])
    if compile_it:
        model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(x, y, epochs=2, batch_size=32, verbose=0)
    return model


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    data = load_digits()
    x = (data.images[:256, :, :, None] / 16.0).astype("float32")
    return x, data.target[:256], _logits_model(0, x, data.target[:256]), _logits_model(1, x, data.target[:256])


def _out(model, x):
    return keras.ops.convert_to_numpy(model(x, training=False))


def _metadata(path):
    import kerastoolkit as kt

    with open(os.path.join(path, "assets", kt.export.METADATA_FILE)) as f:
        return json.load(f)


def test_a_logits_model_is_served_with_real_probabilities(digits, tmp_path):
    import kerastoolkit as kt

    x, _, model, _ = digits
    raw = np.round(x[:16] * 16).astype("uint8")
    path = kt.export.saved_model(model, str(tmp_path / "m"), preprocessing=keras.layers.Rescaling(1 / 16),
                                 top_k=3, warmup_requests=0, sample=raw)
    outputs = kt.export.load(path).predict(raw)
    logits = _out(model, raw.astype("float32") / 16)
    assert logits.min() < 0  # the model really outputs logits
    expected = softmax(logits)
    np.testing.assert_allclose(outputs["probabilities"], expected, atol=1e-5)
    order = np.argsort(-expected, axis=1, kind="stable")[:, :3]
    np.testing.assert_array_equal(outputs["top_k_indices"], order)
    np.testing.assert_allclose(outputs["top_k_scores"], np.take_along_axis(expected, order, 1), atol=1e-5)
    info = _metadata(path)["model_outputs"]
    assert info["kind"] == "logits" and "serving graph" in info["softmax"]
    assert any("from_logits=True" in source for source in info["decided_by"])
    assert any("activation 'linear'" in source for source in info["decided_by"])


def test_a_softmax_model_is_served_as_it_is(digits, tmp_path):
    import kerastoolkit as kt

    x, y, _, _ = digits
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    path = kt.export.saved_model(model, str(tmp_path / "m"), warmup_requests=0, sample=x[:8])
    np.testing.assert_allclose(kt.export.load(path)(x[:8]), _out(model, x[:8]), atol=1e-6)
    info = _metadata(path)["model_outputs"]
    assert info["kind"] == "probabilities" and info["softmax"] is None


def test_evidence_that_disagrees_or_is_absent_is_refused_and_outputs_settles_it(digits, tmp_path):
    import kerastoolkit as kt

    x, _, _, _ = digits
    root = tmp_path / "m"
    # The classic bug: a softmax last layer compiled with from_logits=True.
    wrong = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")])
    wrong.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    with pytest.raises(ValueError, match=r"disagrees.*from_logits=True \(logits\).*softmax \(probabilities\)"
                                         r".*outputs='logits' or outputs='probabilities'.*Received: outputs=None"):
        kt.export.saved_model(wrong, str(root), warmup_requests=0)
    assert not root.exists() or os.listdir(root) == []  # nothing published
    # No evidence: sigmoid scores in [0, 1] that are not distributions, no loss.
    scores = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(10, activation="sigmoid")])
    with pytest.raises(ValueError, match=r"Cannot tell.*Received: outputs=None"):
        kt.export.saved_model(scores, str(root), warmup_requests=0, sample=x[:8])
    as_is = kt.export.saved_model(scores, str(root), warmup_requests=0, sample=x[:8], outputs="probabilities")
    np.testing.assert_allclose(kt.export.load(as_is)(x[:8]), _out(scores, x[:8]), atol=1e-6)
    assert _metadata(as_is)["model_outputs"] == {
        "kind": "probabilities", "decided_by": ["the `outputs` argument"], "softmax": None}
    as_logits = kt.export.saved_model(scores, str(root), warmup_requests=0, sample=x[:8], outputs="logits")
    np.testing.assert_allclose(kt.export.load(as_logits)(x[:8]), softmax(_out(scores, x[:8])), atol=1e-5)
    with pytest.raises(ValueError, match=r"Received: outputs='scores'"):
        kt.export.saved_model(scores, str(root), outputs="scores")


def test_an_ensemble_of_logits_members(digits, tmp_path):
    import kerastoolkit as kt

    x, _, a, b = digits
    ensemble = kt.models.Ensemble([a, b], from_logits=True, weights=[1.0, 3.0])
    path = kt.export.saved_model(ensemble, str(tmp_path / "e"), warmup_requests=0, sample=x[:8])
    expected = (softmax(_out(a, x[:16])) + 3 * softmax(_out(b, x[:16]))) / 4  # the weighted mean of distributions
    np.testing.assert_allclose(kt.export.load(path)(x[:16]), expected, atol=1e-5)
    info = _metadata(path)["model_outputs"]
    assert info["kind"] == "probabilities" and info["softmax"] is None
    # Averaging the members' logits as if they were probabilities is refused, naming the fix.
    with pytest.raises(ValueError, match=r"Ensemble\(from_logits=False\).*outputs logits.*from_logits=True"):
        kt.export.saved_model(kt.models.Ensemble([a, b]), str(tmp_path / "x"), warmup_requests=0)


def test_tta_around_a_logits_model(digits, tmp_path):
    import kerastoolkit as kt

    x, _, model, _ = digits
    views = softmax(_out(model, x[:16])) + softmax(_out(model, x[:16, :, ::-1, :]))
    expected = views / 2  # the mean of the two views' distributions
    predictor = kt.models.TTAPredictor(model, views=["identity", "hflip"], from_logits=True)
    built = kt.export.saved_model(model, str(tmp_path / "t"), tta=["identity", "hflip"], warmup_requests=0, sample=x[:8])
    given = kt.export.saved_model(predictor, str(tmp_path / "t"), warmup_requests=0, sample=x[:8])
    for path in (built, given):
        np.testing.assert_allclose(kt.export.load(path)(x[:16]), expected, atol=1e-5)
        assert _metadata(path)["tta"]["views"] == ["identity", "hflip"]
    assert _metadata(built)["model_outputs"]["softmax"] == "per view, before the TTA average"
    with pytest.raises(ValueError, match=r"TTAPredictor\(from_logits=False\).*from_logits=True"):
        kt.export.saved_model(kt.models.TTAPredictor(model), str(tmp_path / "x"), warmup_requests=0)


def test_a_crops_predictor_is_served_at_its_own_larger_input(digits, tmp_path):
    """The exported graph, its input spec and its metadata describe the predictor, not the model."""
    import kerastoolkit as kt

    x, _, model, _ = digits
    rng = np.random.default_rng(0)
    large = np.pad(x[:8], ((0, 0), (1, 2), (2, 1), (0, 0))) + rng.uniform(0, 0.3, (8, 11, 11, 1)).astype("float32")
    predictor = kt.models.TTAPredictor(model, views=["crops:10"], input_shape=(11, 11, 1), from_logits=True)
    path = kt.export.saved_model(model, str(tmp_path / "c"), tta=predictor, warmup_requests=0, sample=large[:4])
    served = kt.export.load(path)
    assert tuple(served.input_spec.shape.as_list()) == (None, 11, 11, 1)
    # Independent: the ten crops of Krizhevsky et al. (centre, corners, and their mirrors).
    crops = [large[:, i:i + 8, j:j + 8] for i, j in [(1, 1), (0, 0), (0, 3), (3, 0), (3, 3)]]
    crops += [c[:, :, ::-1] for c in crops]
    expected = np.mean([softmax(_out(model, c)) for c in crops], axis=0)
    np.testing.assert_allclose(served(large), expected, atol=1e-5)
    np.testing.assert_allclose(served(large), keras.ops.convert_to_numpy(predictor.predict(large, verbose=0)), atol=1e-5)
    assert np.max(np.abs(expected - softmax(_out(model, crops[0])))) > 1e-3  # the crops differ from the centre
    tta = _metadata(path)["tta"]
    assert tta == {"views": ["crops:10"], "num_views": 10, "mean": "arithmetic", "beta": None,
                   "from_logits": True, "input_shape": [11, 11, 1], "model_input_shape": [8, 8, 1]}
    assert _metadata(path)["input"]["shape"] == [None, 11, 11, 1]
    other = kt.models.TTAPredictor(_logits_model(3, x, None, compile_it=False), from_logits=True)
    with pytest.raises(ValueError, match="Received: tta="):
        kt.export.saved_model(model, str(tmp_path / "x"), tta=other)


def test_export_keras_file_reads_from_logits_from_the_file(digits, tmp_path):
    import kerastoolkit as kt

    x, _, model, _ = digits
    good = str(tmp_path / "logits.keras")
    model.save(good)
    path = kt.export.export_keras_file(good, str(tmp_path / "g"), warmup_requests=0, sample=x[:8])
    np.testing.assert_allclose(kt.export.load(path)(x[:8]), softmax(_out(model, x[:8])), atol=1e-5)
    assert "the compiled loss has from_logits=True" in _metadata(path)["model_outputs"]["decided_by"]
    # The same logits model saved with the wrong loss: the file's from_logits=False is read and disagrees.
    wrong = keras.models.clone_model(model)
    wrong.compile("adam", "sparse_categorical_crossentropy")
    wrong.save(str(tmp_path / "wrong.keras"))
    with pytest.raises(ValueError, match=r"from_logits=False \(probabilities\)"):
        kt.export.export_keras_file(str(tmp_path / "wrong.keras"), str(tmp_path / "w"), warmup_requests=0)
    path = kt.export.export_keras_file(str(tmp_path / "wrong.keras"), str(tmp_path / "w"), warmup_requests=0,
                                       outputs="logits")
    assert _metadata(path)["model_outputs"]["kind"] == "logits"
