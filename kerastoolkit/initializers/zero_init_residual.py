"""Zero-initialized last BatchNorm γ of each residual block (Goyal et al., 2017)."""

import keras


def _producers(model):
    """Maps `id(tensor)` → the layer of `model` that outputs it."""
    producers = {}
    for layer in model.layers:
        try:
            outputs = keras.tree.flatten(layer.output)
        except (AttributeError, ValueError):  # never called, or shared
            continue
        for tensor in outputs:
            producers[id(tensor)] = layer
    return producers


def _inputs_of(layer):
    try:
        return keras.tree.flatten(layer.input)
    except (AttributeError, ValueError):
        return []


def _zero_in(model, zeroed):
    producers = _producers(model)
    depth = {}

    def depth_of(layer):
        key = id(layer)
        if key not in depth:
            depth[key] = 0  # cycles cannot happen; this guards recursion
            parents = [producers.get(id(t)) for t in _inputs_of(layer)]
            depth[key] = 1 + max(
                (depth_of(p) for p in parents if p is not None), default=0
            )
        return depth[key]

    for layer in model.layers:
        if hasattr(layer, "layers"):
            _zero_in(layer, zeroed)
        if not isinstance(layer, keras.layers.Add):
            continue
        candidates = [
            producers.get(id(t)) for t in _inputs_of(layer)
        ]
        candidates = [
            p for p in candidates
            if isinstance(p, keras.layers.BatchNormalization) and p.scale
        ]
        if not candidates:
            continue
        deepest = max(depth_of(p) for p in candidates)
        for bn in candidates:
            if depth_of(bn) == deepest and bn.trainable and bn.name not in zeroed:
                bn.gamma.assign(keras.ops.zeros(bn.gamma.shape, bn.gamma.dtype))
                zeroed.append(bn.name)


def zero_init_residual_gamma(model):
    """Sets to zero the γ of the last BatchNorm of every residual block, in place.

    With `γ = 0` the residual branch `F(x)` outputs 0 at the start, so each
    block `x + F(x)` starts as the identity and the network behaves like a
    shallower one early in training (Goyal et al., section 5.1, "zero γ").

    **What counts as a residual block.** A `keras.layers.Add` in a
    functional model (nested functional models included). Of the
    `BatchNormalization` layers (with `scale=True`) whose outputs feed that
    `Add` *directly*, the one deepest in the graph (most layers from the
    model's inputs) is the end of the residual branch and is zeroed; a
    shallower one is a projection shortcut's BN (conv 1×1 + BN) and keeps
    its γ. BNs at equal depth are all zeroed; a frozen one
    (`trainable=False`, in a pre-trained base) keeps its γ. A BN followed by anything
    (an activation, dropout) before the `Add` is not detected, nor is a
    residual sum written as `x + y` in a subclassed model's `call`.

    Args:
        model: A built functional (or Sequential, containing functional
            blocks) Keras model.

    Returns:
        The list of the names of the BatchNormalization layers zeroed, in
        model order (empty when no residual block was found).

    Raises:
        TypeError: if `model` is not a Keras model.

    Example:

    ```python
    import keras
    import kerastoolkit as kt
    inputs = keras.Input((8, 8, 16))
    h = keras.layers.Conv2D(16, 3, padding="same")(inputs)
    h = keras.layers.BatchNormalization()(keras.layers.ReLU()(h))
    h = keras.layers.Conv2D(16, 3, padding="same")(h)
    h = keras.layers.BatchNormalization(name="bn_last")(h)
    outputs = keras.layers.ReLU()(keras.layers.Add()([inputs, h]))
    model = keras.Model(inputs, outputs)
    kt.initializers.zero_init_residual_gamma(model)   # ['bn_last']
    ```

    References:
        - Goyal et al., 2017, "Accurate, Large Minibatch SGD: Training
          ImageNet in 1 Hour", arXiv:1706.02677.
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"Argument `model` must be a keras.Model. Received: model={model!r}")
    zeroed = []
    _zero_in(model, zeroed)
    return zeroed
