"""Transfer learning: a trained network as a fixed feature extractor, or fine-tuned with a new head.

Strategy 1 (`feature_extractor`): cut the network at a layer, pool its
features, freeze it, and train a new classifier on top. Strategy 2
(`fine_tune`): a new head on the network, the base frozen first, then
unfrozen from some layer on with a smaller learning rate than the head's.
The base's BatchNormalization layers stay in inference mode while fine-tuning
(they stay frozen), the classic trap of unfreezing a network that holds batch
normalization: with batch statistics the features the head learned on change
under it.
"""

import re

import keras

from kerastoolkit import _checks


def _layer_names(model):
    return [layer.name for layer in model.layers]


def _get_layer(model, layer_name, argument="layer_name"):
    names = _layer_names(model)
    if layer_name not in names:
        shown = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
        raise ValueError(
            f"The model {model.name!r} has no layer named {layer_name!r}; its layers are "
            f"[{shown}]. Received: {argument}={layer_name!r}"
        )
    return model.get_layer(layer_name)


def _all_layers(model):
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from _all_layers(layer)


def _features(model, layer_name):
    if not isinstance(model, keras.Model) or not getattr(model, "inputs", None):
        raise TypeError(
            "Argument `model` must be a functional or Sequential keras.Model with inputs. "
            f"Received: model={model!r}"
        )
    if layer_name is None:
        tensor = model.layers[-1].input  # what the classifier head sees
    else:
        if not isinstance(layer_name, str):
            raise TypeError(f"Argument `layer_name` must be a string. Received: layer_name={layer_name!r}")
        tensor = _get_layer(model, layer_name).output
    rank = len(tensor.shape)
    if rank == 4:
        tensor = keras.layers.GlobalAveragePooling2D(name="pooled_features")(tensor)
    elif rank == 3:
        tensor = keras.layers.GlobalAveragePooling1D(name="pooled_features")(tensor)
    return tensor


def feature_extractor(model, layer_name=None):
    """A trained network as a fixed feature extractor (transfer strategy 1).

    The returned model maps the network's inputs to the output of
    `layer_name` (default: the input of the last layer, the penultimate
    features), average-pooled over space when it is a feature map. It is
    frozen (`trainable=False`) and shares its layers and weights with
    `model` (so the shared layers become non-trainable in `model` too).

    Args:
        model: a trained functional or Sequential `keras.Model`.
        layer_name: name of the layer whose output are the features.
            Defaults to `None`: the last layer's input.

    Returns:
        A frozen `keras.Model` with pooled features `(batch, d)` out.

    Raises:
        ValueError: for a layer name the model does not have.
        TypeError: for a model without symbolic inputs.

    Example:
    >>> features = kt.models.transfer.feature_extractor(base).predict(x_new)
    >>> head = keras.Sequential([keras.layers.Dense(5, activation="softmax")])
    """
    outputs = _features(model, layer_name)
    extractor = keras.Model(model.inputs, outputs, name=f"{model.name}_features")
    extractor.trainable = False
    return extractor


def fine_tune(
    model,
    num_classes,
    unfreeze_from=None,
    base_learning_rate_multiplier=0.1,
    learning_rate=1e-3,
    layer_name=None,
    loss="sparse_categorical_crossentropy",
    metrics=("accuracy",),
):
    """A new classification head on a trained network, compiled for fine-tuning.

    The new model is `head(base(x, training=False))`: `base` is the
    network cut at `layer_name` (pooled features), `head` a softmax
    `Dense(num_classes)` named `"head"`. The base's BatchNormalization
    layers stay frozen, hence in inference mode, even when the layers around
    them are unfrozen: Keras 3 passes the outer `training=True` into a nested
    model even when it was called with `training=False`, and a
    non-trainable BatchNormalization layer is the one that keeps using its
    moving statistics.

    - `unfreeze_from=None`: the whole base is frozen (train the head first);
    - `unfreeze_from="layer"` (or an index into `base.layers`): that layer
      and the ones after it are trainable; the others stay frozen.

    The base's trainable variables learn at
    `base_learning_rate_multiplier × learning_rate`, the head at
    `learning_rate`, with Keras 3.15's `keras.optimizers.MultiOptimizer`
    over an `OptimizerMap` (two Adam optimizers). `MultiOptimizer` has no
    single `learning_rate`, so callbacks that set the rate do not apply to it;
    use schedules instead.

    Call `fine_tune` on the trained base once per stage: stage 1 with the
    base frozen, then stage 2 on the stage-1 model's layers with
    `unfreeze(model, unfreeze_from, ...)`.

    Args:
        model: the trained network (functional or Sequential).
        num_classes: classes of the new task, at least 2.
        unfreeze_from: name or index of the first trainable base layer, or
            `None` for a frozen base. Defaults to `None`.
        base_learning_rate_multiplier: factor in (0, 1] of the base's rate.
            Defaults to `0.1`.
        learning_rate: the head's learning rate. Defaults to `1e-3`.
        layer_name: where to cut the network. Defaults to `None`: the last
            layer's input.
        loss: loss of the new task. Defaults to
            `"sparse_categorical_crossentropy"`.
        metrics: metrics of the new task. Defaults to `("accuracy",)`.

    Returns:
        A compiled functional `keras.Model` with layers `"base"` and `"head"`.

    Raises:
        ValueError: for a layer name the model does not have, fewer than 2
            classes, or a multiplier outside (0, 1].

    Example:

    ```python
    model = kt.models.transfer.fine_tune(base, 5)            # stage 1: head only
    model.fit(x_new, y_new, epochs=20)
    kt.models.transfer.unfreeze(model, "features", base_learning_rate_multiplier=0.1)
    model.fit(x_new, y_new, epochs=10)                        # stage 2
    ```

    References:
        - [Yosinski et al., 2014](https://arxiv.org/abs/1411.1792), "How
          transferable are features in deep neural networks?".
    """
    num_classes = _checks.check_int("num_classes", num_classes, 2)
    base = keras.Model(model.inputs, _features(model, layer_name), name="base")
    inputs = keras.Input(tuple(model.input_shape[1:]), name="fine_tune_input")
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="head")(
        base(inputs, training=False)
    )
    new = keras.Model(inputs, outputs, name=f"{model.name}_fine_tuned")
    return unfreeze(new, unfreeze_from, base_learning_rate_multiplier, learning_rate, loss, metrics)


def unfreeze(
    model,
    unfreeze_from=None,
    base_learning_rate_multiplier=0.1,
    learning_rate=1e-3,
    loss=None,
    metrics=None,
):
    """Unfreezes a `fine_tune` model's base from a layer on and recompiles it.

    Args:
        model: a model returned by `fine_tune`.
        unfreeze_from: name or index of the first trainable base layer, or
            `None` to freeze the whole base. Defaults to `None`.
        base_learning_rate_multiplier: factor in (0, 1] of the base's rate.
            Defaults to `0.1`.
        learning_rate: the head's learning rate. Defaults to `1e-3`.
        loss: loss. Defaults to `None`: the model's compiled loss.
        metrics: metrics. Defaults to `None`: `["accuracy"]`.

    Returns:
        `model`, recompiled.

    Raises:
        ValueError: for an unknown layer name or index, or a multiplier
            outside (0, 1].
    """
    multiplier = _checks.check_real(
        "base_learning_rate_multiplier", base_learning_rate_multiplier, low=0.0, high=1.0, low_open=True
    )
    learning_rate = _checks.check_real("learning_rate", learning_rate, low=0.0, low_open=True)
    if not isinstance(model, keras.Model) or "base" not in _layer_names(model):
        raise ValueError(
            "Argument `model` must be a model returned by `fine_tune` (with a layer named "
            f"'base'). Received: model={getattr(model, 'name', model)!r}"
        )
    base = model.get_layer("base")
    layers = base.layers
    if unfreeze_from is None:
        first = len(layers)
    elif isinstance(unfreeze_from, str):
        first = layers.index(_get_layer(base, unfreeze_from, argument="unfreeze_from"))
    elif _checks.is_int(unfreeze_from) and -len(layers) <= unfreeze_from < len(layers):
        first = unfreeze_from % len(layers)
    else:
        raise ValueError(
            f"Argument `unfreeze_from` must be a layer name or an index below {len(layers)}. "
            f"Received: unfreeze_from={unfreeze_from!r}"
        )
    base.trainable = True
    for i, layer in enumerate(layers):
        layer.trainable = i >= first
    # Keras 3 passes the outer `training=True` into nested models even when
    # the base was called with `training=False` (functional `operation_fn`),
    # so BatchNormalization is kept in inference mode by keeping it frozen:
    # a non-trainable BatchNormalization layer uses its moving statistics.
    for layer in _all_layers(base):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False
    if loss is None:
        loss = getattr(model, "loss", None) or "sparse_categorical_crossentropy"
    metrics = ["accuracy"] if metrics is None else list(metrics)
    head_optimizer = keras.optimizers.Adam(learning_rate)
    base_variables = base.trainable_variables
    if base_variables and multiplier != 1.0:
        base_optimizer = keras.optimizers.Adam(learning_rate * multiplier)
        optimizer_map = keras.optimizers.OptimizerMap(
            head_optimizer, {re.escape(v.path): base_optimizer for v in base_variables}
        )
        optimizer = keras.optimizers.MultiOptimizer(optimizer_map)
    else:
        optimizer = head_optimizer
    model.compile(optimizer=optimizer, loss=loss, metrics=metrics)
    return model
