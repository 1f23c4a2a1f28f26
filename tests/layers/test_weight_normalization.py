"""WeightNormalization on recurrent layers and Conv1D, and folding it back (`remove`).

Each forward pass is checked against a NumPy implementation of the layer
with the kernel `g·v/‖v‖` written in this file (Keras's gate orders:
GRU `[z, r, h]` with `reset_after=True`, LSTM `[i, f, c, o]`). Where
TensorFlow Addons' tests for its `WeightNormalization` state a number, the
same behaviour is checked here (a wrapper starts out computing what the
plain layer computes; an identity Dense with the data init maps
`[[-4, -4], [4, 4]]` to a quarter of it; `remove()` gives the plain class
with the same outputs).
"""

import keras
import numpy as np
import pytest

import kerastoolkit as kt

RS = np.random.RandomState(11)


def to_np(x):
    return np.asarray(keras.ops.convert_to_numpy(x), dtype="float64")


def normalized(v, g, axis=0):
    """`g·v/‖v‖`, the norm over every axis but the output one (the last)."""
    axes = tuple(i for i in range(v.ndim) if i != v.ndim - 1)
    return g * v / np.sqrt((v**2).sum(axis=axes, keepdims=True))


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def np_simple_rnn(x, w, u, b):
    h = np.zeros((x.shape[0], w.shape[1]))
    for t in range(x.shape[1]):
        h = np.tanh(x[:, t] @ w + h @ u + b)
    return h


def np_gru(x, w, u, b):
    """Keras's GRU with `reset_after=True`: `b[0]` input bias, `b[1]` recurrent bias."""
    n = w.shape[1] // 3
    h = np.zeros((x.shape[0], n))
    for t in range(x.shape[1]):
        xs, hs = x[:, t] @ w + b[0], h @ u + b[1]
        z = sigmoid(xs[:, :n] + hs[:, :n])
        r = sigmoid(xs[:, n:2 * n] + hs[:, n:2 * n])
        candidate = np.tanh(xs[:, 2 * n:] + r * hs[:, 2 * n:])
        h = z * h + (1 - z) * candidate
    return h


def np_lstm(x, w, u, b):
    n = w.shape[1] // 4
    h = c = np.zeros((x.shape[0], n))
    for t in range(x.shape[1]):
        gates = x[:, t] @ w + h @ u + b
        i, f = sigmoid(gates[:, :n]), sigmoid(gates[:, n:2 * n])
        c = f * c + i * np.tanh(gates[:, 2 * n:3 * n])
        h = sigmoid(gates[:, 3 * n:]) * np.tanh(c)
    return h


RECURRENT = {
    "SimpleRNN": (keras.layers.SimpleRNN, np_simple_rnn),
    "GRU": (keras.layers.GRU, np_gru),
    "LSTM": (keras.layers.LSTM, np_lstm),
}


def random_lengths(wrapper):
    """Sets `g` (and `recurrent_g`) to lengths unlike the kernel's norms."""
    wrapper.g.assign(RS.uniform(0.5, 2.0, wrapper.g.shape).astype("float32"))
    if wrapper.recurrent:
        wrapper.recurrent_g.assign(
            RS.uniform(0.5, 2.0, wrapper.recurrent_g.shape).astype("float32"))


@pytest.mark.parametrize("kind", sorted(RECURRENT))
def test_recurrent_kernel_and_recurrent_kernel_are_normalized(kind):
    layer_class, reference = RECURRENT[kind]
    x = RS.randn(3, 5, 4).astype("float32")
    plain = layer_class(6, bias_initializer="random_normal")
    expected_start = to_np(plain(x))
    wrapper = kt.layers.WeightNormalization(plain, data_init=False)
    # At creation g = ‖v‖: the wrapper computes what the plain layer computed.
    np.testing.assert_allclose(to_np(wrapper(x)), expected_start, atol=1e-5)
    random_lengths(wrapper)
    cell = plain.cell
    v, u, b = to_np(cell.kernel), to_np(cell.recurrent_kernel), to_np(cell.bias)
    w = normalized(v, to_np(wrapper.g))
    r = normalized(u, to_np(wrapper.recurrent_g))
    expected = reference(x.astype("float64"), w, r, b)
    # (the inference path is the same call; remove() below checks it too)
    np.testing.assert_allclose(to_np(wrapper(x, training=True)), expected, atol=2e-5)
    assert len(wrapper.trainable_weights) == 5  # g, recurrent_g, kernel, recurrent kernel, bias


def test_recurrent_layers_refuse_the_data_init():
    with pytest.raises(ValueError, match="data_init=False.*Received: data_init=True"):
        kt.layers.WeightNormalization(keras.layers.LSTM(3))


def test_recurrent_dropout_draws_fresh_masks():
    """The recurrent layer's own seed advances through the wrapper."""
    x = RS.randn(4, 5, 3).astype("float32")
    wrapper = kt.layers.WeightNormalization(keras.layers.GRU(8, dropout=0.5, seed=1), data_init=False)
    first = to_np(wrapper(x, training=True))
    second = to_np(wrapper(x, training=True))
    assert np.abs(first - second).max() > 1e-3
    np.testing.assert_allclose(to_np(wrapper(x)), to_np(wrapper(x)), atol=0)


def np_causal_conv1d(x, w, b, dilation):
    """`y[t] = Σ_k x[t − (K−1−k)·d] · w[k] + b`, zeros before the start."""
    kernel_size = w.shape[0]
    pad = (kernel_size - 1) * dilation
    padded = np.concatenate([np.zeros((x.shape[0], pad, x.shape[2])), x], axis=1)
    out = np.zeros((x.shape[0], x.shape[1], w.shape[2]))
    for t in range(x.shape[1]):
        for k in range(kernel_size):
            out[:, t] += padded[:, t + k * dilation] @ w[k]
    return out + b


def test_conv1d_causal_dilated_as_in_temporal_convolutional_networks():
    x = (RS.randn(8, 12, 3) * 2 + 1).astype("float32")
    conv = keras.layers.Conv1D(5, 3, padding="causal", dilation_rate=2)
    wrapper = kt.layers.WeightNormalization(conv)
    wrapper(x)
    v = to_np(conv.kernel)
    np.testing.assert_allclose(to_np(wrapper.g), np.sqrt((v**2).sum(axis=(0, 1))), rtol=1e-5)
    # The data init: over the batch and the time steps, per filter.
    out = to_np(wrapper(x, training=True))
    t = np_causal_conv1d(x, normalized(v, 1.0), 0.0, 2)
    mean, std = t.mean(axis=(0, 1)), t.std(axis=(0, 1))
    np.testing.assert_allclose(to_np(wrapper.g), 1 / std, rtol=1e-4)
    np.testing.assert_allclose(to_np(conv.bias), -mean / std, atol=1e-4)
    np.testing.assert_allclose(out, (t - mean) / std, atol=1e-4)
    random_lengths(wrapper)
    expected = np_causal_conv1d(x, normalized(v, to_np(wrapper.g)), to_np(conv.bias), 2)
    np.testing.assert_allclose(to_np(wrapper(x)), expected, atol=1e-4)


@pytest.mark.parametrize("data_init, expected_scale", [(False, 1.0), (True, 0.25)])
def test_identity_dense_and_the_data_init(data_init, expected_scale):
    """tfa's expectation: an identity Dense maps [[-4, -4], [4, 4]] to itself,
    or with the data init to a quarter of it (mean 0, standard deviation 4)."""
    x = np.array([[[-4, -4], [4, 4]]], dtype="float32")
    dense = keras.layers.Dense(2, kernel_initializer="identity", bias_initializer="zeros")
    wrapper = kt.layers.WeightNormalization(dense, data_init=data_init)
    np.testing.assert_allclose(to_np(wrapper(x, training=True)), x * expected_scale, atol=1e-5)


def plain_and_wrapped(kind):
    makers = {
        "Dense": (lambda: keras.layers.Dense(4, activation="tanh"), (3, 6)),
        "Conv1D": (lambda: keras.layers.Conv1D(4, 3, padding="causal", dilation_rate=2), (3, 7, 2)),
        "Conv2D": (lambda: keras.layers.Conv2D(3, 1), (2, 3, 3, 1)),
        "SimpleRNN": (lambda: keras.layers.SimpleRNN(3), (2, 6, 4)),
        "LSTM": (lambda: keras.layers.LSTM(3, return_sequences=True), (2, 6, 4)),
    }
    make, shape = makers[kind]
    layer = make()
    recurrent = kind in ("SimpleRNN", "LSTM")
    return layer, kt.layers.WeightNormalization(layer, data_init=not recurrent), shape


@pytest.mark.parametrize("kind", ["Dense", "Conv1D", "Conv2D", "SimpleRNN", "LSTM"])
def test_remove_folds_the_kernel_into_the_plain_layer(kind):
    layer, wrapper, shape = plain_and_wrapped(kind)
    x = RS.randn(*shape).astype("float32")
    wrapper(x, training=True)  # the data init where there is one
    random_lengths(wrapper)
    expected = to_np(wrapper(x))
    before = [to_np(w) for w in wrapper.weights]
    plain = wrapper.remove()
    assert type(plain) is type(layer)
    np.testing.assert_allclose(to_np(plain(x)), expected, atol=1e-5)
    owner = plain.cell if hasattr(plain, "cell") else plain
    np.testing.assert_allclose(
        to_np(owner.kernel), normalized(to_np(wrapper.kernel_owner.kernel), to_np(wrapper.g)), atol=1e-6)
    for b, a in zip(before, wrapper.weights):  # the wrapper is left as it was
        np.testing.assert_array_equal(to_np(a), b)


def test_remove_needs_a_built_wrapper():
    with pytest.raises(ValueError, match="needs a built wrapper"):
        kt.layers.WeightNormalization(keras.layers.Dense(2)).remove()


def test_remove_weight_normalization_gives_a_plain_model_with_the_same_outputs():
    keras.utils.set_random_seed(3)
    inputs = keras.Input((10, 3))
    h = kt.layers.WeightNormalization(keras.layers.Conv1D(4, 3, padding="causal", activation="relu"))(inputs)
    inner = keras.Sequential([keras.Input((10, 4)), kt.layers.WeightNormalization(
        keras.layers.LSTM(5), data_init=False)], name="inner")
    h = inner(h)
    outputs = kt.layers.WeightNormalization(keras.layers.Dense(2))(keras.layers.Dropout(0.1)(h))
    model = keras.Model(inputs, outputs)
    x = RS.randn(6, 10, 3).astype("float32")
    model(x, training=True)
    for layer in (model.layers[1], inner.layers[0], model.layers[-1]):
        random_lengths(layer)
    plain = kt.layers.remove_weight_normalization(model)

    def every_layer(m):
        for layer in m.layers:
            yield layer
            yield from every_layer(layer) if isinstance(layer, keras.Model) else ()

    kinds = {type(layer).__name__ for layer in every_layer(plain)}
    assert {"Conv1D", "LSTM", "Dense", "Dropout"} <= kinds
    assert not any(isinstance(layer, kt.layers.WeightNormalization) for layer in every_layer(plain))
    np.testing.assert_allclose(to_np(plain(x)), to_np(model(x)), atol=1e-5)
    ids = {id(v) for v in model.variables}
    assert not any(id(v) in ids for v in plain.variables)  # a copy, not shared
    with pytest.raises(TypeError, match="Received: model="):
        kt.layers.remove_weight_normalization(keras.layers.Dense(2))


def test_config_roundtrip_of_a_recurrent_wrapper():
    wrapper = kt.layers.WeightNormalization(keras.layers.GRU(3, return_sequences=True), data_init=False)
    rebuilt = kt.layers.WeightNormalization.from_config(wrapper.get_config())
    assert isinstance(rebuilt.layer, keras.layers.GRU) and rebuilt.layer.return_sequences
    assert rebuilt.get_config() == wrapper.get_config()
