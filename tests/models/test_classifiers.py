"""Default classifiers."""

import numpy as np
import pytest

import kerastoolkit as kt


@pytest.mark.parametrize("shape", [(8, 8, 1), (28, 28, 1), (40,), (12,)])
def test_default_classifier_shapes_and_normalization(shape):
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(64,) + shape) * 3 + 5).astype("float32")
    model = kt.models.default_classifier(shape, 7, normalization_data=x)
    out = model.predict(x, verbose=0)
    assert out.shape == (64, 7)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)
    # Images: kt.layers.Standardize (mean and std); vectors and signals: Normalization.
    kind = "Standardize" if len(shape) == 3 else "Normalization"
    norm = next(l for l in model.layers if l.__class__.__name__ == kind)
    channels = x.reshape(-1, norm.mean.shape[-1]) if len(shape) != 1 or shape[0] < 32 else x.reshape(-1, 1)
    np.testing.assert_allclose(np.ravel(norm.mean), channels.mean(axis=0), rtol=1e-4, atol=1e-4)
    variance = np.ravel(norm.std) ** 2 if kind == "Standardize" else np.ravel(norm.variance)
    np.testing.assert_allclose(variance, channels.var(axis=0), rtol=1e-3)


def test_default_classifier_rejects_bad_arguments():
    with pytest.raises(ValueError, match="Received: num_classes=1"):
        kt.models.default_classifier((8,), 1)
    with pytest.raises(ValueError, match=r"Received: input_shape=\(8, 0\)"):
        kt.models.default_classifier((8, 0), 3)
    with pytest.raises(ValueError, match="rank 1, 2 or 3"):
        kt.models.default_classifier((2, 2, 2, 2), 3)
