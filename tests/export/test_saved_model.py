"""SavedModel export: versions, serving outputs, the loader that keeps its object alive."""

import os

import keras
import numpy as np
import pytest

from tests.conftest import requires_tensorflow

pytestmark = requires_tensorflow


def _model():
    import kerastoolkit as kt

    x = np.random.default_rng(0).normal(size=(40, 6)).astype("float32")
    model = kt.models.default_classifier((6,), 3, normalization_data=x)
    return model, x


def test_versions_increment_and_serving_matches_keras(tmp_path):
    import kerastoolkit as kt

    model, x = _model()
    root = str(tmp_path / "m")
    first = kt.export.saved_model(model, root)
    second = kt.export.saved_model(model, root)
    assert first == os.path.join(root, "1") and second == os.path.join(root, "2")
    assert kt.export.versions(root) == [1, 2] and kt.export.next_version(root) == 3
    assert sorted(os.listdir(root)) == ["1", "2"]  # no staging folder left behind
    served = kt.export.load(second)
    expected = keras.ops.convert_to_numpy(model(x, training=False))
    assert np.max(np.abs(served(x) - expected)) < 1e-5


def test_explicit_version_and_bad_arguments(tmp_path):
    import kerastoolkit as kt

    model, _ = _model()
    root = str(tmp_path / "m")
    assert kt.export.saved_model(model, root, version=7).endswith("7")
    with pytest.raises(ValueError, match="Received: version=7"):
        kt.export.saved_model(model, root, version=7)
    with pytest.raises(ValueError, match="Received: version=0"):
        kt.export.saved_model(model, root, version=0)
    with pytest.raises(TypeError, match="Received: model="):
        kt.export.saved_model(keras.layers.Dense(3), root)
    with pytest.raises(FileNotFoundError, match="No saved_model.pb"):
        kt.export.load(str(tmp_path))
