"""Round-trip checks every public object goes through.

- `assert_config_roundtrip`: `get_config` is JSON-safe, `from_config` and
  Keras's registered (de)serialization rebuild an equal object.
- `fresh_process_predict` / `assert_keras_roundtrip`: `model.save("x.keras")`
  then `keras.saving.load_model` in a *fresh Python process* (which imports
  only `kerastoolkit`, like a user's serving script) gives the same outputs.
- `assert_saved_model_roundtrip`: `model.export` then `tf.saved_model.load`;
  the serving signature returns what `model(x)` returns.
"""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np

_LOADER = textwrap.dedent(
    """
    import sys
    import numpy as np
    import keras
    import kerastoolkit  # registers every public object

    pairs = sys.argv[1:]
    for model_path, x_path, out_path in zip(pairs[0::3], pairs[1::3], pairs[2::3]):
        model = keras.saving.load_model(model_path)
        x = np.load(x_path)
        np.save(out_path, keras.ops.convert_to_numpy(model(x, training=False)))
    """
)


def subprocess_env():
    """The environment for child processes: same backend, quiet TensorFlow."""
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["KERAS_BACKEND"] = keras.backend.backend()
    return env


def assert_config_roundtrip(obj):
    """Checks `get_config` → `from_config` and registered serialization.

    Returns the object rebuilt by `keras.saving.deserialize_keras_object`.
    """
    config = obj.get_config()
    json.dumps(config)  # JSON-safe, as a .keras file needs
    clone = type(obj).from_config(config)
    assert clone.get_config() == config, (config, clone.get_config())
    serialized = keras.saving.serialize_keras_object(obj)
    json.dumps(serialized)
    rebuilt = keras.saving.deserialize_keras_object(
        json.loads(json.dumps(serialized))
    )
    assert type(rebuilt) is type(obj)
    assert rebuilt.get_config() == config
    return rebuilt


def fresh_process_predict(model_paths, inputs, tmp_path):
    """Loads each `.keras` file in one fresh process; returns `model(x)` outputs."""
    args = []
    for i, (path, x) in enumerate(zip(model_paths, inputs)):
        x_path = os.path.join(tmp_path, f"fresh_in_{i}.npy")
        np.save(x_path, np.asarray(x))
        args += [str(path), x_path, os.path.join(tmp_path, f"fresh_out_{i}.npy")]
    result = subprocess.run(
        [sys.executable, "-c", _LOADER, *args],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode != 0:
        raise AssertionError(
            "Loading in a fresh process failed:\n" + result.stderr[-4000:]
        )
    return [np.load(a) for a in args[2::3]]


def assert_keras_roundtrip(model, x, tmp_path, atol=1e-6):
    """Saves `model` as `.keras`, reloads it in a fresh process, compares outputs."""
    path = os.path.join(tmp_path, "model.keras")
    model.save(path)
    expected = keras.ops.convert_to_numpy(model(x, training=False))
    (got,) = fresh_process_predict([path], [x], tmp_path)
    np.testing.assert_allclose(got, expected, atol=atol, rtol=0)
    return path


def assert_saved_model_roundtrip(model, x, tmp_path, atol=1e-5, endpoint="serve"):
    """Exports `model`, reloads with `tf.saved_model.load`, compares serving output."""
    import tensorflow as tf

    path = os.path.join(tmp_path, "exported")
    model.export(path, verbose=False)
    loaded = tf.saved_model.load(path)  # keep a reference while serving
    got = getattr(loaded, endpoint)(tf.constant(x)).numpy()
    expected = keras.ops.convert_to_numpy(model(x, training=False))
    np.testing.assert_allclose(got, expected, atol=atol, rtol=0)
    signature = loaded.signatures["serving_default"]
    (sig_out,) = signature(tf.constant(x)).values()
    np.testing.assert_allclose(sig_out.numpy(), expected, atol=atol, rtol=0)
    return path
