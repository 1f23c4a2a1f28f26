"""SavedModel export for serving, in the versioned layout TensorFlow Serving reads.

The `serving_default` signature has the same names for every model kind (a
single model, a `kt.models.Ensemble`, a TTA wrapper):

| name | dtype | shape | meaning |
| --- | --- | --- | --- |
| input `inputs` | `uint8` with `preprocessing`, else `float32` (or `input_dtype`) | `(batch,) + model input shape` | raw examples, as they come |
| output `probabilities` | `float32` | `(batch, num_classes)` | class probabilities |
| output `top_k_indices` | `int32` | `(batch, k)` | the `k` most likely classes, best first |
| output `top_k_scores` | `float32` | `(batch, k)` | their probabilities |
| output `top_k_class_names` | `string` | `(batch, k)` | their names (only with `class_names`) |

Beside the graph: `assets/kerastoolkit_metadata.json` (recipe, dataset,
metrics, class names, the input and output specification, the kerastoolkit,
Keras and TensorFlow versions) and `assets.extra/tf_serving_warmup_requests`
(TensorFlow Serving's warmup file: `PredictionLog` records).
"""

import json
import os
import platform
import re
import shutil
import tempfile
import zipfile

import keras
import numpy as np

from kerastoolkit.distribute.cluster import chief_path
from kerastoolkit.presets import _output_kind as output_kind

_VERSION = re.compile(r"^[0-9]+$")

INPUT_NAME = "inputs"
OUTPUT_NAMES = ("probabilities", "top_k_indices", "top_k_scores", "top_k_class_names")
METADATA_FILE = "kerastoolkit_metadata.json"
WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
SIGNATURE = "serving_default"


def versions(root):
    """The integer versions already exported under `root`, sorted."""
    if not os.path.isdir(root):
        return []
    return sorted(int(n) for n in os.listdir(root) if _VERSION.match(n))


def next_version(root):
    """The next free version number under `root`: 1, 2, ..."""
    found = versions(root)
    return found[-1] + 1 if found else 1


def _layers(preprocessing):
    if preprocessing is None:
        return []
    items = list(preprocessing) if isinstance(preprocessing, (list, tuple)) else [preprocessing]
    for i, item in enumerate(items):
        if not isinstance(item, keras.layers.Layer):
            raise TypeError(
                "`preprocessing` must be a Keras layer (e.g. `keras.layers.Rescaling(1 / 255)`, an "
                "adapted `kt.layers.Standardize`) or a list of layers. "
                f"Received: preprocessing[{i}]={item!r}"
            )
    return items


def _tta_target(model, tta):
    """What is served before any wrapper the export builds: `model`, or the TTA predictor given."""
    if tta is None:
        return model
    from kerastoolkit.models import TTAPredictor

    if isinstance(tta, TTAPredictor):
        if tta.model is not model:
            raise ValueError(
                "`tta` must be a TTAPredictor around `model` itself (or export the predictor as "
                f"`model`): it wraps {tta.model.name!r}, not {model.name!r}. Received: tta={tta!r}"
            )
        return tta
    if not isinstance(tta, (list, tuple)) or not tta:
        raise ValueError(
            "`tta` must be a non-empty list of TTAPredictor views or a TTAPredictor. "
            f"Received: tta={tta!r}"
        )
    return model


def _tta_info(predictor):
    """The metadata of a served TTAPredictor: its views and how they are averaged."""
    from kerastoolkit.models import TTAPredictor

    if not isinstance(predictor, TTAPredictor):
        return None
    return {
        "views": [v if isinstance(v, str) else getattr(v, "__name__", type(v).__name__) for v in predictor.views],
        "num_views": predictor.num_views,
        "mean": predictor.mean,
        "beta": predictor.beta,
        "from_logits": predictor.from_logits,
        "input_shape": list(predictor.tta_input_shape),
        "model_input_shape": list(_input_shape(predictor.model)),
    }


def _versions_info():
    import tensorflow as tf

    import kerastoolkit

    return {
        "kerastoolkit": kerastoolkit.__version__,
        "keras": keras.__version__,
        "tensorflow": tf.__version__,
        "python": platform.python_version(),
    }


def _json_safe(value, where):
    try:
        return json.loads(json.dumps(value))
    except TypeError as error:
        raise TypeError(f"`{where}` must be JSON-safe ({error}). Received: {where}={value!r}") from None


class _Served:
    """The serving graph: shape check, cast, preprocessing, model, top-k."""

    def __init__(self, model, layers, class_names, top_k, spec, softmax=False):
        self.model = model
        self.layers = layers
        self.class_names = class_names
        self.top_k = top_k
        self.spec = spec
        self.softmax = softmax

    def model_outputs(self, inputs):
        """The model's own outputs (float32) for raw `inputs`."""
        import tensorflow as tf

        # A clear error in the graph too (TensorFlow Serving feeds tensors
        # without the Python signature's check): it names the expected shape.
        x = tf.ensure_shape(inputs, self.spec.shape, name="check_inputs_shape")
        x = tf.cast(x, "float32")
        for layer in self.layers:
            x = layer(x, training=False)
        return tf.cast(self.model(x, training=False), "float32")

    def __call__(self, inputs):
        import tensorflow as tf

        probabilities = self.model_outputs(inputs)
        if self.softmax:  # a logits model: what is served is its probabilities
            probabilities = tf.nn.softmax(probabilities, axis=-1)
        scores, indices = tf.math.top_k(probabilities, k=self.top_k)
        outputs = {
            "probabilities": probabilities,
            "top_k_indices": tf.cast(indices, "int32"),
            "top_k_scores": scores,
        }
        if self.class_names is not None:
            outputs["top_k_class_names"] = tf.gather(tf.constant(self.class_names), indices)
        return outputs


def _sample(spec, sample, rng_seed=0):
    shape = [2 if d is None else d for d in spec.shape]
    if sample is not None:
        sample = np.asarray(sample)
        if sample.shape[1:] != tuple(shape[1:]):
            raise ValueError(
                f"`sample` must have shape (batch,) + {tuple(shape[1:])}. Received: sample.shape={sample.shape}"
            )
        return sample.astype(spec.dtype.as_numpy_dtype)
    rng = np.random.default_rng(rng_seed)
    if spec.dtype.is_integer:
        high = min(int(spec.dtype.max), 255) + 1
        return rng.integers(0, high, size=shape).astype(spec.dtype.as_numpy_dtype)
    return rng.uniform(0.0, 1.0, size=shape).astype(spec.dtype.as_numpy_dtype)


def _write_warmup(path, sample, model_name, count):
    """Writes TensorFlow Serving's warmup file: `count` PredictionLog records."""
    import tensorflow as tf
    from tensorflow_serving.apis import model_pb2
    from tensorflow_serving.apis import predict_pb2
    from tensorflow_serving.apis import prediction_log_pb2

    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as writer:
        for i in range(count):
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(name=model_name, signature_name=SIGNATURE)
            )
            request.inputs[INPUT_NAME].CopyFrom(tf.make_tensor_proto(sample[i % len(sample)][None]))
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())


def saved_model(
    model,
    directory,
    version=None,
    preprocessing=None,
    tta=None,
    class_names=None,
    metadata=None,
    input_dtype=None,
    top_k=5,
    sample=None,
    warmup_requests=3,
    verbose=False,
    outputs=None,
):
    """Exports `model` for serving as a SavedModel in `directory/<version>/`.

    The layout is the one TensorFlow Serving watches: every export is a new
    integer version folder, written to a hidden folder first and renamed
    into place (a server never sees a half-written version). The graph
    takes raw inputs: they are cast to float32, run through
    `preprocessing` (e.g. `Rescaling(1/255)` and the training-set
    statistics of an adapted `kt.layers.Standardize`) and the model (in
    inference mode), optionally inside a TTA wrapper, and the signature
    `serving_default` returns `probabilities`, `top_k_indices`,
    `top_k_scores` and, with `class_names`, `top_k_class_names` (see the
    module docstring). Before the version is published the SavedModel is
    reloaded and its outputs on a sample are compared with the Keras
    model's: a difference above 1e-5 raises.

    A model that outputs logits (the usual `Dense(classes)` compiled with
    `from_logits=True`) is served with the softmax in the graph,

    ```
    probabilities = softmax(model(x)),   softmax(z)_c = exp(z_c) / Σ_j exp(z_j)
    ```

    and the metadata says so (`"model_outputs"`). What the model outputs
    is `outputs` when given, else what all the evidence agrees on: the
    compiled loss's `from_logits`, the last layer's activation, a
    toolkit wrapper's `from_logits`, and the outputs on `sample` (rows that
    are not distributions are logits). Evidence that disagrees, or none,
    is an error that asks for `outputs`.

    Args:
        model: a built Keras classifier (a single model, a
            `kt.models.Ensemble`, a `kt.models.TTAPredictor`, a
            `kt.models.Distiller`'s student) that outputs class
            probabilities or logits.
        directory: the model's folder, e.g. `"savedmodels/digits"`.
        version: positive integer version. Defaults to `None`: the next
            free number (1, 2, ...).
        preprocessing: a Keras layer or a list of layers applied to the raw
            inputs inside the graph. Defaults to `None`.
        tta: a list of `kt.models.TTAPredictor` views to average over, a
            `TTAPredictor` around `model` (served with its own input shape,
            e.g. the larger images of its crops), or `None`. Defaults to
            `None`.
        class_names: one string per class, or `None`. Defaults to `None`.
        metadata: JSON-safe dict saved in the metadata asset (e.g.
            `{"recipe": recipe.to_dict(), "dataset": "digits", "metrics":
            {"test_accuracy": 0.97}}`); a `Recipe` under `"recipe"` is
            converted. Defaults to `None`.
        input_dtype: dtype of `inputs`. Defaults to `None`: `"uint8"` with
            `preprocessing` (raw images), the model's input dtype otherwise.
        top_k: number of top classes returned (capped at the number of
            classes). Defaults to `5`.
        sample: raw inputs for the export check, the logits evidence and
            the warmup requests. Defaults to `None`: random values of the
            input dtype.
        warmup_requests: number of warmup `PredictionLog` records (0: no
            file). Defaults to `3`.
        verbose: print the signature. Defaults to `False`.
        outputs: what `model` outputs, `"logits"` or `"probabilities"`;
            overrides the evidence. Defaults to `None`: decided from the
            evidence.

    Returns:
        The path of the written version folder.

    Raises:
        TypeError: if `model` is not a `keras.Model`, or for a bad
            `preprocessing`, `class_names` or `metadata`.
        ValueError: for a bad `version` (or one that exists), `top_k`,
            `outputs`, `class_names` of the wrong length, a bad `sample`, a
            `tta` predictor around another model, or when it cannot tell
            whether the model outputs logits or probabilities.
        RuntimeError: when the reloaded SavedModel disagrees with the model.

    Example:

    ```python
    path = kt.export.saved_model(
        model, "savedmodels/digits", preprocessing=keras.layers.Rescaling(1 / 16),
        class_names=[str(d) for d in range(10)],
    )
    served = kt.export.load(path)
    outputs = served.predict(raw_images)  # {"probabilities": ..., "top_k_indices": ...}
    ```
    """
    return _export(
        model, directory, version=version, preprocessing=preprocessing, tta=tta, class_names=class_names,
        metadata=metadata, input_dtype=input_dtype, top_k=top_k, sample=sample,
        warmup_requests=warmup_requests, verbose=verbose, outputs=outputs, loss=getattr(model, "loss", None),
    )


def _check_arguments(model, version, top_k, warmup_requests, outputs):
    if not isinstance(model, keras.Model):
        raise TypeError(f"`model` must be a keras.Model. Received: model={model!r}")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version <= 0):
        raise ValueError(f"`version` must be a positive integer. Received: version={version!r}")
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"`top_k` must be a positive integer. Received: top_k={top_k!r}")
    if isinstance(warmup_requests, bool) or not isinstance(warmup_requests, int) or warmup_requests < 0:
        raise ValueError(f"`warmup_requests` must be an integer >= 0. Received: warmup_requests={warmup_requests!r}")
    output_kind.check_kind("outputs", outputs)


def _check_class_names(class_names, num_classes):
    if class_names is None:
        return None
    if not isinstance(class_names, (list, tuple)) or not all(isinstance(c, str) for c in class_names):
        raise TypeError(f"`class_names` must be a list of strings. Received: class_names={class_names!r}")
    if len(class_names) != num_classes:
        raise ValueError(
            f"`class_names` must have one name per class ({num_classes}). "
            f"Received: class_names={list(class_names)!r}"
        )
    return list(class_names)


def _decide_outputs(target, outputs, loss, model_outputs):
    """`(kind, model_outputs metadata)` of what `target` outputs on the sample `model_outputs`."""
    if outputs is not None:
        return outputs, {"kind": outputs, "decided_by": ["the `outputs` argument"]}
    evidence = output_kind.model_evidence(target, loss=loss) + output_kind.sample_evidence(model_outputs)
    kind = output_kind.decide(evidence, argument="outputs")
    return kind, {"kind": kind, "decided_by": [e.source for e in evidence]}


def _served_model(model, target, tta, kind, info):
    """The Keras model inside the graph and whether the graph applies a softmax after it."""
    if isinstance(tta, (list, tuple)):
        from kerastoolkit.models import TTAPredictor

        # The views' distributions are averaged, so a logits model's softmax
        # is taken per view, inside the predictor.
        predictor = TTAPredictor(model, views=list(tta), from_logits=kind == "logits")
        info["softmax"] = "per view, before the TTA average" if kind == "logits" else None
        return predictor, False
    info["softmax"] = "on the model's outputs, in the serving graph" if kind == "logits" else None
    return target, kind == "logits"


def _export(model, directory, version, preprocessing, tta, class_names, metadata, input_dtype, top_k, sample,
            warmup_requests, verbose, outputs, loss):
    import tensorflow as tf

    _check_arguments(model, version, top_k, warmup_requests, outputs)
    directory = chief_path(directory)  # under a multi-worker strategy, only the chief's export stays
    if version is not None and os.path.exists(os.path.join(directory, str(version))):
        raise ValueError(f"Version {version} already exists in {directory}. Received: version={version}")
    layers = _layers(preprocessing)
    target = _tta_target(model, tta)
    input_shape = _input_shape(target)  # a TTA predictor's own: the larger images of its crops
    metadata = dict(metadata or {})
    if hasattr(metadata.get("recipe"), "to_dict"):
        metadata["recipe"] = metadata["recipe"].to_dict()
    metadata = _json_safe(metadata, "metadata")
    if input_dtype is None:
        input_dtype = "uint8" if layers else _input_dtype(model)
    spec = tf.TensorSpec((None,) + tuple(input_shape), tf.as_dtype(input_dtype), name=INPUT_NAME)
    raw = _sample(spec, sample)
    model_outputs = _Served(target, layers, None, 1, spec).model_outputs(tf.constant(raw)).numpy()  # builds the layers
    num_classes = int(model_outputs.shape[-1])
    kind, kind_info = _decide_outputs(target, outputs, loss if target is model else getattr(target, "loss", None),
                                 model_outputs)
    if kind == "logits" and num_classes < 2:
        raise ValueError(
            "A model with a single logit is a binary classifier whose probability is a sigmoid, "
            "not a softmax over one class: end it in a sigmoid and export that. "
            f"Received: outputs={outputs!r} with {num_classes} output"
        )
    class_names = _check_class_names(class_names, num_classes)
    served_model, softmax = _served_model(model, target, tta, kind, kind_info)
    k = min(top_k, num_classes)
    served = _Served(served_model, layers, class_names, k, spec, softmax=softmax)
    expected = {name: np.asarray(value) for name, value in served(tf.constant(raw)).items()}

    archive = keras.export.ExportArchive()
    archive.track(served_model)
    for layer in layers:
        archive.track(layer)
    archive.add_endpoint(SIGNATURE, tf.function(served.__call__), input_signature=[spec])
    info = dict(
        metadata,
        class_names=class_names,
        input={"name": INPUT_NAME, "dtype": spec.dtype.name, "shape": [None] + list(input_shape),
               "preprocessing": [keras.saving.serialize_keras_object(layer) for layer in layers]},
        outputs={"probabilities": ["float32", [None, num_classes]],
                 "top_k_indices": ["int32", [None, k]], "top_k_scores": ["float32", [None, k]],
                 **({"top_k_class_names": ["string", [None, k]]} if class_names else {})},
        model_outputs=kind_info,
        signature=SIGNATURE,
        tta=_tta_info(served_model),
        versions=_versions_info(),
    )
    return _publish(archive, directory, version, info, raw, expected, warmup_requests, verbose)


def _publish(archive, directory, version, info, raw, expected, warmup_requests, verbose):
    """Writes, checks and renames the export into `directory/<version>/`."""
    os.makedirs(directory, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".export-", dir=directory)
    try:
        path = os.path.join(staging, "model")
        archive.write_out(path, verbose=verbose)
        os.makedirs(os.path.join(path, "assets"), exist_ok=True)
        with open(os.path.join(path, "assets", METADATA_FILE), "w") as f:
            json.dump(_json_safe(info, "metadata"), f, indent=2)
        if warmup_requests:
            _write_warmup(os.path.join(path, WARMUP_FILE), raw, os.path.basename(os.path.normpath(directory)), warmup_requests)
        _check_reload(path, raw, expected)
        while True:
            number = next_version(directory) if version is None else version
            target = os.path.join(directory, str(number))
            if os.path.exists(target):
                if version is not None:
                    raise ValueError(
                        f"Version {version} already exists in {directory}. Received: version={version}"
                    )
                continue
            try:
                os.rename(path, target)
                return target
            except OSError:
                if version is not None or not os.path.exists(target):
                    raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _inner(model):
    """The model inside a wrapper (an Ensemble's first member, a TTA wrapper's model, a Distiller's student)."""
    members = getattr(model, "members", None)
    if members:
        return members[0]
    for attribute in ("model", "student", "inner_model", "base_model"):
        inner = getattr(model, attribute, None)
        if isinstance(inner, keras.Model) and inner is not model:
            return inner
    return None


def _input_shape(model):
    tta_shape = getattr(model, "tta_input_shape", None)  # a TTA wrapper takes the larger images of its crops
    if tta_shape is not None:
        return tuple(tta_shape)
    inputs = getattr(model, "inputs", None)
    if inputs:
        shape = tuple(inputs[0].shape[1:])
    elif _inner(model) is not None:
        return _input_shape(_inner(model))
    else:
        raise ValueError(
            "`model` must have a known input (a functional or Sequential model with an Input, "
            f"or a wrapper of one). Received: model={model!r}"
        )
    if any(d is None for d in shape):
        raise ValueError(
            f"`model` must have a fully known input shape to export. Received: input shape {(None,) + shape}"
        )
    return shape


def _input_dtype(model):
    inputs = getattr(model, "inputs", None)
    if inputs:
        return keras.backend.standardize_dtype(inputs[0].dtype)
    inner = _inner(model)
    return _input_dtype(inner) if inner is not None else "float32"


def _check_reload(path, raw, expected, atol=1e-5):
    import tensorflow as tf

    loaded = tf.saved_model.load(path)
    outputs = loaded.signatures[SIGNATURE](**{INPUT_NAME: tf.constant(raw)})
    for name, want in expected.items():
        got = outputs[name].numpy()
        if want.dtype.kind in "fc":
            difference = float(np.max(np.abs(got - want))) if want.size else 0.0
            bad = not difference < atol
        else:
            difference = None
            bad = not np.array_equal(got, want)
        if bad:
            raise RuntimeError(
                f"Export check failed: the reloaded SavedModel's `{name}` differs from the Keras "
                f"model's on a sample (max abs difference {difference}, tolerance {atol}). "
                "Nothing was published."
            )


class ServedModel:
    """A loaded SavedModel that stays referenced while its functions run.

    `tf.saved_model.load(path).serve(x)` in one expression fails in TF 2.21
    ("Called a function referencing variables which have been deleted"):
    this object keeps the loaded model alive.

    Calling it returns the class probabilities (a NumPy array); `predict`
    returns every output of the signature; `metadata` is the metadata asset.

    Args:
        path: a SavedModel folder (one version folder).
        endpoint: the signature or function to call. Defaults to
            `"serving_default"`, or `"serve"` for exports written with
            `model.export`.
    """

    def __init__(self, path, endpoint=None):
        import tensorflow as tf

        if not os.path.exists(os.path.join(path, "saved_model.pb")):
            raise FileNotFoundError(f"No saved_model.pb in {path}. Received: path={path!r}")
        self.path = path
        self.loaded = tf.saved_model.load(path)
        if endpoint is None:
            endpoint = SIGNATURE if SIGNATURE in self.loaded.signatures else "serve"
        if endpoint in self.loaded.signatures:
            self.endpoint = self.loaded.signatures[endpoint]
            self._signature = True
        elif hasattr(self.loaded, endpoint):
            self.endpoint = getattr(self.loaded, endpoint)
            self._signature = False
        else:
            raise ValueError(
                f"The SavedModel at {path} has no endpoint {endpoint!r}. "
                f"Signatures: {list(self.loaded.signatures)}. Received: endpoint={endpoint!r}"
            )
        metadata_path = os.path.join(path, "assets", METADATA_FILE)
        self.metadata = None
        if os.path.exists(metadata_path):
            with open(metadata_path) as f:
                self.metadata = json.load(f)

    @property
    def input_spec(self):
        """The `tf.TensorSpec` of the input (`None` for a plain function endpoint)."""
        if not self._signature:
            return None
        return self.endpoint.structured_input_signature[1][INPUT_NAME]

    def predict(self, x):
        """Runs the endpoint on `x`; returns a dict of NumPy arrays (or an array)."""
        import tensorflow as tf

        if not self._signature:
            return self.endpoint(tf.convert_to_tensor(x)).numpy()
        spec = self.input_spec
        x = np.asarray(x)
        if len(x.shape) != len(spec.shape) or not spec.shape.is_compatible_with(x.shape):
            raise ValueError(
                f"`x` must have shape {tuple(spec.shape.as_list())} (batch first) for input "
                f"`{INPUT_NAME}` of {self.path}. Received: x.shape={x.shape}"
            )
        outputs = self.endpoint(**{INPUT_NAME: tf.constant(x.astype(spec.dtype.as_numpy_dtype))})
        return {name: value.numpy() for name, value in outputs.items()}

    def __call__(self, x):
        """The class probabilities of `x`, a NumPy array."""
        outputs = self.predict(x)
        return outputs["probabilities"] if isinstance(outputs, dict) else outputs


def load(path, endpoint=None):
    """Loads an exported version folder for inference; see `ServedModel`.

    Example:
    >>> served = kt.export.load("savedmodels/digits/1")
    >>> served.predict(raw_images)["top_k_indices"][:, 0]  # the predicted classes
    """
    return ServedModel(path, endpoint=endpoint)


def _compiled_loss(model_path):
    """The loss a `.keras` file was compiled with (its `compile_config`), as saved, or `None`.

    `load_model(..., compile=False)` drops it, but it is evidence of whether
    the model outputs logits (`from_logits`).
    """
    try:
        with zipfile.ZipFile(model_path) as archive:
            config = json.loads(archive.read("config.json"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None
    compile_config = config.get("compile_config") if isinstance(config, dict) else None
    return compile_config.get("loss") if isinstance(compile_config, dict) else None


def export_keras_file(model_path, directory, version=None, preprocessing=None, tta=None, class_names=None,
                      metadata=None, outputs=None, **options):
    """Exports a saved `.keras` model with `saved_model` (the `kerastoolkit export` command).

    The loss the file was compiled with (its `from_logits`) is evidence of
    whether the model outputs logits, as for a compiled model.

    Args:
        model_path: a `.keras` file (custom kerastoolkit objects load after
            `import kerastoolkit`).
        directory: the export root; the model goes to `directory/<version>/`.
        version, preprocessing, tta, class_names, metadata, outputs: as
            `saved_model`.
        **options: the other arguments of `saved_model` (`input_dtype`,
            `top_k`, `sample`, `warmup_requests`, `verbose`).

    Returns:
        The path of the written version folder.

    Raises:
        FileNotFoundError: when `model_path` does not exist.
        TypeError: for an unknown option.
    """
    import kerastoolkit  # noqa: F401  (registers the custom objects)

    unknown = sorted(set(options) - {"input_dtype", "top_k", "sample", "warmup_requests", "verbose"})
    if unknown:
        raise TypeError(f"Unknown argument `{unknown[0]}` of export_keras_file. Received: {unknown[0]}={options[unknown[0]]!r}")
    if not os.path.isfile(model_path):
        raise FileNotFoundError(f"No model file {model_path}. Received: model_path={model_path!r}")
    model = keras.saving.load_model(model_path, compile=False)
    metadata = dict(metadata or {})
    metadata.setdefault("source_model", os.path.abspath(model_path))
    defaults = {"input_dtype": None, "top_k": 5, "sample": None, "warmup_requests": 3, "verbose": False}
    return _export(
        model, directory, version=version, preprocessing=preprocessing, tta=tta, class_names=class_names,
        metadata=metadata, outputs=outputs, loss=_compiled_loss(model_path), **dict(defaults, **options),
    )
