"""Layer-sequential unit-variance initialization (Mishkin & Matas, 2016)."""

import math

import keras
import numpy as np
from keras import ops

from kerastoolkit import _checks


def kernel_layers(model):
    """The Dense/Conv-like layers of `model` in order, nested models included.

    A layer counts when it has a `kernel` variable and an `activation`
    (Dense, EinsumDense, Conv1D/2D/3D and their transposes); wrappers
    (`keras.layers.Wrapper`, e.g. `kt.layers.WeightNormalization`) are left
    alone, since rescaling a normalized kernel changes nothing, and so are
    frozen layers (`trainable=False`, e.g. a pre-trained base), whose
    weights are not to change.
    """
    found = []
    for layer in getattr(model, "layers", []):
        if isinstance(layer, keras.layers.Wrapper) or not layer.trainable:
            continue
        if hasattr(layer, "layers") and not hasattr(layer, "kernel"):
            found += kernel_layers(layer)
        elif isinstance(getattr(layer, "kernel", None), keras.Variable) and hasattr(layer, "activation"):
            found.append(layer)
    return found


def _output_variance(model, layer, x_batch):
    """Variance of `layer`'s pre-activation output when `model` runs on the batch."""
    captured = {}
    original_call = layer.call
    activation = layer.activation

    def recording_call(*args, **kwargs):
        layer.activation = keras.activations.linear
        try:
            outputs = original_call(*args, **kwargs)
        finally:
            layer.activation = activation
        captured["variance"] = float(ops.convert_to_numpy(ops.var(ops.cast(outputs, "float32"))))
        return outputs if activation is None else activation(outputs)

    layer.call = recording_call
    try:
        model(x_batch, training=False)
    finally:
        del layer.call
    if "variance" not in captured:
        raise ValueError(
            f"Layer {layer.name!r} did not run when the model was called on "
            "`x_batch`; LSUV needs every Dense/Conv layer on the forward path."
        )
    return captured["variance"]


def lsuv(model, x_batch, tol=0.1, max_iter=10, seed=None):
    """Layer-sequential unit-variance (LSUV) initialization, in place.

    For each Dense/Conv layer `l` in forward order (nested models included):

    1. its kernel is replaced by an orthogonal matrix
       (`keras.initializers.Orthogonal`, the kernel flattened to
       `(fan_in·…, units)`); biases are left as they are (zero by default);
    2. the model runs on `x_batch` (`training=False`) and the variance `v` of
       the layer's output *before its activation* is measured over all
       elements; while `|v − 1| ≥ tol` and fewer than `max_iter` rescalings
       were made, the kernel is divided by `√v` and `v` measured again.

    Earlier layers are final when a layer is processed, so each layer sees
    the unit-variance inputs its predecessors now give. Frozen layers
    (`trainable=False`) keep their weights.

    Args:
        model: A built Keras model (Sequential, functional or subclassed
            with a `layers` list); it is modified in place.
        x_batch: A batch of inputs (NumPy array or tensor, a few hundred
            examples; the paper uses a mini-batch).
        tol: Tolerance on the output variance, > 0. Defaults to `0.1` (the
            paper's `Tol_var`).
        max_iter: Maximum rescalings per layer, >= 1. Defaults to `10` (the
            paper's `T_max`).
        seed: Integer seed of the orthogonal initialization (layer `i` uses
            `seed + i`), or `None`. Defaults to `None`.

    Returns:
        A list with one dict per layer, in order: `"layer"` (name),
        `"variance_before"` (after the orthogonal init, before rescaling),
        `"variance_after"`, `"iterations"` (rescalings made) and
        `"converged"` (`|variance_after − 1| < tol`). A layer whose output
        variance is 0 (e.g. every input unit dead) cannot be rescaled: it is
        reported with `converged=False` and left orthogonal.

    Raises:
        TypeError: if `model` is not a Keras model, or `max_iter`/`seed`
            have the wrong type.
        ValueError: if `tol <= 0`, `max_iter < 1`, or `model` has no
            Dense/Conv layer.

    Example:

    ```python
    import keras
    import kerastoolkit as kt
    x, y = kt.data.load("digits", split="train", as_numpy=True)
    x = x.reshape(len(x), -1)
    model = keras.Sequential([keras.Input((64,))]
                             + [keras.layers.Dense(64, activation="relu") for _ in range(8)]
                             + [keras.layers.Dense(10)])
    report = kt.initializers.lsuv(model, x[:256], seed=0)
    ```

    References:
        - Mishkin & Matas, 2016, "All you need is a good init", ICLR
          (arXiv:1511.06422).
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"Argument `model` must be a keras.Model. Received: model={model!r}")
    tol = _checks.check_real("tol", tol, 0.0, low_open=True)
    max_iter = _checks.check_int("max_iter", max_iter, 1)
    if seed is not None and not _checks.is_int(seed):
        raise TypeError(f"Argument `seed` must be an integer or None. Received: seed={seed!r}")
    if not model.built:
        model(x_batch, training=False)
    layers = kernel_layers(model)
    if not layers:
        raise ValueError(
            "LSUV found no Dense or Conv layer (a layer with a `kernel` and an "
            f"`activation`). Received: model={model.name!r}"
        )
    report = []
    for i, layer in enumerate(layers):
        kernel = layer.kernel
        orthogonal = keras.initializers.Orthogonal(seed=None if seed is None else seed + i)
        kernel.assign(orthogonal(tuple(kernel.shape), dtype=kernel.dtype))
        variance = before = _output_variance(model, layer, x_batch)
        iterations = 0
        while abs(variance - 1.0) >= tol and iterations < max_iter:
            if not (variance > 0.0 and math.isfinite(variance)):
                break
            kernel.assign(ops.cast(kernel, "float32") / np.float32(math.sqrt(variance)))
            iterations += 1
            variance = _output_variance(model, layer, x_batch)
        report.append({
            "layer": layer.name,
            "variance_before": before,
            "variance_after": variance,
            "iterations": iterations,
            "converged": abs(variance - 1.0) < tol,
        })
    return report
