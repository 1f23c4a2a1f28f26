"""Finding the first layer whose output or gradient is non-finite on a batch."""

import numpy as np

import keras

from kerastoolkit.diagnostics import statistics as stats_lib


def _finite(value):
    return bool(np.all(np.isfinite(np.asarray(value, dtype="float64"))))


def locate_non_finite(model, data, weights=None):
    """Re-runs one batch layer by layer and names where it becomes non-finite.

    Checks, in order: every layer's output in depth order (the first
    non-finite one is named, and whether the batch itself holds NaN/inf);
    the loss; the gradients w.r.t. every layer's weights in back-propagation
    order (the layer nearest the loss with a non-finite gradient is where it
    starts). Used by `CurveDiagnostics` on the batch where the loss first
    became non-finite, with the last finite weights.

    Args:
        model: a functional or `Sequential` Keras model (compiled, for the
            loss and gradient checks).
        data: the batch, `(x, y)` or `(x, y, sample_weight)`.
        weights: weights (as from `model.get_weights()`) to run the batch
            with; the model's weights are restored afterwards. Defaults to
            `None` (the current weights).

    Returns:
        A dict: `where` (`"output"`, `"input"` (non-finite batch, every layer
        output finite), `"loss"`, `"gradient"` or `None` when everything is
        finite), `layer` (the layer's name or
        `None`) and `description` (a sentence).

    Example:

    ```python
    found = locate_non_finite(model, (x_batch, y_batch))
    print(found["where"], found["layer"], found["description"])
    ```
    """
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    saved = None
    if weights is not None:
        saved = model.get_weights()
        model.set_weights(weights)
    try:
        with stats_lib.variables_kept(model):  # BatchNorm statistics, seeds
            return _locate(model, x, y, sample_weight)
    finally:
        if saved is not None:
            model.set_weights(saved)


def _locate(model, x, y, sample_weight):
    bad_inputs = [name for name, value in _named_inputs(x) if not _finite(value)]
    prefix = ""
    if bad_inputs:
        prefix = f"The batch itself contains NaN/inf (input {bad_inputs[0]!r}). "
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    try:
        inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
        probe = keras.Model(inputs, [layer.output for layer in layers])
    except (AttributeError, ValueError):
        probe = None  # subclassed model: only the loss and gradients
    if probe is not None:
        outs = probe(x, training=True)
        if not isinstance(outs, (list, tuple)):
            outs = [outs]
        for layer, out in zip(layers, outs):
            if not all(_finite(keras.ops.convert_to_numpy(o)) for o in keras.tree.flatten(out)):
                return {
                    "where": "output", "layer": layer.name,
                    "non_finite_input": bool(bad_inputs),
                    "description": prefix + "First non-finite output: layer "
                    f"{layer.name!r} ({type(layer).__name__}).",
                }
    if bad_inputs:
        return {"where": "input", "layer": None, "non_finite_input": True,
                "description": prefix.strip()}
    if getattr(model, "loss", None) is None:
        return {"where": None, "layer": None,
                "description": "All layer outputs are finite on that batch."}
    y_pred = model(x, training=True)
    loss = model.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight)
    if not _finite(keras.ops.convert_to_numpy(loss)):
        return {"where": "loss", "layer": None,
                "description": "Every layer output is finite; the loss is not."}
    try:
        grads = stats_lib.gradients(model, x, y, sample_weight)
    except NotImplementedError:
        grads = None
    if grads is not None:
        by_var = {id(v): g for v, g in zip(model.trainable_variables, grads)}
        for layer in reversed(layers):
            for v in layer.trainable_variables:
                g = by_var.get(id(v))
                if g is not None and not _finite(g):
                    return {
                        "where": "gradient", "layer": layer.name,
                        "description": "Outputs and loss are finite; the gradient "
                        f"first becomes non-finite at layer {layer.name!r} "
                        f"({type(layer).__name__}, weight {v.name!r}).",
                    }
    return {"where": None, "layer": None,
            "description": "The batch is finite through every layer with these "
            "weights: the weights themselves diverged over earlier steps."}


def _named_inputs(x):
    if isinstance(x, dict):
        return list(x.items())
    flat = keras.tree.flatten(x)
    return [(f"input_{i}", v) for i, v in enumerate(flat)]
