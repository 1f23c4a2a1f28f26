"""Learning without Forgetting's loss against a NumPy implementation of Li & Hoiem's.

The paper (section 3, Algorithm 1) minimises, per new-task example,

    L = CE(y_n, ŷ_n) + λ_o · H(y'_o, ŷ'_o),   H(y', ŷ') = −Σ_c y'_c · log ŷ'_c

with `y'_o` the recorded old-task outputs and `ŷ'_o` the current ones, both
softened at the temperature `T` (`y' = y^(1/T) / Σ y^(1/T)`), and no `T²`
factor. Hinton et al.'s `T²` scaling is an explicit option.
"""

import keras
import numpy as np
import pytest

import kerastoolkit as kt

RS = np.random.RandomState(5)


def soften(p, temperature):
    """The paper's `y'^(i) = (y^(i))^(1/T) / Σ_j (y^(j))^(1/T)`."""
    p = p.astype("float64") ** (1 / temperature)
    return p / p.sum(axis=1, keepdims=True)


def np_lwf_loss(y_new, p_new, recorded, p_old, temperature, weight, scale=1.0):
    new_term = -np.log(p_new[np.arange(len(y_new)), y_new])
    old_term = -np.sum(recorded * np.log(soften(p_old, temperature)), axis=1)
    return np.mean(new_term + weight * scale * old_term)


def old_network(old_outputs):
    keras.utils.set_random_seed(2)
    inputs = keras.Input((6,))
    h = keras.layers.Dense(8, activation="tanh", name="features")(inputs)
    activation = "softmax" if old_outputs == "probabilities" else None
    return keras.Model(inputs, keras.layers.Dense(4, activation=activation, name="old_head")(h))


@pytest.mark.parametrize("old_outputs, scale_t2", [("probabilities", False), ("logits", False), ("probabilities", True)])
def test_loss_is_the_papers(old_outputs, scale_t2):
    temperature, weight = 2.0, 1.5
    x = RS.randn(12, 6).astype("float32")
    y_new = RS.randint(0, 3, 12)
    old = old_network(old_outputs)
    option = {"scale_by_temperature_squared": True} if scale_t2 else {}  # the default is the paper's
    lwf = kt.models.LearningWithoutForgetting(
        old, 3, temperature=temperature, old_task_weight=weight, old_outputs=old_outputs, **option
    )
    lwf.compile(keras.optimizers.SGD(0.5))
    recorded = lwf.record(x)
    old_out = keras.ops.convert_to_numpy(old(x)).astype("float64")
    p_old_at_record = old_out if old_outputs == "probabilities" else np.exp(old_out) / np.exp(old_out).sum(1, keepdims=True)
    np.testing.assert_allclose(recorded, soften(p_old_at_record, temperature), atol=1e-5)
    # Move the network away from the recorded outputs, then compare the loss.
    lwf.fit(x, (y_new, recorded), batch_size=12, epochs=2, verbose=0)
    p_old, p_new = (keras.ops.convert_to_numpy(t).astype("float64") for t in lwf(x))
    if old_outputs == "logits":
        p_old = np.exp(p_old - p_old.max(1, keepdims=True))
        p_old /= p_old.sum(1, keepdims=True)
    scale = temperature**2 if scale_t2 else 1.0
    expected = np_lwf_loss(y_new, p_new, recorded, p_old, temperature, weight, scale)
    got = keras.ops.convert_to_numpy(lwf.compute_loss(x, (y_new, recorded), lwf(x), training=False))
    np.testing.assert_allclose(float(got), expected, rtol=1e-4)
    assert lwf.evaluate(x, (y_new, recorded), verbose=0) == pytest.approx(expected, rel=1e-4)


def test_temperature_squared_is_an_explicit_saved_option():
    lwf = kt.models.LearningWithoutForgetting(old_network("probabilities"), 3, scale_by_temperature_squared=True)
    config = lwf.get_config()
    assert config["scale_by_temperature_squared"] is True
    assert kt.models.LearningWithoutForgetting.from_config(config).scale_by_temperature_squared is True
    assert kt.models.LearningWithoutForgetting(old_network("probabilities"), 3).scale_by_temperature_squared is False
    with pytest.raises(TypeError, match="Received: scale_by_temperature_squared=1"):
        kt.models.LearningWithoutForgetting(old_network("probabilities"), 3, scale_by_temperature_squared=1)
