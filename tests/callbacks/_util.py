"""Small models and recorders shared by the callback tests."""

import keras
import numpy as np
from keras import ops


@keras.saving.register_keras_serializable(package="kerastoolkit_tests")
def mean_output(y_true, y_pred):
    # Per-sample values (Keras averages them over the global batch, also
    # under a distribution strategy; a scalar here would not be rescaled).
    return ops.mean(y_pred, axis=-1)


def probe_model(optimizer):
    """`y = w·x` with x = 1 and loss = mean(y): every SGD step moves w by -lr.

    So the learning rate actually applied at step t is `w[t-1] - w[t]`,
    read back from the weights the compiled train step wrote.
    """
    model = keras.Sequential(
        [keras.Input((1,)), keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")]
    )
    model.compile(optimizer=optimizer, loss=mean_output)
    return model


def probe_data(steps_per_epoch, batch_size=4):
    n = steps_per_epoch * batch_size
    return np.ones((n, 1), "float32"), np.zeros((n, 1), "float32"), batch_size


class AppliedLR(keras.callbacks.Callback):
    """Records the rate each step applied (from the weights) and the optimizer's value."""

    def __init__(self):
        super().__init__()
        self.applied = []
        self.reported = []

    def _sync(self):
        if keras.backend.backend() == "jax":  # JAX keeps the step's state aside
            self.model.jax_state_sync()

    def on_train_batch_begin(self, batch, logs=None):
        self._sync()
        self._w = float(ops.convert_to_numpy(self.model.layers[0].kernel).ravel()[0])
        self.reported.append(float(ops.convert_to_numpy(self.model.optimizer.learning_rate)))

    def on_train_batch_end(self, batch, logs=None):
        self._sync()
        w = float(ops.convert_to_numpy(self.model.layers[0].kernel).ravel()[0])
        self.applied.append(self._w - w)


class InjectMetric(keras.callbacks.Callback):
    """Writes `values[epoch]` into `logs[name]` (list it before the callback under test)."""

    def __init__(self, name, values):
        super().__init__()
        self.name = name
        self.values = list(values)

    def on_epoch_end(self, epoch, logs=None):
        logs[self.name] = self.values[epoch]


class KillAt(keras.callbacks.Callback):
    """Raises at the beginning of epoch `epoch` (a killed job)."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise RuntimeError("killed")


def digits(seed=0):
    """sklearn digits, fixed split, scaled to [0, 1], as 8x8x1 images."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = (data.images / 16.0).astype("float32")[..., None]
    y = data.target.astype("int32")
    order = np.random.default_rng(seed).permutation(len(x))
    x, y = x[order], y[order]
    return (x[:1200], y[:1200]), (x[1200:], y[1200:])


def small_cnn(num_classes=10, bn=True, seed=0):
    keras.utils.set_random_seed(seed)
    layers = [keras.Input((8, 8, 1)), keras.layers.Conv2D(16, 3, padding="same", use_bias=not bn)]
    if bn:
        layers.append(keras.layers.BatchNormalization())
    layers += [
        keras.layers.Activation("relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(num_classes, activation="softmax"),
    ]
    return keras.Sequential(layers)
