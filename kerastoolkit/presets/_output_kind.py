"""Does a classifier output logits or probabilities? The evidence, and one decision.

Most Keras classifiers end in a `Dense` without activation and are compiled
with `from_logits=True`; others end in a softmax. Whatever serves or trains
on "probabilities" has to know which, and must not guess: the evidence is

- the compiled loss's `from_logits` (categorical cross-entropies only);
- the last layer's activation (`softmax`: probabilities; none, `linear` or
  `log_softmax`: logits; anything else says nothing);
- a toolkit wrapper's own flag (`Ensemble`/`TTAPredictor` with
  `from_logits=True` apply the softmax themselves, `Distiller` has
  `student_outputs`), checked against the model it wraps;
- outputs on a sample: rows that are distributions (non-negative, summing to
  1) say probabilities, values below 0 or above 1 say logits.

`decide` returns the one kind all the evidence agrees on and raises a
`ValueError` naming the argument that settles it when the evidence disagrees
or there is none.
"""

import collections

import keras
import numpy as np

OUTPUT_KINDS = ("logits", "probabilities")

Evidence = collections.namedtuple("Evidence", ["source", "kind"])


class OutputKindError(ValueError):
    """Whether the model outputs logits or probabilities cannot be told: the argument must say."""

# Tolerances for a row of float16/bfloat16 probabilities (mixed precision).
_SUM_TOLERANCE = 5e-3
_RANGE_TOLERANCE = 1e-3


def _is_categorical_loss(loss):
    name = loss if isinstance(loss, str) else type(loss).__name__
    if isinstance(loss, keras.losses.Loss) and type(loss).__name__ == "LossFunctionWrapper":
        name = loss.get_config().get("name", "")
    elif callable(loss) and not isinstance(loss, keras.losses.Loss):
        name = getattr(loss, "__name__", "")
    name = str(name).lower().replace("_", "")
    return "categoricalcrossentropy" in name or "distillationloss" in name


def loss_from_logits(loss):
    """The `from_logits` of a categorical cross-entropy loss, or `None`.

    Args:
        loss: a Keras loss object, function or name, or the dict Keras
            serializes one to (a `.keras` file's `compile_config`).
    """
    if isinstance(loss, dict):
        config = loss.get("config")
        class_name = str(loss.get("class_name", ""))
        if not isinstance(config, dict) or not _is_categorical_loss(class_name):
            return None
        return bool(config.get("from_logits", False))
    if isinstance(loss, str):
        try:
            loss = keras.losses.get(loss)
        except ValueError:
            return None
    if loss is None or not _is_categorical_loss(loss):
        return None
    if isinstance(loss, keras.losses.Loss):
        value = getattr(loss, "from_logits", None)
        if value is None:
            value = loss.get_config().get("from_logits", False)
        return bool(value)
    import inspect

    try:
        parameter = inspect.signature(loss).parameters.get("from_logits")
    except (TypeError, ValueError):
        return None
    return None if parameter is None else bool(parameter.default)


def _loss_evidence(loss):
    from_logits = loss_from_logits(loss)
    if from_logits is None:
        return []
    return [Evidence(f"the compiled loss has from_logits={from_logits}", "logits" if from_logits else "probabilities")]


def _activation_name(layer):
    if isinstance(layer, keras.layers.Softmax):
        return "softmax"
    activation = getattr(layer, "activation", None)
    if activation is None:
        return None
    return getattr(activation, "__name__", None) or str(activation)


def _activation_evidence(model):
    """The last layer's activation, for a functional or Sequential model."""
    # Only a graph (functional or Sequential: it has `outputs`) says which
    # layer is last; a subclassed model's `layers` are in creation order.
    if len(getattr(model, "outputs", None) or []) != 1:
        return []
    layers = getattr(model, "layers", None)
    if not layers:
        return []
    last = layers[-1]
    if isinstance(last, keras.Model):
        return model_evidence(last, loss=None)
    name = _activation_name(last)
    if name == "softmax":
        return [Evidence(f"the last layer {last.name!r} has a softmax", "probabilities")]
    if name in ("linear", "log_softmax"):
        return [Evidence(f"the last layer {last.name!r} has activation {name!r}", "logits")]
    return []


def _inner_kind(model):
    """The kind the structure of `model` shows, or `None` when it shows none."""
    kinds = {e.kind for e in model_evidence(model, loss=getattr(model, "loss", None))}
    return kinds.pop() if len(kinds) == 1 else None


def _wrapper_evidence(model):
    """Evidence from a toolkit wrapper's flag; raises when the flag contradicts what it wraps."""
    from kerastoolkit import models as kt_models

    if isinstance(model, kt_models.Distiller):
        student = [Evidence(f"Distiller(student_outputs={model.student_outputs!r})", model.student_outputs)]
        return student + model_evidence(model.student, loss=None)
    if isinstance(model, kt_models.Ensemble):
        wrapped, label = list(model.members), "its members"
    elif isinstance(model, kt_models.TTAPredictor):
        wrapped, label = [model.model], "its model"
    else:
        return None
    name = type(model).__name__
    expected = "logits" if model.from_logits else "probabilities"
    for inner in wrapped:
        kind = _inner_kind(inner)
        if kind is not None and kind != expected:
            fix = not model.from_logits
            raise ValueError(
                f"{name}(from_logits={model.from_logits}) expects {label} to output {expected}, but "
                f"{inner.name!r} outputs {kind} ({'; '.join(e.source for e in model_evidence(inner))}): "
                f"it would {'average logits' if fix else 'apply a second softmax'}. Build the "
                f"{name} with from_logits={fix}, or pass `outputs` to say what it outputs. "
                f"Received: from_logits={model.from_logits}"
            )
    how = "applies the softmax itself" if model.from_logits else "averages probabilities"
    return [Evidence(f"{name}(from_logits={model.from_logits}) {how}", "probabilities")]


_MODEL_LOSS = object()


def model_evidence(model, loss=_MODEL_LOSS):
    """What the structure of `model` says about its outputs: a list of `Evidence`.

    Args:
        model: a Keras model.
        loss: the loss it is (or was) compiled with. Defaults to the
            model's own compiled loss; `None` leaves the loss out.
    """
    if loss is _MODEL_LOSS:
        loss = getattr(model, "loss", None)
    found = _loss_evidence(loss)
    wrapped = _wrapper_evidence(model)
    return found + (wrapped if wrapped is not None else _activation_evidence(model))


def sample_evidence(outputs):
    """What a batch of outputs `(batch, classes)` says, as a list of `Evidence` (maybe empty)."""
    outputs = np.asarray(outputs, dtype="float64")
    if outputs.ndim != 2 or outputs.shape[-1] < 2 or not np.all(np.isfinite(outputs)):
        return []
    low, high = float(outputs.min()), float(outputs.max())
    if low < -_RANGE_TOLERANCE or high > 1 + _RANGE_TOLERANCE:
        return [Evidence(f"outputs on a sample range over [{low:.3g}, {high:.3g}]: not probabilities", "logits")]
    if np.all(np.abs(outputs.sum(axis=-1) - 1.0) < _SUM_TOLERANCE):
        return [Evidence("outputs on a sample are distributions (rows sum to 1)", "probabilities")]
    return []


def check_kind(name, value):
    """Validates an explicit kind argument (`outputs`)."""
    if value is not None and value not in OUTPUT_KINDS:
        raise ValueError(f"Argument `{name}` must be one of {OUTPUT_KINDS} or None. Received: {name}={value!r}")
    return value


def decide(evidence, argument="outputs"):
    """The one kind every piece of `evidence` agrees on.

    Args:
        evidence: a list of `Evidence`.
        argument: the argument that settles it, named in the error.

    Raises:
        OutputKindError: (a `ValueError`) when the evidence disagrees or
            there is none.
    """
    kinds = {e.kind for e in evidence}
    if len(kinds) == 1:
        return kinds.pop()
    settle = f"Pass {argument}='logits' or {argument}='probabilities' to say what the model outputs."
    if not kinds:
        raise OutputKindError(
            "Cannot tell whether the model outputs logits or probabilities: it has no "
            "categorical loss compiled, no softmax or linear last layer, and its outputs on a "
            f"sample are neither clearly logits nor distributions. {settle} Received: {argument}=None"
        )
    listed = "; ".join(f"{e.source} ({e.kind})" for e in evidence)
    raise OutputKindError(
        f"The evidence on whether the model outputs logits or probabilities disagrees: {listed}. "
        f"A loss with the wrong from_logits trains on the wrong objective: check the model. "
        f"{settle} Received: {argument}=None"
    )
