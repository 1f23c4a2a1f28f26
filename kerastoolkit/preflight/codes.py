"""The preflight finding codes, their severity and what to do about each."""

from kerastoolkit.diagnostics.report import Finding

#: Severity of every preflight code (registered with the diagnostics codes).
PREFLIGHT_CODES = {
    "non_finite_inputs": "error",
    "input_scale": "warning",
    "constant_input": "error",
    "labels_out_of_range": "error",
    "label_format": "error",
    "logits_mismatch": "error",
    "single_class": "error",
    "class_imbalance": "warning",
    "data_order": "error",
    "init_loss": "warning",
    "cannot_overfit": "error",
    "ignores_input": "error",
    "no_signal": "error",
    "dead_gradients": "error",
    "optimizer_nan": "error",
    "optimizer_explodes": "error",
    "optimizer_rises": "error",
    "optimizer_flat": "error",
    "lr_suggestion": "info",
}

ADVICE = {
    "non_finite_inputs": "Remove or impute the NaN/Inf values before training: "
    "one NaN example turns the first layer's weights into NaN (and behind ReLU "
    "the loss stays finite, at the chance level).",
    "input_scale": "Standardize the inputs (subtract the training mean, divide "
    "by the std; or scale 0-255 pixels to [0, 1]), e.g. with a "
    "`keras.layers.Normalization` layer adapted on the training set.",
    "constant_input": "Most input features never change: the inputs are not "
    "what you think (a wrong column, a blank image, a broken loader).",
    "labels_out_of_range": "Sparse labels must be integers in [0, C) with C "
    "the number of outputs: remap them, or give the model C outputs.",
    "label_format": "Match labels and loss: integer labels with "
    "`SparseCategoricalCrossentropy`, one-hot labels with "
    "`CategoricalCrossentropy`.",
    "logits_mismatch": "Use `from_logits=True` with a linear last layer (no "
    "softmax), or a softmax/sigmoid last layer with `from_logits=False`, not "
    "a mix.",
    "single_class": "Only one class in the labels: the model can learn nothing "
    "but that class. Check the labels and the data split.",
    "class_imbalance": "Strongly imbalanced classes: set the last layer's bias "
    "to the log class priors, use class weights or resampling, and watch "
    "per-class metrics.",
    "data_order": "The data come sorted (grouped by label): shuffle them (a "
    "`tf.data` pipeline with `.shuffle(n, reshuffle_each_iteration=True)`, "
    "or `fit(..., shuffle=True)`).",
    "init_loss": "The initial loss is far above the chance level: the "
    "initialization is overconfident. Scale down the last layer (Xavier/"
    "Kaiming init), set its bias to zero or to the log class priors.",
    "cannot_overfit": "A copy of the model cannot memorize one small batch: "
    "the model, the loss or the labels are broken (check the output layer, "
    "the loss, `from_logits`, the labels).",
    "ignores_input": "The model does as well with zeroed inputs as with the "
    "real ones: it does not use its input (a disconnected branch, a "
    "`stop_gradient`, inputs overwritten in the pipeline).",
    "no_signal": "A short training does not lower the loss on held-back "
    "batches: the labels do not match the inputs (shuffled or misaligned "
    "labels, a join on the wrong key), or the inputs carry no signal.",
    "dead_gradients": "Some trainable weights get no usable gradient: a branch "
    "not connected to the loss, a `stop_gradient`, an integer cast, or "
    "NaN/Inf in the forward pass.",
    "optimizer_nan": "The model's own optimizer turns the loss into NaN/Inf "
    "within a few steps: lower the learning rate (by 10x or more), clip "
    "gradients (`clipnorm=1.0`), check the loss scale under mixed precision.",
    "optimizer_explodes": "The model's own optimizer makes the loss explode: "
    "the learning rate is far too high for this optimizer (or momentum too "
    "high, weight decay too strong). Lower it by 10x or more.",
    "optimizer_rises": "The model's own optimizer makes the loss rise: the "
    "learning rate is too high, or weight decay too strong. Lower them.",
    "optimizer_flat": "The model's own optimizer does not move the loss: the "
    "learning rate is far too low or zero (a schedule that is 0 at the start, "
    "decay steps counted in epochs), or clipping or a zero update cancels every "
    "step.",
    "lr_suggestion": "The learning-rate range test's suggestion (Smith 2017): "
    "a starting point, not a guarantee.",
}


def finding(code, message, evidence, advice=None):
    """A `Finding` with the code's severity and advice (or `advice`)."""
    return Finding(code, PREFLIGHT_CODES[code], message, advice or ADVICE[code], evidence)


def register():
    """Adds the preflight codes to the diagnosis's codes (one code namespace)."""
    from kerastoolkit.diagnostics import report

    for code, severity in PREFLIGHT_CODES.items():
        report.CODES.setdefault(code, severity)


register()
