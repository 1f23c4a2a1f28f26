"""Activation and gradient statistics, and the findings they support.

Gathered by `CurveDiagnostics(statistics_every=N, statistics_data=(x, y))`
every `N` steps on a fixed probe batch, for every layer that has a kernel
(Dense, Conv, ...), in depth order:

- `activation_std`: standard deviation of the layer's output (after its
  activation);
- `dead_fraction`: for ReLU layers, the fraction of units (channels) that are
  zero for every example of the probe batch;
- `gradient_rms`: root mean square of the loss gradient back-propagated to
  the layer's output (TensorFlow); on other backends, w.r.t. the layer's
  weights;
- `update_ratio`: `‖Δw‖ / ‖w‖` of the layer's kernel over one optimizer step
  (Karpathy's rule of thumb: about `1e-3`).

Findings (default thresholds in `DEFAULT_THRESHOLDS`):

| code | rule |
| --- | --- |
| `dead_relu` | a ReLU layer with more than 40% of its units dead at the last record |
| `vanishing_activations` | `std(last hidden) / std(first hidden)` below `1e-2` at initialization (the first record, before any update) or in the median over records |
| `exploding_activations` | that ratio above `1e2` |
| `vanishing_gradients` | `rms(grad first layer) / rms(grad last layer)` below `1e-2`, at initialization or in the median |
| `exploding_gradients` | that ratio above `1e2` |
| `update_ratio` | median update-to-weight ratio of a layer below `1e-5` or above `1e-1` |
"""

import numpy as np

import keras

from kerastoolkit.diagnostics.report import CODES
from kerastoolkit.diagnostics.report import Finding

DEFAULT_THRESHOLDS = {
    "dead_relu_fraction": 0.4,
    "activation_ratio_low": 1e-2,
    "activation_ratio_high": 1e2,
    "gradient_ratio_low": 1e-2,
    "gradient_ratio_high": 1e2,
    "update_ratio_low": 1e-5,
    "update_ratio_high": 1e-1,
}

ADVICE = {
    "dead_relu": "Many ReLU units never fire: lower the learning rate, use "
    "Kaiming init with zero biases, or LeakyReLU/GELU.",
    "vanishing_activations": "Activations shrink with depth: the init is too "
    "small. Use Xavier (tanh) / Kaiming (ReLU) init, LSUV, or normalization.",
    "exploding_activations": "Activations grow with depth: the init is too "
    "large. Use Xavier / Kaiming init, LSUV, or normalization.",
    "vanishing_gradients": "Gradients shrink towards the input: use Kaiming/"
    "Xavier init, normalization layers, residual connections, ReLU.",
    "exploding_gradients": "Gradients grow towards the input: clip gradients "
    "(`clipnorm`), lower the rate, fix the init, add normalization.",
    "update_ratio": "The update-to-weight ratio is far from about 1e-3: the "
    "learning rate is far too low (ratio tiny) or far too high (ratio large).",
}


def _finding(code, message, evidence):
    return Finding(code, CODES[code], message, ADVICE[code], evidence)


def _is_relu(layer):
    activation = getattr(layer, "activation", None)
    if activation is None:
        return type(layer).__name__ == "ReLU"
    return activation in (keras.activations.relu,) or getattr(
        activation, "__name__", ""
    ) == "relu"


class StatisticsRecorder:
    """Computes the statistics of one model on a fixed probe batch.

    Args:
        model: a built functional or `Sequential` Keras model.
        data: the probe batch, `(x, y)` or `(x, y, sample_weight)`.

    Raises:
        ValueError: if the model has no layer with a kernel, or is subclassed
            (its intermediate outputs cannot be read).
    """

    def __init__(self, model, data):
        self.model = model
        self.x, self.y, self.sample_weight = keras.utils.unpack_x_y_sample_weight(
            data
        )
        self.layers = [
            layer for layer in model.layers
            if getattr(layer, "kernel", None) is not None
        ]
        if not self.layers:
            raise ValueError(
                "`model` has no layer with a kernel to gather statistics on. "
                f"Received: model={model.name}"
            )
        try:
            inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
            outputs = [layer.output for layer in self.layers]
            self.probe = keras.Model(inputs, outputs)
            full = list(outputs)
            self._output_index = []
            for out in keras.tree.flatten(model.outputs):
                same = [i for i, o in enumerate(full) if o is out]
                if same:
                    self._output_index.append(same[0])
                else:
                    full.append(out)
                    self._output_index.append(len(full) - 1)
            self._full = keras.Model(inputs, full)
        except (AttributeError, ValueError) as error:
            raise ValueError(
                "Activation statistics need a functional or Sequential model "
                f"(intermediate outputs). Received: model={model.name} ({error})"
            ) from None
        self.relu = [_is_relu(layer) for layer in self.layers]
        self._before = None
        self._functions = {}

    def _sync(self):
        # On JAX, `fit` keeps the state outside the variables between syncs.
        sync = getattr(self.model, "jax_state_sync", None)
        if sync is not None:
            sync()

    def metadata(self):
        return {"layers": [layer.name for layer in self.layers], "relu": self.relu}

    def _compiled(self, name, fn):
        """`fn` as a `tf.function` on TensorFlow (built once), else `fn`."""
        if keras.backend.backend() != "tensorflow":
            return fn()
        if name not in self._functions:
            import tensorflow as tf

            self._functions[name] = tf.function(fn)
        return self._functions[name]()

    def activations(self):
        outs = self._compiled("activations", lambda: self.probe(self.x, training=False))
        if not isinstance(outs, (list, tuple)):
            outs = [outs]
        stds, dead = [], []
        for out, relu in zip(outs, self.relu):
            a = keras.ops.convert_to_numpy(out).astype("float64")
            stds.append(float(np.std(a)))
            if relu:
                active = (a > 0).reshape(-1, a.shape[-1]).any(axis=0)
                dead.append(float(1.0 - active.mean()))
            else:
                dead.append(None)
        return stds, dead

    def gradients(self):
        if keras.backend.backend() == "tensorflow":
            return self._output_gradients()
        grads = gradients(self.model, self.x, self.y, self.sample_weight)
        by_var = {id(v): g for v, g in zip(self.model.trainable_variables, grads)}
        rms = []
        for layer in self.layers:
            gs = [by_var[id(v)] for v in layer.trainable_variables if id(v) in by_var]
            if not gs:
                rms.append(None)
                continue
            flat = np.concatenate([np.asarray(g, "float64").ravel() for g in gs])
            rms.append(float(np.sqrt(np.mean(flat**2))))
        return rms

    def _output_gradients(self):
        grads = self._compiled("output_gradients", self._output_gradient_tensors)
        return [
            None if g is None
            else float(np.sqrt(np.mean(np.square(g.numpy().astype("float64")))))
            for g in grads
        ]

    def _output_gradient_tensors(self):
        import tensorflow as tf

        n = len(self.layers)
        with tf.GradientTape() as tape:
            if isinstance(self.model, keras.Sequential):
                # `layer.output` of a Sequential's layers is not on the path
                # of `model.outputs`: run the chain of layers itself.
                h, outs = self.x, []
                for layer in self.model.layers:
                    h = layer(h, training=True)
                    if any(layer is k for k in self.layers):
                        outs.append(h)
                y_pred = h
            else:
                outs = self._full(self.x, training=True)
                y_pred = [outs[i] for i in self._output_index]
                if len(y_pred) == 1:
                    y_pred = y_pred[0]
            loss = self.model.compute_loss(
                x=self.x, y=self.y, y_pred=y_pred, sample_weight=self.sample_weight
            )
        return tape.gradient(loss, outs[:n])

    def snapshot_kernels(self):
        self._sync()
        self._before = [
            keras.ops.convert_to_numpy(layer.kernel).astype("float64")
            for layer in self.layers
        ]

    def update_ratios(self):
        if self._before is None:
            return None
        self._sync()
        ratios = []
        for layer, before in zip(self.layers, self._before):
            after = keras.ops.convert_to_numpy(layer.kernel).astype("float64")
            norm = np.linalg.norm(before)
            ratios.append(
                float(np.linalg.norm(after - before) / norm) if norm > 0 else None
            )
        self._before = None
        return ratios

    def record(self, step):
        self._sync()
        with variables_kept(self.model):
            stds, dead = self.activations()
            rms = self.gradients()
        return {
            "step": int(step),
            "activation_std": stds,
            "dead_fraction": dead,
            "gradient_rms": rms,
        }


class variables_kept:
    """Puts back every non-trainable variable of `model` on exit.

    A probe that runs the model with `training=True` moves BatchNorm's
    moving statistics and advances the seed generators of dropout and noise
    layers; the probes leave the model exactly as they found it.
    """

    def __init__(self, model):
        self.model = model

    def __enter__(self):
        self._saved = [
            (v, np.array(keras.ops.convert_to_numpy(v), copy=True))
            for v in self.model.variables if not v.trainable
        ]
        return self

    def __exit__(self, *exc):
        for v, value in self._saved:
            v.assign(value)
        return False


def gradients(model, x, y, sample_weight=None):
    """Gradients of the training loss w.r.t. `model.trainable_variables`.

    Uses `tf.GradientTape` on TensorFlow and `jax.grad` on JAX (Keras has no
    backend-neutral gradient API).

    Returns:
        A list of NumPy arrays (or `None` for variables without gradient).

    Raises:
        NotImplementedError: on other backends.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        with variables_kept(model):
            with tf.GradientTape() as tape:
                y_pred = model(x, training=True)
                loss = model.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight)
            grads = tape.gradient(loss, model.trainable_variables)
        return [None if g is None else g.numpy() for g in grads]
    if backend == "jax":
        import jax

        tv = [v.value for v in model.trainable_variables]
        ntv = [v.value for v in model.non_trainable_variables]
        mv = [v.value for v in model.metrics_variables]
        ov = None
        if getattr(model, "optimizer", None) is not None:
            ov = [v.value for v in model.optimizer.variables]

        def loss_fn(trainable):
            loss, _ = model.compute_loss_and_updates(
                trainable, ntv, mv, x, y, sample_weight, training=True,
                optimizer_variables=ov,
            )
            return loss

        return [np.asarray(g) for g in jax.grad(loss_fn)(tv)]
    raise NotImplementedError(
        f"Gradient statistics support the tensorflow and jax backends. "
        f"Received: backend={backend}"
    )


def _ratio(records, key, first, last):
    """The ratio at the first record (initialization) or the median over all
    records, whichever is further from 1; returns `(ratio, records used)`."""
    candidates = [(_median_ratio(records[:1], key, first, last), records[:1]),
                  (_median_ratio(records, key, first, last), records)]
    candidates = [c for c in candidates if c[0] is not None]
    if not candidates:
        return None, None
    return max(candidates,
               key=lambda c: abs(np.log(c[0])) if 0 < c[0] < np.inf else np.inf)


def _when(used, records):
    if len(used) == 1 and len(records) > 1:
        return f"at initialization (step {used[0]['step']})"
    return f"median over {len(used)} records"


def _median_of(used, key, index):
    values = [r[key][index] for r in used if r[key][index] is not None]
    return float(np.median(values)) if values else float("nan")


def _median_ratio(records, key, first, last):
    ratios = []
    for r in records:
        values = r.get(key)
        if not values:
            continue
        a, b = values[first], values[last]
        if a is None or b is None or not np.isfinite(a) or not np.isfinite(b):
            continue
        if b > 0:
            ratios.append(a / b)
        elif a > 0:
            ratios.append(np.inf)
    return float(np.median(ratios)) if ratios else None


def detect(statistics, t):
    """Findings from recorded statistics (see the module docstring)."""
    records = statistics.get("records") or []
    layers = statistics.get("layers") or []
    if not records or not layers:
        return []
    findings = []
    last = records[-1]
    dead = [
        (name, frac)
        for name, frac in zip(layers, last.get("dead_fraction") or [])
        if frac is not None and frac > t["dead_relu_fraction"]
    ]
    if dead:
        findings.append(_finding(
            "dead_relu",
            "Dead ReLU units (zero for every probe example): "
            + ", ".join(f"{n} {100 * f:.0f}%" for n, f in dead) + ".",
            {"step": last["step"], "layers": {n: f for n, f in dead}},
        ))
    hidden = len(layers) - 1  # the last layer is the output layer
    if hidden >= 2:
        # depth ratio: last hidden layer over first hidden layer
        ratio, used = _ratio(records, "activation_std", hidden - 1, 0)
        if ratio is not None:
            first_std = _median_of(used, "activation_std", 0)
            deep_std = _median_of(used, "activation_std", hidden - 1)
            when = _when(used, records)
            evidence = {"ratio_last_to_first": ratio, "first_layer": layers[0],
                        "last_hidden_layer": layers[hidden - 1],
                        "first_std": first_std, "last_std": deep_std, "when": when}
            if ratio < t["activation_ratio_low"]:
                findings.append(_finding(
                    "vanishing_activations",
                    f"Activation std collapses with depth {when}: {first_std:.3g} "
                    f"at {layers[0]}, {deep_std:.3g} at {layers[hidden - 1]}.",
                    evidence,
                ))
            elif ratio > t["activation_ratio_high"]:
                findings.append(_finding(
                    "exploding_activations",
                    f"Activation std blows up with depth {when}: {first_std:.3g} "
                    f"at {layers[0]}, {deep_std:.3g} at {layers[hidden - 1]}.",
                    evidence,
                ))
    if len(layers) >= 3:
        ratio, used = _ratio(records, "gradient_rms", 0, len(layers) - 1)
        if ratio is not None:
            when = _when(used, records)
            evidence = {"ratio_first_to_last": ratio, "first_layer": layers[0],
                        "last_layer": layers[-1], "when": when}
            if ratio < t["gradient_ratio_low"]:
                findings.append(_finding(
                    "vanishing_gradients",
                    f"Gradients at {layers[0]} are {ratio:.2g}x those at "
                    f"{layers[-1]} {when}.",
                    evidence,
                ))
            elif ratio > t["gradient_ratio_high"]:
                findings.append(_finding(
                    "exploding_gradients",
                    f"Gradients at {layers[0]} are {ratio:.2g}x those at "
                    f"{layers[-1]} {when}.",
                    evidence,
                ))
    per_layer = {}
    for r in records:
        for name, value in zip(layers, r.get("update_ratio") or []):
            if value is not None and np.isfinite(value):
                per_layer.setdefault(name, []).append(value)
    off = {}
    for name, values in per_layer.items():
        med = float(np.median(values))
        if med < t["update_ratio_low"] or med > t["update_ratio_high"]:
            off[name] = med
    if off:
        findings.append(_finding(
            "update_ratio",
            "Update-to-weight ratio far from ~1e-3: "
            + ", ".join(f"{n} {v:.2g}" for n, v in off.items()) + ".",
            {"median_ratio": off},
        ))
    return findings
