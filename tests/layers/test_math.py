"""Each layer against a NumPy implementation of its paper's formula."""

import keras
import numpy as np
import pytest

import kerastoolkit as kt

RS = np.random.RandomState(7)


def to_np(x):
    return keras.ops.convert_to_numpy(x)


# ---------------------------------------------------------------- instance norm
def instance_norm_reference(x, gamma, beta, epsilon, channel_axis):
    axes = tuple(i for i in range(1, x.ndim) if i != channel_axis % x.ndim)
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    shape = [1] * x.ndim
    shape[channel_axis] = -1
    return gamma.reshape(shape) * (x - mean) / np.sqrt(var + epsilon) + beta.reshape(shape)


@pytest.mark.parametrize("axis", [-1, 1])
def test_instance_normalization_matches_reference(axis):
    x = (RS.randn(3, 5, 6, 4) * 3 + 2).astype("float32")
    layer = kt.layers.InstanceNormalization(axis=axis, epsilon=1e-5)
    layer.build(x.shape)
    channels = x.shape[axis]
    gamma = RS.rand(channels).astype("float32") + 0.5
    beta = RS.randn(channels).astype("float32")
    layer.gamma.assign(gamma)
    layer.beta.assign(beta)
    expected = instance_norm_reference(x, gamma, beta, 1e-5, axis)
    for training in (True, False):  # no batch statistics: the same both ways
        np.testing.assert_allclose(to_np(layer(x, training=training)), expected, atol=2e-5)


def test_instance_normalization_arguments():
    with pytest.raises(TypeError, match="groups"):
        kt.layers.InstanceNormalization(groups=2)
    with pytest.raises(ValueError, match="rank >= 3"):
        kt.layers.InstanceNormalization()(np.ones((2, 3), "float32"))
    assert "groups" not in kt.layers.InstanceNormalization().get_config()


# ---------------------------------------------------------------- ghost BN
def ghost_reference(x, vbs, epsilon, gamma, beta):
    """Ghost batches of `vbs`; the remainder joins the last one."""
    n = x.shape[0]
    ghosts = max(n // vbs, 1)
    out = np.empty_like(x, dtype="float64")
    means, variances, sizes = [], [], []
    for g in range(ghosts):
        part = x[g * vbs:(n if g == ghosts - 1 else (g + 1) * vbs)].astype("float64")
        axes = tuple(range(part.ndim - 1))
        mean, var = part.mean(axis=axes), part.var(axis=axes)
        out[g * vbs:g * vbs + len(part)] = gamma * (part - mean) / np.sqrt(var + epsilon) + beta
        means.append(mean)
        variances.append(var)
        sizes.append(len(part))
    sizes = np.array(sizes, float)[:, None]
    return out, (np.array(means) * sizes).sum(0) / sizes.sum(), (np.array(variances) * sizes).sum(0) / sizes.sum()


@pytest.mark.parametrize("shape", [(32, 5), (29, 5), (6, 5), (21, 3, 2, 4)],
                         ids=["divisible", "remainder", "smaller", "conv"])
def test_ghost_batch_normalization_training_matches_reference(shape):
    x = (RS.randn(*shape) * 2 + 1).astype("float32")
    channels = shape[-1]
    layer = kt.layers.GhostBatchNormalization(8, momentum=0.6, epsilon=1e-3)
    layer.build(x.shape)
    gamma = RS.rand(channels).astype("float32") + 0.5
    beta = RS.randn(channels).astype("float32")
    layer.gamma.assign(gamma)
    layer.beta.assign(beta)
    expected, mean, var = ghost_reference(x, 8, 1e-3, gamma, beta)
    np.testing.assert_allclose(to_np(layer(x, training=True)), expected, atol=2e-5)
    np.testing.assert_allclose(to_np(layer.moving_mean), 0.4 * mean, atol=1e-5)
    np.testing.assert_allclose(to_np(layer.moving_variance), 0.6 + 0.4 * var, atol=1e-5)
    # Inference: the moving statistics, as plain batch norm.
    moving_mean, moving_var = to_np(layer.moving_mean), to_np(layer.moving_variance)
    inference = gamma * (x - moving_mean) / np.sqrt(moving_var + 1e-3) + beta
    np.testing.assert_allclose(to_np(layer(x, training=False)), inference, atol=2e-5)


def test_ghost_batch_normalization_is_not_batch_norm_with_several_ghosts():
    x = RS.randn(32, 4).astype("float32") + np.arange(32)[:, None].astype("float32")
    ghost = to_np(kt.layers.GhostBatchNormalization(8)(x, training=True))
    plain = to_np(keras.layers.BatchNormalization()(x, training=True))
    assert np.abs(ghost - plain).max() > 0.5
    # A batch of one ghost batch is plain batch norm.
    np.testing.assert_allclose(
        to_np(kt.layers.GhostBatchNormalization(32)(x, training=True)), plain, atol=1e-5)


def test_ghost_batch_normalization_fit_with_partial_last_batch():
    """70 examples in batches of 32: the last batch (6) is smaller than a ghost batch."""
    x = RS.randn(70, 6).astype("float32")
    y = RS.randn(70, 1).astype("float32")
    model = keras.Sequential([
        keras.Input((6,)), keras.layers.Dense(8),
        kt.layers.GhostBatchNormalization(virtual_batch_size=16), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    history = model.fit(x, y, batch_size=32, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert not np.allclose(to_np(model.layers[1].moving_mean), 0.0)


def test_ghost_batch_normalization_arguments():
    with pytest.raises(ValueError, match=r"Received: virtual_batch_size=0"):
        kt.layers.GhostBatchNormalization(0)
    with pytest.raises(TypeError, match=r"Received: virtual_batch_size=2.5"):
        kt.layers.GhostBatchNormalization(2.5)
    with pytest.raises(ValueError, match=r"Received: renorm=True"):
        kt.layers.GhostBatchNormalization(4, renorm=True)


# ---------------------------------------------------------------- weight norm
def test_weight_normalization_dense_forward_and_data_init():
    x = (RS.randn(64, 6) * 2 + 1).astype("float32")
    layer = kt.layers.WeightNormalization(keras.layers.Dense(4, activation="relu"))
    out = to_np(layer(x))  # inference: w = g·v/‖v‖ with g = ‖v‖ at creation
    v, b = to_np(layer.layer.kernel), to_np(layer.layer.bias)
    np.testing.assert_allclose(to_np(layer.g), np.linalg.norm(v, axis=0), rtol=1e-6)
    np.testing.assert_allclose(out, np.maximum(x @ v + b, 0), atol=1e-5)

    # First training batch: the paper's data-dependent init.
    out = to_np(layer(x, training=True))
    t = x @ (v / np.linalg.norm(v, axis=0))
    g, bias = to_np(layer.g), to_np(layer.layer.bias)
    np.testing.assert_allclose(g, 1 / t.std(axis=0), rtol=1e-4)
    np.testing.assert_allclose(bias, -t.mean(axis=0) / t.std(axis=0), atol=1e-4)
    pre = t * g + bias
    np.testing.assert_allclose(pre.mean(axis=0), 0, atol=1e-4)
    np.testing.assert_allclose(pre.std(axis=0), 1, atol=1e-4)
    np.testing.assert_allclose(out, np.maximum(pre, 0), atol=1e-4)

    # Only once: a second batch leaves g alone; new g, v give g·v/‖v‖.
    layer.g.assign(g * 3)
    layer(x[:10] + 5, training=True)
    np.testing.assert_allclose(to_np(layer.g), g * 3, rtol=1e-6)
    expected = np.maximum(x @ (3 * g * v / np.linalg.norm(v, axis=0)) + bias, 0)
    np.testing.assert_allclose(to_np(layer(x)), expected, atol=1e-4)


@pytest.mark.parametrize("conv", ["Conv2D", "Conv2DTranspose"])
def test_weight_normalization_conv_norm_per_output_channel(conv):
    x = RS.randn(4, 6, 6, 3).astype("float32")
    layer = kt.layers.WeightNormalization(getattr(keras.layers, conv)(5, 3), data_init=False)
    layer(x)
    v = to_np(layer.layer.kernel)
    out_axis = 2 if conv == "Conv2DTranspose" else 3
    norms = np.sqrt((v ** 2).sum(axis=tuple(i for i in range(4) if i != out_axis)))
    np.testing.assert_allclose(to_np(layer.g), norms, rtol=1e-5)
    g = (RS.rand(5) + 0.5).astype("float32")
    layer.g.assign(g)
    shape = [1, 1, 1, 1]
    shape[out_axis] = 5
    reference = getattr(keras.layers, conv)(5, 3)
    reference.build(x.shape)
    reference.set_weights([v / norms.reshape(shape) * g.reshape(shape), to_np(layer.layer.bias)])
    np.testing.assert_allclose(to_np(layer(x, training=True)), to_np(reference(x)), atol=1e-5)


def test_weight_normalization_arguments():
    with pytest.raises(ValueError, match=r"kernel.*Received: layer='flatten'"):
        kt.layers.WeightNormalization(keras.layers.Flatten(name="flatten"))
    with pytest.raises(TypeError, match="Received: data_init=1"):
        kt.layers.WeightNormalization(keras.layers.Dense(2), data_init=1)
    with pytest.raises(TypeError, match="Received: layer="):
        kt.layers.WeightNormalization("dense")


# ---------------------------------------------------------------- noise
def _identity_probe(wrapper, n_in, n_out):
    """With the identity as the batch, output − bias is the kernel used."""
    eye = np.eye(n_in, dtype="float32")
    wrapper(eye)
    kernel = to_np(wrapper.layer.kernel)
    used = to_np(wrapper(eye, training=True)) - to_np(wrapper.layer.bias)
    return kernel, used


def test_weight_noise_statistics_and_inference():
    layer = kt.layers.WeightNoise(keras.layers.Dense(300), stddev=0.2, seed=3)
    kernel, used = _identity_probe(layer, 200, 300)
    noise = used - kernel
    assert abs(noise.mean()) < 4 * 0.2 / np.sqrt(noise.size)
    assert noise.std() == pytest.approx(0.2, rel=0.02)
    x = RS.randn(5, 200).astype("float32")
    np.testing.assert_allclose(to_np(layer(x)), x @ kernel + to_np(layer.layer.bias), atol=1e-5)
    # Fresh noise at every call; the same seed gives the same sequence.
    _, second = _identity_probe(layer, 200, 300)
    assert not np.allclose(second, used)
    twin = kt.layers.WeightNoise(keras.layers.Dense(300), stddev=0.2, seed=3)
    twin(np.eye(200, dtype="float32"))
    twin.layer.set_weights(layer.layer.get_weights())
    twin_used = to_np(twin(np.eye(200, dtype="float32"), training=True)) - to_np(twin.layer.bias)
    np.testing.assert_allclose(twin_used, used, atol=1e-6)


def test_drop_connect_mask_and_scaling():
    layer = kt.layers.DropConnect(keras.layers.Dense(300), rate=0.3, seed=5)
    kernel, used = _identity_probe(layer, 200, 300)
    dropped = np.isclose(used, 0.0, atol=1e-7)
    assert dropped.mean() == pytest.approx(0.3, abs=4 * np.sqrt(0.21 / used.size))
    np.testing.assert_allclose(used[~dropped], kernel[~dropped] / 0.7, rtol=1e-5)
    x = RS.randn(5, 200).astype("float32")
    np.testing.assert_allclose(to_np(layer(x)), x @ kernel + to_np(layer.layer.bias), atol=1e-5)


def test_stochastic_depth_per_example():
    x = RS.rand(4000, 3, 2).astype("float32") + 1.0
    layer = kt.layers.StochasticDepth(0.25, seed=1)
    out = to_np(layer(x, training=True))
    kept = np.all(out != 0, axis=(1, 2))
    dropped = np.all(out == 0, axis=(1, 2))
    assert np.all(kept | dropped)  # a whole example's branch, never part of it
    assert dropped.mean() == pytest.approx(0.25, abs=4 * np.sqrt(0.25 * 0.75 / 4000))
    np.testing.assert_allclose(out[kept], x[kept] / 0.75, rtol=1e-6)
    np.testing.assert_array_equal(to_np(layer(x, training=False)), x)


@pytest.mark.parametrize("make, match", [
    (lambda: kt.layers.WeightNoise(keras.layers.Dense(2), stddev=-0.1), r"Received: stddev=-0.1"),
    (lambda: kt.layers.DropConnect(keras.layers.Dense(2), rate=1.0), r"Received: rate=1.0"),
    (lambda: kt.layers.DropConnect(keras.layers.Dense(2), rate=-0.5), r"Received: rate=-0.5"),
    (lambda: kt.layers.StochasticDepth(1.5), r"Received: rate=1.5"),
    (lambda: kt.layers.StochasticDepth(0.1, seed="a"), r"Received: seed='a'"),
    (lambda: kt.layers.WeightNoise(keras.layers.Flatten(name="flat"))(np.ones((2, 3))),
     r"kernel.*Received: layer='flat'"),
    (lambda: kt.layers.DropConnect(keras.layers.ReLU(name="relu"))(np.ones((2, 3))),
     r"kernel.*Received: layer='relu'"),
    (lambda: kt.layers.WeightNoise(keras.layers.BatchNormalization(name="bn"))(np.ones((2, 3))),
     r"kernel.*Received: layer='bn'"),
])
def test_bad_arguments(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def np_weight_norm_init_and_sgd_step(x, target, v, learning_rate):
    """Salimans & Kingma on a linear Dense and the mean squared error, by hand.

    The data-dependent init on the batch first (`g = 1/σ`, `b = −μ/σ` of
    `t = x·v/‖v‖`), then one SGD step differentiating the normal forward pass
    `y = x·(g·v/‖v‖) + b` with respect to `v`, `g` and `b` (the paper's
    equation 3 for `v`). Returns the step's loss and the new `g`, `v`, `b`.
    """
    x, v = x.astype("float64"), v.astype("float64")
    norm = np.sqrt((v**2).sum(axis=0))
    u = v / norm
    t = x @ u
    g = 1 / np.sqrt(t.var(axis=0) + 1e-6)
    b = -t.mean(axis=0) * g
    diff = x @ (u * g) + b - target
    loss = (diff**2).mean()
    dy = 2 * diff / diff.size
    dw, db = x.T @ dy, dy.sum(axis=0)
    dg = (dw * u).sum(axis=0)
    dv = g / norm * (dw - u * dg)
    return loss, g - learning_rate * dg, v - learning_rate * dv, b - learning_rate * db


@pytest.mark.parametrize("jit_compile", [False, True])
def test_weight_normalization_data_init_inside_compiled_fit(jit_compile):
    """The init, then one real SGD step on the same batch, against NumPy.

    TensorFlow: the init runs inside the compiled step on its first batch.
    JAX: a jitted step cannot write trainable weights, so the documented
    route is one eager training call on the batch before `fit`.
    """
    if jit_compile and keras.backend.backend() == "jax":
        pytest.skip("JAX's fit is always jitted: the jit_compile=False case covers it")
    x = (RS.randn(16, 5) * 3 + 2).astype("float32")
    target = RS.randn(16, 3).astype("float32")
    model = keras.Sequential([keras.Input((5,)), kt.layers.WeightNormalization(keras.layers.Dense(3))])
    wn = model.layers[0]
    v = to_np(wn.layer.kernel)
    loss, g, v_new, b = np_weight_norm_init_and_sgd_step(x, target, v, 0.1)
    if keras.backend.backend() == "jax":
        model(x, training=True)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse", jit_compile=jit_compile)
    history = model.fit(x, target, batch_size=16, shuffle=False, epochs=1, verbose=0)
    assert float(to_np(wn.initialized)) == 1.0
    np.testing.assert_allclose(history.history["loss"][0], loss, rtol=1e-4)
    np.testing.assert_allclose(to_np(wn.g), g, rtol=1e-4)
    np.testing.assert_allclose(to_np(wn.layer.kernel), v_new, atol=1e-5)
    np.testing.assert_allclose(to_np(wn.layer.bias), b, atol=1e-5)
