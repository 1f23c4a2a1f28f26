"""The copy of the model every training check trains, and its losses.

One copy (`keras.models.clone_model` with the model's weights) serves every
check: it is compiled once per optimizer and put back at the initial weights
and a fresh optimizer state between checks, so each traced train function is
built once. Losses are computed eagerly (one forward pass costs far less
than tracing Keras's test function for it).
"""

import math

import keras
import numpy as np

from kerastoolkit.diagnostics.statistics import variables_kept


def _clone_layer(layer):
    if isinstance(layer, keras.layers.Lambda):
        return layer  # stateless; its Python function cannot be re-created safely
    return layer.__class__.from_config(layer.get_config())


class Copy:
    """A copy of `model`, with the weights `model` has now.

    Args:
        model: the user's compiled model (only read).
    """

    def __init__(self, model):
        self.model = keras.models.clone_model(model, clone_function=_clone_layer)
        self.weights = model.get_weights()
        _set_weights(self.model, self.weights)
        self.loss = model.loss
        self._fresh, self._dirty = None, False
        # The random draws of training-mode passes (dropout masks,
        # augmentation): every measured loss uses these, so two losses differ
        # only by the weights.
        self.seeds = [(v, np.array(keras.ops.convert_to_numpy(v), copy=True))
                      for v in self.model.non_trainable_variables if _is_seed(v)]

    def compile(self, optimizer, example):
        """Compiles the copy with `optimizer` (built now) and resets it;
        returns the optimizer `fit` uses (a `LossScaleOptimizer` around
        `optimizer` under mixed precision).

        Everything the train step would create on its first call is created
        here, eagerly, from `example` (an `(x, y)` batch): TensorFlow traces a
        function that creates variables twice.
        """
        # metrics=[]: `compile` would keep the ones `clone_model` copied over
        self.model.compile(optimizer=optimizer, loss=self.loss, metrics=[])
        optimizer = self.model.optimizer
        optimizer.build(self.model.trainable_variables)
        self.loss_of(*example)  # builds the compiled loss and its trackers
        self._fresh = [np.array(keras.ops.convert_to_numpy(v), copy=True)
                       for v in optimizer.variables]
        self.reset()  # back to the initial weights if an earlier optimizer trained them
        return optimizer

    def snapshot_optimizer(self):
        """Takes the optimizer's present state as its fresh state."""
        self._fresh = [np.array(keras.ops.convert_to_numpy(v), copy=True)
                       for v in self.model.optimizer.variables]

    def reset(self):
        """Back to the initial weights and the optimizer's fresh state."""
        if not self._dirty:
            return
        _set_weights(self.model, self.weights)
        self._dirty = False
        if self._fresh is not None:
            for variable, value in zip(self.model.optimizer.variables, self._fresh):
                variable.assign(value)

    def train(self, x, y):
        """One step on one batch; returns the batch's loss before the step."""
        self._dirty = True
        return _scalar(self.model.train_on_batch(x, y))

    def loss_of(self, x, y, training=True, batch=256):
        """The mean loss on `(x, y)`, eagerly; in training mode with the
        copy's first random draws, leaving its non-trainable state as it was."""
        losses, sizes = self._chunk_losses(x, y, training, batch)
        return float(np.sum(losses * sizes) / np.sum(sizes))

    def loss_with_error(self, x, y, chunks=8):
        """The mean loss on `(x, y)` and its standard error, from the spread
        of the losses of `chunks` equal parts (training mode, as `loss_of`)."""
        batch = max(1, len(y) // chunks)
        losses, sizes = self._chunk_losses(x, y, True, batch)
        mean = float(np.sum(losses * sizes) / np.sum(sizes))
        full = losses[sizes == batch]
        error = float(np.std(full, ddof=1) / np.sqrt(len(full))) if len(full) > 1 else math.inf
        return mean, error

    def _chunk_losses(self, x, y, training, batch):
        losses, sizes = [], []
        with variables_kept(self.model):
            for start in range(0, len(y), batch):
                if training:
                    for variable, value in self.seeds:
                        variable.assign(value)
                xb = keras.tree.map_structure(lambda a: a[start:start + batch], x)
                yb = y[start:start + batch]
                pred = self.model(xb, training=training)
                loss = self.model.compute_loss(x=xb, y=yb, y_pred=pred, training=training)
                losses.append(float(keras.ops.convert_to_numpy(loss)))
                sizes.append(len(yb))
        return np.asarray(losses), np.asarray(sizes, "float64")

    def predict(self, x, training=False):
        with variables_kept(self.model):
            return keras.ops.convert_to_numpy(self.model(x, training=training))


def _set_weights(model, weights):
    """`set_weights`, then what loading does after it: adapted preprocessing
    layers (`Normalization`, `Discretization`...) recompute the constants
    they compute with from their weights (`finalize_state`)."""
    model.set_weights(weights)
    for layer in _all_layers(model):
        if hasattr(layer, "finalize_state") and layer.built:
            layer.finalize_state()


def _all_layers(layer):
    for inner in getattr(layer, "layers", []):
        yield inner
        yield from _all_layers(inner)


def _is_seed(variable):
    # SeedGenerator states (dropout, noise, augmentation) are integer vectors;
    # BatchNorm's moving statistics are floats and are not random draws.
    return "int" in str(variable.dtype)


def _scalar(result):
    """The loss from `train_on_batch` (a scalar, `[loss, ...]` or a dict)."""
    if isinstance(result, dict):
        result = result["loss"]
    return float(np.ravel(np.asarray(result, dtype="float64"))[0])
