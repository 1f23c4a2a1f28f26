"""FilterResponseNormalization and TLU against the paper's formulas in NumPy,
batch independence, Keras's layer harness, mixed precision, a 2-replica
strategy, `.keras` in a fresh process and the SavedModel export."""

import keras
import numpy as np
import pytest
from keras.src import testing

import kerastoolkit as kt
from tests.conftest import requires_tensorflow
from tests.harness import assert_config_roundtrip, assert_keras_roundtrip, assert_saved_model_roundtrip

FRN = kt.layers.FilterResponseNormalization
TLU = kt.layers.TLU
RNG = np.random.default_rng(0)


def np_frn_tlu(x, gamma, beta, tau, epsilon, channel_axis):
    """Eq. 1-4 of Singh & Krishnan, one example and one channel at a time."""
    x = np.moveaxis(np.asarray(x, np.float64), channel_axis, -1)
    out = np.empty_like(x)
    for b in range(x.shape[0]):
        for c in range(x.shape[-1]):
            response = x[b, ..., c]                      # the N spatial positions
            nu2 = np.sum(response ** 2) / response.size  # Eq. 1
            x_hat = response / np.sqrt(nu2 + epsilon)    # Eq. 2
            y = gamma[c] * x_hat + beta[c]               # Eq. 3
            out[b, ..., c] = np.maximum(y, tau[c])       # Eq. 4
    return np.moveaxis(out, -1, channel_axis)


def frn_tlu(shape, axis, **frn_kwargs):
    channels = shape[axis]
    frn, tlu = FRN(axis=axis, **frn_kwargs), TLU(axis=axis)
    frn.build((None,) + shape[1:])
    tlu.build((None,) + shape[1:])
    gamma, beta, tau = (RNG.normal(size=channels) for _ in range(3))
    frn.gamma.assign(gamma)
    frn.beta.assign(beta)
    tlu.tau.assign(0.5 * tau)
    return frn, tlu, (gamma, beta, 0.5 * tau)


@pytest.mark.parametrize(
    "shape, axis",
    [((3, 5, 4, 6), -1), ((3, 6, 5, 4), 1), ((2, 7, 3), -1), ((2, 3, 4, 2, 5), -1)],
)
def test_matches_the_paper(shape, axis):
    x = (RNG.normal(size=shape) * RNG.uniform(0.1, 30.0, size=(shape[0],) + (1,) * (len(shape) - 1)))
    frn, tlu, (gamma, beta, tau) = frn_tlu(shape, axis)
    got = keras.ops.convert_to_numpy(tlu(frn(x.astype("float32"))))
    channel_axis = axis % len(shape)
    expected = np_frn_tlu(x, gamma, beta, tau, 1e-6, channel_axis)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    # The threshold is active: some outputs sit exactly at tau, others above.
    at_tau = np.isclose(got, np.expand_dims(tau, tuple(i for i in range(len(shape)) if i != channel_axis)))
    assert 0 < at_tau.mean() < 1


def test_learned_epsilon_is_a_lower_bounded_trainable_term():
    shape = (4, 1, 1, 3)  # N = 1: the paper's case for a learned epsilon
    x = RNG.normal(size=shape)
    frn, tlu, (gamma, beta, tau) = frn_tlu(shape, -1, epsilon=1e-3, learned_epsilon=True)
    assert len(frn.trainable_weights) == 3
    np.testing.assert_allclose(keras.ops.convert_to_numpy(frn.learned_epsilon_weight), 1e-4)
    frn.learned_epsilon_weight.assign(-0.3)  # |ε_l| counts
    got = keras.ops.convert_to_numpy(tlu(frn(x.astype("float32"))))
    np.testing.assert_allclose(got, np_frn_tlu(x, gamma, beta, tau, 1e-3 + 0.3, 3), rtol=1e-5, atol=1e-6)


def test_each_example_is_normalized_on_its_own():
    x = RNG.normal(size=(6, 4, 4, 3)).astype("float32")
    x[2] *= 1000.0  # an outlier in the batch changes nothing for the others
    frn, tlu, _ = frn_tlu(x.shape, -1)
    batch = keras.ops.convert_to_numpy(tlu(frn(x)))
    for i in range(len(x)):
        alone = keras.ops.convert_to_numpy(tlu(frn(x[i:i + 1])))
        np.testing.assert_allclose(batch[i:i + 1], alone, rtol=1e-5, atol=1e-6)
    # Training and inference compute the same thing (no batch statistics).
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(frn(x, training=True)),
                                  keras.ops.convert_to_numpy(frn(x, training=False)))


class LayerHarness(testing.TestCase):
    """Keras's own layer contract (config, symbolic vs eager, training, mixed precision, saving)."""

    def test_filter_response_normalization(self):
        for kwargs, trainable in (({}, 2), ({"learned_epsilon": True, "epsilon": 1e-4}, 3),
                                  ({"axis": 1, "gamma_regularizer": "l2"}, 2)):
            self.run_layer_test(
                FRN, init_kwargs=kwargs, input_shape=(2, 4, 5, 3),
                expected_output_shape=(2, 4, 5, 3),
                expected_num_trainable_weights=trainable,
                expected_num_non_trainable_weights=0,
                expected_num_losses=1 if "gamma_regularizer" in kwargs else 0,
                supports_masking=False,
            )

    def test_tlu(self):
        self.run_layer_test(
            TLU, init_kwargs={"tau_initializer": "ones"}, input_shape=(2, 3, 4),
            expected_output_shape=(2, 3, 4), expected_num_trainable_weights=1,
            expected_num_non_trainable_weights=0, supports_masking=True,
        )
        # tfa's expected values (tensorflow_addons/layers/tests/tlu_test.py).
        self.run_layer_test(
            TLU, init_kwargs={}, input_data=np.array([[-2.5, 0.0, 0.3]], "float32"),
            expected_output=keras.ops.convert_to_tensor([[0.0, 0.0, 0.3]], "float32"),
            expected_num_trainable_weights=1, supports_masking=True,
        )


def test_config_roundtrip_and_bad_arguments():
    for layer in (FRN(axis=1, epsilon=1e-5, learned_epsilon=True, beta_initializer="ones",
                      gamma_constraint="non_neg", name="frn"),
                  TLU(axis=2, tau_initializer="ones", tau_regularizer="l1")):
        assert_config_roundtrip(layer)
    with pytest.raises(ValueError, match=r"Received: epsilon=-1\.0"):
        FRN(epsilon=-1.0)
    with pytest.raises(ValueError, match=r"learned_epsilon=True.*Received: epsilon=0\.0"):
        FRN(epsilon=0.0)
    with pytest.raises(TypeError, match=r"Received: learned_epsilon='yes'"):
        FRN(learned_epsilon="yes")
    with pytest.raises(TypeError, match=r"Received: axis=\[1, 2\]"):
        FRN(axis=[1, 2])
    with pytest.raises(ValueError, match=r"Received: axis=0"):
        FRN(axis=0)(np.zeros((2, 3, 3, 1), "float32"))
    with pytest.raises(ValueError, match=r"Received: axis=5"):
        TLU(axis=5)(np.zeros((2, 3), "float32"))


@pytest.fixture
def mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_mixed_float16_large_activations(mixed_precision):
    """Activations near 1000 (squares overflow float16): computed in float32."""
    x = (1000.0 * RNG.normal(size=(2, 4, 4, 3))).astype("float16")
    frn, tlu, (gamma, beta, tau) = frn_tlu(x.shape, -1)
    assert frn.compute_dtype == "float16" and frn.gamma.dtype == "float32"
    got = keras.ops.convert_to_numpy(tlu(frn(x)))
    assert got.dtype == np.float16
    expected = np_frn_tlu(x.astype(np.float64), gamma, beta, tau, 1e-6, 3)
    np.testing.assert_allclose(got.astype(np.float64), expected, rtol=2e-3, atol=5e-3)


def conv_model(seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input((6, 6, 2)),
        keras.layers.Conv2D(4, 3, padding="same", use_bias=False),
        FRN(learned_epsilon=True),
        TLU(),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(3),
    ])
    rng = np.random.default_rng(seed)
    for weight in model.weights:  # non-trivial gamma, beta, tau
        if weight.path.split("/")[-1] in ("gamma", "beta", "tau"):
            weight.assign(rng.normal(size=weight.shape))
    return model


DATA_X = RNG.normal(size=(16, 6, 6, 2)).astype("float32")
DATA_Y = RNG.integers(0, 3, size=16)


def train(model):
    model.compile(optimizer=keras.optimizers.SGD(0.1),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(DATA_X, DATA_Y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    return model


@requires_tensorflow
def test_mirrored_strategy_trains_like_one_device(mirrored_strategy):
    """Each replica normalizes its own examples: two replicas of 4 examples
    take the steps one device takes on the batch of 8."""
    single = train(conv_model())
    with mirrored_strategy.scope():
        mirrored = conv_model()
    train(mirrored)
    for a, b in zip(single.get_weights(), mirrored.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert any(not np.allclose(a, b) for a, b in zip(single.get_weights(), conv_model().get_weights()))


@requires_tensorflow
def test_keras_file_in_a_fresh_process_and_export(tmp_path):
    model = train(conv_model())
    assert_keras_roundtrip(model, DATA_X[:5], tmp_path, atol=1e-5)
    assert_saved_model_roundtrip(model, DATA_X[:5], tmp_path)


def test_learned_epsilon_and_tau_train():
    """The learned epsilon, gamma, beta and tau all receive gradients (tfa's test_eps_gards)."""
    model = conv_model()
    frn, tlu = model.layers[1], model.layers[2]
    before = [keras.ops.convert_to_numpy(w).copy() for w in
              (frn.learned_epsilon_weight, frn.gamma, frn.beta, tlu.tau)]
    train(model)
    after = [keras.ops.convert_to_numpy(w) for w in
             (frn.learned_epsilon_weight, frn.gamma, frn.beta, tlu.tau)]
    for name, a, b in zip(("learned_epsilon", "gamma", "beta", "tau"), before, after):
        assert not np.array_equal(a, b), name
