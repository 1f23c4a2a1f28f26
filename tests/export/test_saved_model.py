"""SavedModel export for serving: stable signature, preprocessing in the graph, metadata,
warmup requests, the export check, fresh-process reloads, every toolkit layer."""

import inspect
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from tests.conftest import requires_tensorflow
from tests.harness import subprocess_env

pytestmark = requires_tensorflow

CLASS_NAMES = [f"digit {d}" for d in range(10)]


@pytest.fixture(scope="module")
def digits():
    import kerastoolkit as kt

    from sklearn.datasets import load_digits

    data = load_digits()
    x = (data.images[:300, :, :, None] / 16.0).astype("float32")  # as kt.data.load gives them
    y = data.target[:300]
    keras.utils.set_random_seed(0)
    model = kt.models.default_classifier((8, 8, 1), 10, normalization_data=x)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, batch_size=32, verbose=0)
    raw = np.round(x[:16] * 16).astype("uint8")  # the raw load_digits pixels, 0..16
    return model, x, y, raw


def _expected(model, raw):
    return keras.ops.convert_to_numpy(model(raw.astype("float32") / 16.0, training=False))


def _fresh_process_outputs(paths, raw, tmp_path):
    """Loads each SavedModel with tf.saved_model.load in a new process; runs serving_default."""
    np.save(tmp_path / "raw.npy", raw)
    script = (
        "import sys, json, numpy as np, tensorflow as tf\n"
        "raw = np.load(sys.argv[1]); out = {}\n"
        "for i, path in enumerate(sys.argv[3:]):\n"
        "    loaded = tf.saved_model.load(path)\n"
        "    fn = loaded.signatures['serving_default']\n"
        "    assert list(fn.structured_input_signature[1]) == ['inputs'], fn.structured_input_signature\n"
        "    for name, value in fn(inputs=tf.constant(raw)).items():\n"
        "        value = value.numpy()\n"
        "        out[f'{i}/{name}'] = np.char.decode(value.astype('S')) if value.dtype == object else value\n"
        "np.savez(sys.argv[2], **out)\n"
    )
    target = tmp_path / "served.npz"
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "raw.npy"), str(target), *paths],
        capture_output=True, text=True, env=subprocess_env(), timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    with np.load(target) as data:
        return {key: data[key] for key in data.files}


@pytest.mark.slow
def test_single_model_and_ensemble_serve_the_same_names_in_a_fresh_process(digits, tmp_path):
    import kerastoolkit as kt

    model, _, _, raw = digits
    ensemble = kt.models.Ensemble([model, model], weights=[0.3, 0.7])
    root = str(tmp_path / "digits")
    rescale = keras.layers.Rescaling(1 / 16)
    single = kt.export.saved_model(model, root, preprocessing=rescale, class_names=CLASS_NAMES)
    both = kt.export.saved_model(ensemble, root, preprocessing=keras.layers.Rescaling(1 / 16), class_names=CLASS_NAMES)
    outputs = _fresh_process_outputs([single, both], raw, tmp_path)
    expected = _expected(model, raw)
    for i in (0, 1):
        names = sorted(key.split("/")[1] for key in outputs if key.startswith(f"{i}/"))
        assert names == ["probabilities", "top_k_class_names", "top_k_indices", "top_k_scores"]
        probabilities = outputs[f"{i}/probabilities"]
        assert np.max(np.abs(probabilities - expected)) < 1e-5
        order = np.argsort(-expected, axis=1, kind="stable")[:, :5]
        assert np.array_equal(outputs[f"{i}/top_k_indices"], order)
        assert np.allclose(outputs[f"{i}/top_k_scores"], np.take_along_axis(expected, order, 1), atol=1e-5)
        names = np.array(CLASS_NAMES)[order]
        assert np.array_equal(outputs[f"{i}/top_k_class_names"].astype(str), names)


def test_preprocessing_in_the_graph_takes_raw_uint8(digits, tmp_path):
    import kerastoolkit as kt

    model, x, y, raw = digits
    path = kt.export.saved_model(model, str(tmp_path / "m"), preprocessing=keras.layers.Rescaling(1 / 16), top_k=3)
    served = kt.export.load(path)
    assert served.input_spec.dtype.name == "uint8" and tuple(served.input_spec.shape.as_list()) == (None, 8, 8, 1)
    outputs = served.predict(raw)
    assert sorted(outputs) == ["probabilities", "top_k_indices", "top_k_scores"]  # no class names given
    assert outputs["top_k_indices"].shape == (16, 3)
    assert np.max(np.abs(served(raw) - _expected(model, raw))) < 1e-5
    # The raw-pixel accuracy equals the scaled Keras model's: nothing to scale client-side.
    keras_predictions = np.argmax(keras.ops.convert_to_numpy(model(x[:16], training=False)), axis=1)
    assert np.array_equal(outputs["top_k_indices"][:, 0], keras_predictions)


def test_metadata_asset_and_warmup_requests(digits, tmp_path):
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    import kerastoolkit as kt

    model, _, _, raw = digits
    recipe = kt.presets.get("adam")
    path = kt.export.saved_model(
        model, str(tmp_path / "digits"), preprocessing=keras.layers.Rescaling(1 / 16), class_names=CLASS_NAMES,
        metadata={"recipe": recipe, "dataset": "digits", "metrics": {"test_accuracy": 0.5}}, sample=raw[:4],
        warmup_requests=3,
    )
    served = kt.export.load(path)
    with open(os.path.join(path, "assets", kt.export.METADATA_FILE)) as f:
        metadata = json.load(f)
    assert metadata == served.metadata
    assert metadata["recipe"] == recipe.to_dict() and metadata["dataset"] == "digits"
    assert metadata["metrics"] == {"test_accuracy": 0.5} and metadata["class_names"] == CLASS_NAMES
    assert metadata["input"]["name"] == "inputs" and metadata["input"]["dtype"] == "uint8"
    assert metadata["input"]["shape"] == [None, 8, 8, 1]
    assert set(metadata["versions"]) >= {"kerastoolkit", "keras", "tensorflow"}
    assert metadata["versions"]["keras"] == keras.__version__ and metadata["versions"]["tensorflow"] == tf.__version__
    records = list(tf.data.TFRecordDataset(os.path.join(path, "assets.extra", "tf_serving_warmup_requests")))
    assert len(records) == 3
    for i, record in enumerate(records):
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        request = log.predict_log.request
        assert request.model_spec.name == "digits" and request.model_spec.signature_name == "serving_default"
        tensor = tf.make_ndarray(request.inputs["inputs"])
        assert tensor.dtype == np.uint8 and np.array_equal(tensor, raw[i : i + 1])


def test_wrong_shape_or_dtype_gets_a_clear_error(digits, tmp_path):
    import tensorflow as tf

    import kerastoolkit as kt

    model, _, _, raw = digits
    path = kt.export.saved_model(model, str(tmp_path / "m"), preprocessing=keras.layers.Rescaling(1 / 16), warmup_requests=0)
    served = kt.export.load(path)
    flat = raw.reshape(16, 64)
    with pytest.raises(ValueError, match=r"shape \(None, 8, 8, 1\).*Received: x.shape=\(16, 64\)"):
        served.predict(flat)
    # The signature itself (what TensorFlow Serving runs) names the expected shape.
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"expected shape \[\?,8,8,1\]"):
        served.endpoint(inputs=tf.constant(flat))
    with pytest.raises((tf.errors.InvalidArgumentError, TypeError, ValueError), match="uint8"):
        served.endpoint(inputs=tf.constant(raw.astype("float32")))
    assert not os.path.exists(os.path.join(path, "assets.extra"))


def test_a_mismatching_reload_fails_loudly_and_publishes_nothing(tmp_path):
    import kerastoolkit as kt

    class RandomAtInference(keras.layers.Layer):  # different on every call: reload cannot match
        def call(self, x):
            return x + keras.random.uniform(keras.ops.shape(x))

    inputs = keras.Input((4,))
    outputs = keras.layers.Dense(3, activation="softmax")(RandomAtInference()(inputs))
    root = tmp_path / "m"
    with pytest.raises(RuntimeError, match=r"Export check failed.*`probabilities`"):
        kt.export.saved_model(keras.Model(inputs, outputs), str(root))
    assert os.listdir(root) == []  # no version, no staging folder


def test_versions_increment_and_bad_arguments(digits, tmp_path):
    import kerastoolkit as kt

    model, x, _, _ = digits
    root = str(tmp_path / "m")
    first = kt.export.saved_model(model, root, warmup_requests=0)
    second = kt.export.saved_model(model, root, version=7, warmup_requests=0)
    assert first == os.path.join(root, "1") and second == os.path.join(root, "7")
    assert kt.export.versions(root) == [1, 7] and kt.export.next_version(root) == 8
    assert sorted(os.listdir(root)) == ["1", "7"]  # no staging folder left behind
    served = kt.export.load(first)  # float32 input: the model's own
    assert np.max(np.abs(served(x[:8]) - keras.ops.convert_to_numpy(model(x[:8], training=False)))) < 1e-5
    with pytest.raises(ValueError, match="Received: version=7"):
        kt.export.saved_model(model, root, version=7)
    with pytest.raises(ValueError, match="Received: version=0"):
        kt.export.saved_model(model, root, version=0)
    with pytest.raises(TypeError, match="Received: model="):
        kt.export.saved_model(keras.layers.Dense(3), root)
    with pytest.raises(ValueError, match=r"one name per class \(10\).*Received: class_names=\['a'\]"):
        kt.export.saved_model(model, root, class_names=["a"])
    with pytest.raises(TypeError, match="Received: preprocessing"):
        kt.export.saved_model(model, root, preprocessing=lambda x: x / 16)
    with pytest.raises(FileNotFoundError, match="No saved_model.pb"):
        kt.export.load(str(tmp_path))


def test_export_keras_file_is_what_the_cli_calls(digits, tmp_path):
    import kerastoolkit as kt

    model, _, _, raw = digits
    model_path = str(tmp_path / "model.keras")
    model.save(model_path)
    path = kt.export.export_keras_file(
        model_path, str(tmp_path / "savedmodels" / "digits"), preprocessing=keras.layers.Rescaling(1 / 16),
        class_names=CLASS_NAMES, warmup_requests=1,
    )
    served = kt.export.load(path)
    assert np.max(np.abs(served(raw) - _expected(model, raw))) < 1e-5
    assert served.metadata["source_model"] == os.path.abspath(model_path)
    with pytest.raises(FileNotFoundError, match="missing.keras"):
        kt.export.export_keras_file(str(tmp_path / "missing.keras"), str(tmp_path / "x"))


def test_tta_wrapper_exports_with_the_same_names(digits, tmp_path):
    import kerastoolkit as kt

    model, _, _, raw = digits
    tta = kt.models.TTAPredictor(model, views=["identity", "hflip"])
    path = kt.export.saved_model(tta, str(tmp_path / "m"), preprocessing=keras.layers.Rescaling(1 / 16), warmup_requests=0)
    outputs = kt.export.load(path).predict(raw)
    expected = keras.ops.convert_to_numpy(tta(raw.astype("float32") / 16, training=False))
    assert np.max(np.abs(outputs["probabilities"] - expected)) < 1e-5


def _toolkit_layers():
    import kerastoolkit as kt

    return sorted(
        name for name, obj in vars(kt.layers).items()
        if not name.startswith("_") and inspect.isclass(obj) and issubclass(obj, keras.layers.Layer)
    )


# Layers whose constructor needs arguments: how to build one. A new layer
# with required arguments fails below until it gets an entry here.
_FACTORIES = {
    "WeightNormalization": lambda cls: cls(keras.layers.Dense(8)),
    "Standardize": lambda cls: cls(mode="per_channel"),
    "GhostBatchNormalization": lambda cls: cls(virtual_batch_size=4),
    "WeightNoise": lambda cls: cls(keras.layers.Dense(8), stddev=0.1),
    "DropConnect": lambda cls: cls(keras.layers.Dense(8), rate=0.2),
    "StochasticDepth": lambda cls: cls(rate=0.2),
    "TrainingOnly": lambda cls: cls(keras.layers.RandomFlip("horizontal")),
    "MultiCrop": lambda cls: cls(4, 4, num_crops=5),
}
# Per-example input shape of a layer that does not take (6, 6, 3) images.
_INPUT_SHAPES = {}


def test_the_layer_list_is_not_empty():
    assert len(_toolkit_layers()) >= 10, _toolkit_layers()


@pytest.mark.parametrize("name", _toolkit_layers())
def test_every_toolkit_layer_exports_cleanly(name, tmp_path):
    """Every kt.layers class, inside a model on images (the shape all of them take), exports
    and serves what the model computes; any error is a failure (nothing is swallowed)."""
    import kerastoolkit as kt

    cls = getattr(kt.layers, name)
    factory = _FACTORIES.get(name, lambda c: c())
    try:
        layer = factory(cls)
    except TypeError as error:
        pytest.fail(f"kt.layers.{name} needs constructor arguments: add it to _FACTORIES ({error})")
    # Every layer takes images; a layer that does not needs an entry in
    # _INPUT_SHAPES (any error placing it in the model fails the test).
    shape = _INPUT_SHAPES.get(name, (6, 6, 3))
    data = np.random.default_rng(0).normal(size=(32,) + shape).astype("float32")
    if hasattr(layer, "adapt"):
        layer.adapt(data)
    inputs = keras.Input(shape)
    outputs = keras.layers.Dense(3, activation="softmax")(keras.layers.Flatten()(layer(inputs)))
    model = keras.Model(inputs, outputs)
    # saved_model reloads the export and compares with model(x) (< 1e-5) itself.
    path = kt.export.saved_model(model, str(tmp_path / name), sample=data[:4], warmup_requests=0)
    served = kt.export.load(path)
    assert np.max(np.abs(served(data) - keras.ops.convert_to_numpy(model(data, training=False)))) < 1e-5


def test_a_layer_that_needs_images_refuses_a_vector_clearly():
    import kerastoolkit as kt

    with pytest.raises(ValueError, match="InstanceNormalization.*rank >= 3"):
        kt.layers.InstanceNormalization()(keras.Input((8,)))
