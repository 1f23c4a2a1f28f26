"""Presets: recipes as immutable data, turned into the optimizers, callbacks and losses they describe."""

import dataclasses
import importlib.util
import json
import math
import sys

import keras
import numpy as np
import pytest

import kerastoolkit as kt


def _rate(optimizer, step):
    rate = optimizer._learning_rate
    value = rate(step) if callable(rate) else rate
    return float(keras.ops.convert_to_numpy(value))


def _has(module, attribute=None):
    try:
        found = importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False
    if found and attribute:
        return hasattr(importlib.import_module(module), attribute)
    return found


def _documented_presets():
    """The preset names the README's paragraph on `kt.presets.list()` gives."""
    import os
    import re

    readme = os.path.join(os.path.dirname(__file__), "..", "..", "README.md")
    with open(readme, encoding="utf-8") as f:
        text = f.read()
    paragraph = text[text.index("`kt.presets.list()` gives every name"):]
    paragraph = paragraph[: paragraph.index("\n\n")]
    return set(re.findall(r"`([a-z][a-z0-9_]*)`", paragraph))


def test_every_preset_is_data_with_a_source():
    # The names the user is told about, no more and no fewer, sorted once each.
    names = kt.presets.names()
    assert names == sorted(set(names))
    assert set(names) == _documented_presets()
    listed = kt.presets.list()
    assert [entry["name"] for entry in listed] == kt.presets.names()
    for entry in listed:
        assert entry["description"] and entry["source"]
        recipe = kt.presets.get(entry["name"])
        assert recipe.config["optimizer"] in kt.optimizers.OPTIMIZER_DEFAULTS
        assert set(recipe.config) == set(kt.presets.DEFAULT_CONFIG)
        assert f"{entry['name']}\n    {entry['description']}\n    source: {entry['source']}" in kt.presets.format_list()


def test_a_recipe_is_immutable_deeply():
    recipe = kt.presets.get("adam")
    with pytest.raises(TypeError):
        recipe.config["learning_rate"] = 5.0
    with pytest.raises(TypeError):
        recipe.config["plateau"]["patience"] = 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        recipe.name = "other"
    step = kt.presets.get("sgd_momentum_step")
    assert isinstance(step.config["schedule_options"]["milestones"], tuple)
    again = kt.presets.get("adam")
    assert again.config["learning_rate"] is None and again.config["plateau"]["patience"] == 4
    # A modified copy leaves the preset alone (the CLI's way of overriding).
    changed = dataclasses.replace(recipe, config=dict(recipe.config, learning_rate=5.0))
    assert changed.config["learning_rate"] == 5.0 and kt.presets.get("adam").config["learning_rate"] is None


def test_the_module_tables_are_read_only_and_shared_by_no_recipe():
    tables = [kt.presets.PRESETS, kt.presets.DEFAULT_CONFIG, kt.presets.DEFAULT_PLATEAU,
              kt.presets.DEFAULT_EARLY_STOPPING, kt.presets.PRESETS["adam"], kt.presets.PRESETS["adam"]["config"],
              kt.presets.PRESETS["swats"]["config"]["plateau"], kt.presets.DEFAULT_CONFIG["optimizer_options"]]
    for table in tables:
        with pytest.raises(TypeError):
            table["patience"] = 1
    with pytest.raises(AttributeError):
        kt.presets.PRESETS["sgd_momentum_step"]["config"]["schedule_options"]["milestones"].append(0.9)
    for name in ("adam", "swats", "lookahead_adam"):  # the three that use DEFAULT_PLATEAU
        assert kt.presets.get(name).config["plateau"]["patience"] == 4
    # The command line's way of starting from the defaults still works: a mutable copy.
    mine = dict(kt.presets.DEFAULT_PLATEAU)
    mine["patience"] = 2
    assert kt.presets.get("adam", plateau=mine).config["plateau"]["patience"] == 2
    assert kt.presets.DEFAULT_PLATEAU["patience"] == 4 and kt.presets.get("swats").config["plateau"]["patience"] == 4
    assert json.loads(json.dumps(kt.presets.get("adam").to_dict()))["config"]["plateau"] == dict(mine, patience=4)


@pytest.mark.parametrize("field, value, message", [
    ("plateau", {"patienc": 3}, r"Unknown key `patienc` in recipe field `plateau`\. Did you mean 'patience'"),
    ("early_stopping", {"restore_best_weight": True}, r"`restore_best_weight`.*`early_stopping`.*'restore_best_weights'"),
    ("precise_bn", {"num_batch": 3}, r"`num_batch`.*`precise_bn`.*'num_batches'"),
    ("swa", {"start_fraction": 0.5, "frequncy": 2}, r"`frequncy`.*`swa`.*'frequency'"),
    ("optimizer_options", {"beta1": 0.8}, r"`beta1`.*`optimizer_options`.*'beta_1'"),
    ("optimizer_options", {"learning_rate": 0.1}, r"`optimizer_options` cannot hold `learning_rate`"),
    ("schedule_options", {"pct_start": 0.2}, r"`pct_start`.*`schedule_options`.*Valid keys: none"),
    ("label_smoothing_convention", "bogus", r"`label_smoothing_convention` must be one of \('keras', 'lecture'\)"),
    ("plateau", {"patience": -1}, r"Recipe field `plateau` is not valid: .*Received: patience=-1"),
])
def test_every_field_and_nested_key_is_checked_when_built(field, value, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        kt.presets.get("adam", **{field: value})
    with pytest.raises(ValueError, match=message):
        kt.presets.get("karpathy_adam").replace(**{field: value})
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"config": {field: value}}))
    with pytest.raises(ValueError, match=r"mine\.json.*" + message):
        kt.presets.load(str(path))


def test_nested_keys_follow_the_other_fields():
    # The keys a mapping takes depend on the optimizer, schedule and policy it goes with.
    assert kt.presets.get("sgd_momentum_step", optimizer_options={"nesterov": True}).config["optimizer_options"]["nesterov"]
    with pytest.raises(ValueError, match=r"`nesterov`.*`optimizer_options`"):
        kt.presets.get("adam", optimizer_options={"nesterov": True})
    with pytest.raises(ValueError, match=r"`factr`.*`schedule_options`.*'factor'"):
        kt.presets.get("sgd_momentum_step", schedule_options={"factr": 0.2, "milestones": [0.5]})
    with pytest.raises(ValueError, match=r"`pct_strat`.*'pct_start'"):
        kt.presets.get("fast", schedule_options={"pct_strat": 0.3})
    with pytest.raises(ValueError, match=r"`schedule_options` is not valid.*pct_start"):
        kt.presets.get("fast", schedule_options={"pct_start": 2.0})
    if _has("kerastoolkit.data.augmentation"):
        with pytest.raises(ValueError, match=r"`rotaton`.*`augmentation_options`.*'rotation'"):
            kt.presets.get("adam", augmentation="geometric", augmentation_options={"rotaton": 0.1})
        with pytest.raises(ValueError, match=r"`augmentation` is not valid.*'geometric'"):
            kt.presets.get("adam", augmentation="geometrc")
        assert kt.presets.get("adam", augmentation="geometric", augmentation_options={"rotation": 0.1})


def test_overrides_win_and_unknown_fields_are_named():
    recipe = kt.presets.get("sgd_warmup_cosine", learning_rate=1e-3, warmup_epochs=0, schedule=None)
    assert float(recipe.optimizer().learning_rate) == pytest.approx(1e-3)  # no batch scaling either
    assert kt.presets.get("sgd_warmup_cosine").config["learning_rate"] == 0.1
    assert float(kt.presets.get("karpathy_adam", learning_rate=1e-3).optimizer().learning_rate) == pytest.approx(1e-3)
    with pytest.raises(ValueError, match=r"Unknown recipe field `learnin_rate`.*'learning_rate'.*Received: learnin_rate=0.1"):
        kt.presets.get("adam", learnin_rate=0.1)
    with pytest.raises(ValueError, match=r"`warmup_epochs`.*Received: warmup_epochs=-1"):
        kt.presets.get("adam", warmup_epochs=-1)
    with pytest.raises(ValueError, match=r"`dtype_policy`.*Received: dtype_policy='float16'"):
        kt.presets.get("fast", dtype_policy="float16")
    # Wrappers get the rate on the wrapped optimizer.
    lookahead = kt.presets.get("lookahead_adam", learning_rate=2e-3).optimizer()
    assert isinstance(lookahead, kt.optimizers.Lookahead)
    assert float(lookahead.inner_optimizer.learning_rate) == pytest.approx(2e-3)


def test_adam_preset_is_the_lecture_default_with_plateau_then_early_stopping():
    recipe = kt.presets.get("adam")
    optimizer = recipe.optimizer()
    assert isinstance(optimizer, keras.optimizers.Adam)
    assert (float(optimizer.learning_rate), optimizer.beta_1, optimizer.beta_2, optimizer.epsilon) == pytest.approx(
        (1e-3, 0.9, 0.999, 1e-8)
    )
    plateau, stopping, healing = recipe.callbacks()
    assert isinstance(healing, kt.callbacks.SelfHealing)  # on by default, last
    assert isinstance(plateau, kt.callbacks.PlateauDecay) and plateau.patience == 4
    assert isinstance(stopping, keras.callbacks.EarlyStopping) and stopping.restore_best_weights
    assert float(kt.presets.get("karpathy_adam").optimizer().learning_rate) == pytest.approx(3e-4)


def test_sgd_warmup_cosine_follows_goyal_and_cosine_formulas():
    recipe = kt.presets.get("sgd_warmup_cosine")
    steps, epochs, batch = 10, 20, 64
    optimizer = recipe.optimizer(steps_per_epoch=steps, epochs=epochs, batch_size=batch)
    assert optimizer.momentum == pytest.approx(0.9)
    peak = 0.1 * batch / 256  # linear scaling rule
    warmup = 5 * steps
    decay = (epochs - 5) * steps

    def expected(t):  # independent: linear warmup from 0, then cosine to 0
        if t < warmup:
            return peak * t / warmup
        u = min(t - warmup, decay)
        return 0.5 * peak * (1 + math.cos(math.pi * u / decay))

    for t in [0, 1, 17, 49, 50, 51, 120, 199, 200, 260]:
        assert _rate(optimizer, t) == pytest.approx(expected(t), rel=1e-5, abs=1e-9), t
    # The recipe's diagnosis fix: early stopping that restores the best weights.
    stopping, _ = recipe.callbacks()
    assert isinstance(stopping, keras.callbacks.EarlyStopping) and stopping.restore_best_weights


def test_goyal_large_batch_scales_warms_up_and_steps():
    recipe = kt.presets.get("goyal_large_batch")
    steps, epochs, batch = 4, 90, 1024
    optimizer = recipe.optimizer(steps_per_epoch=steps, epochs=epochs, batch_size=batch)
    assert optimizer.momentum == pytest.approx(0.9) and optimizer.weight_decay == pytest.approx(1e-4)
    peak = 0.1 * 1024 / 256

    def expected(t):  # Goyal et al.: 5-epoch ramp from 0, x0.1 at epochs 30, 60, 80
        if t < 5 * steps:
            return peak * t / (5 * steps)
        epoch = t / steps
        return peak * 0.1 ** sum(epoch > e for e in (30, 60, 80))

    for t in [0, 3, 10, 19, 20, 21, 100, 119, 121, 200, 239, 241, 319, 321, 359, 400]:
        assert _rate(optimizer, t) == pytest.approx(expected(t), rel=1e-5, abs=1e-9), t


def test_sgd_momentum_step_is_he_et_al_scaled_to_the_batch():
    recipe = kt.presets.get("sgd_momentum_step")
    optimizer = recipe.optimizer(steps_per_epoch=5, epochs=8, batch_size=32)
    peak = 0.1 * 32 / 128  # 0.1 at batch 128
    for t, epoch in [(0, 0), (19, 3.8), (21, 4.2), (29, 5.8), (31, 6.2), (45, 9)]:
        expected = peak * 0.1 ** sum(epoch > m * 8 for m in (0.5, 0.75))
        assert _rate(optimizer, t) == pytest.approx(expected, rel=1e-5), t


def test_scale_learning_rate_is_the_linear_rule():
    from kerastoolkit.distribute.scaling import scale_learning_rate

    for base, batch, reference in [(0.1, 1024, 256), (0.1, 32, 256), (3e-4, 96, 64)]:
        assert scale_learning_rate(base, batch, reference) == pytest.approx(base * batch / reference)
    with pytest.raises(ValueError, match="Received: global_batch_size=0"):
        scale_learning_rate(0.1, 0)
    with pytest.raises(TypeError, match="Received: global_batch_size=32.0"):
        scale_learning_rate(0.1, 32.0)
    with pytest.raises(ValueError, match="Received: base_learning_rate=-0.1"):
        scale_learning_rate(-0.1, 32)


def test_missing_arguments_are_named():
    recipe = kt.presets.get("sgd_warmup_cosine")
    with pytest.raises(ValueError, match="Received: batch_size=None"):
        recipe.optimizer(steps_per_epoch=10, epochs=5)
    with pytest.raises(ValueError, match="Received: steps_per_epoch=None"):
        recipe.optimizer(epochs=5, batch_size=32)
    with pytest.raises(ValueError, match="Received: epochs=0"):
        recipe.optimizer(steps_per_epoch=10, epochs=0, batch_size=32)
    with pytest.raises(ValueError, match="Received: epochs=None, directory=None"):
        kt.presets.get("snapshot_ensemble").callbacks()


def test_unknown_preset_suggests_the_closest():
    with pytest.raises(ValueError, match=r"Did you mean 'karpathy_adam'.*Received: name='karpaty_adam'"):
        kt.presets.get("karpaty_adam")


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_save_and_load_round_trip(tmp_path, suffix):
    recipe = kt.presets.get("goyal_large_batch", epochs=12)
    path = recipe.save(str(tmp_path / f"mine{suffix}"))
    loaded = kt.presets.load(path)
    assert loaded == recipe
    assert kt.presets.get(path) == recipe  # a path works where a name does
    assert kt.presets.get(path, epochs=3).config["epochs"] == 3


def test_invalid_recipe_files_name_the_file_and_the_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("config:\n  optimizer: adam\n  warmup_epoch: 3\n")
    with pytest.raises(ValueError, match=r"bad.yaml.*`warmup_epoch`.*'warmup_epochs'"):
        kt.presets.load(str(bad))
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"optimizer": "adam", "label_smoothing": 1.5}))
    with pytest.raises(ValueError, match=r"wrong.json.*`label_smoothing`.*Received: label_smoothing=1.5"):
        kt.presets.load(str(wrong))
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(ValueError, match=r"broken.json.*does not parse"):
        kt.presets.load(str(broken))
    with pytest.raises(FileNotFoundError, match="nowhere.yaml"):
        kt.presets.load(str(tmp_path / "nowhere.yaml"))


def test_a_missing_part_is_an_error_not_a_substitute(monkeypatch):
    monkeypatch.setitem(sys.modules, "kerastoolkit.losses", None)  # import fails
    with pytest.raises(ImportError, match="kerastoolkit.losses"):
        kt.presets.get("cosine_warmup_adamw").loss()
    monkeypatch.setitem(sys.modules, "kerastoolkit.data.augmentation", None)
    with pytest.raises(ImportError, match="kerastoolkit.data.augmentation"):
        kt.presets.get("adam", augmentation="light").augmentation()
    # Without smoothing the loss is Keras's own; one-hot labels use Keras's smoothing.
    assert isinstance(kt.presets.get("adam").loss(), keras.losses.SparseCategoricalCrossentropy)
    one_hot = kt.presets.get("cosine_warmup_adamw").loss(sparse=False)
    y = np.eye(4, dtype="float32")[[0, 2]]
    p = np.full((2, 4), 0.25, dtype="float32")
    p[:, 1] = 0.4
    p[:, 3] = 0.1
    target = y * 0.9 + 0.1 / 4  # Keras's convention: (1 - eps) y + eps / C
    expected = np.mean(-np.sum(target * np.log(p), axis=1))
    assert float(one_hot(y, p)) == pytest.approx(expected, rel=1e-5)


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    data = load_digits()
    x = (data.data / 16.0).astype("float32")
    return x[:320], data.target[:320], x[320:400], data.target[320:400]


def _tiny_model(input_shape=(64,)):
    return keras.Sequential(
        [keras.Input(input_shape), keras.layers.Flatten(), keras.layers.Dense(32, activation="relu"),
         keras.layers.Dense(10, activation="softmax")]
    )


@pytest.mark.parametrize("name", kt.presets.names())
def test_each_preset_trains_one_epoch_on_digits(name, digits, tmp_path):
    x, y, x_val, y_val = digits
    recipe = kt.presets.get(name, batch_size=32)
    if recipe.config["augmentation"]:  # an image policy: the digits as 8x8 images
        x, x_val = x.reshape(-1, 8, 8, 1), x_val.reshape(-1, 8, 8, 1)
    if recipe.config["standardization"]:
        assert isinstance(recipe.standardization(x), kt.layers.Standardize)
    keras.utils.set_random_seed(0)
    model = _tiny_model(x.shape[1:])
    before = float(keras.losses.sparse_categorical_crossentropy(y, model.predict(x, verbose=0)).numpy().mean())
    history = recipe.fit(model, (x, y), (x_val, y_val), epochs=1, directory=str(tmp_path / "snaps"), verbose=0, seed=0)
    assert set(history.history) >= {"loss", "val_loss", "accuracy"}
    assert np.isfinite(history.history["loss"][0])
    after = float(keras.losses.sparse_categorical_crossentropy(y, model.predict(x, verbose=0)).numpy().mean())
    assert after < before, (before, after)  # one epoch of 10 steps learned something


def test_fit_derives_steps_per_epoch_from_the_data(digits):
    x, y, _, _ = digits
    keras.utils.set_random_seed(0)
    model = _tiny_model()
    recipe = kt.presets.get("sgd_warmup_cosine", batch_size=64, early_stopping=None)
    recipe.fit(model, (x, y), epochs=3, verbose=0)
    steps = -(-len(x) // 64)  # 5 steps per epoch
    peak = 0.1 * 64 / 256
    warmup = 2 * steps  # a 5-epoch warmup is cut to epochs - 1
    assert model.optimizer.iterations.numpy() == 3 * steps
    assert _rate(model.optimizer, 3) == pytest.approx(peak * 3 / warmup, rel=1e-5)
    assert _rate(model.optimizer, warmup + 2) == pytest.approx(0.5 * peak * (1 + math.cos(math.pi * 2 / steps)), rel=1e-5)


def test_compile_adds_the_l2_penalty(digits):
    x, y, _, _ = digits
    model = _tiny_model()
    kt.presets.get("adam", l2=1e-3).compile(model)
    kernels = [layer.kernel.numpy() for layer in model.layers if hasattr(layer, "kernel")]
    expected = sum(1e-3 * np.sum(k**2) for k in kernels)
    assert float(sum(keras.ops.convert_to_numpy(l) for l in model.losses)) == pytest.approx(expected, rel=1e-5)


def test_swa_and_precise_bn_fields_build_their_callbacks():
    x = np.zeros((8, 64), "float32")
    recipe = kt.presets.get("adam", swa={"start_fraction": 0.75, "frequency": 2}, precise_bn={"num_batches": 3})
    swa, precise, plateau, stopping, _ = recipe.callbacks(epochs=8, data=x)
    assert isinstance(swa, kt.callbacks.SWA) and swa.start_epoch == 6 and swa.frequency == 2
    assert isinstance(precise, kt.callbacks.PreciseBatchNorm) and precise.num_batches == 3
    assert isinstance(plateau, kt.callbacks.PlateauDecay) and isinstance(stopping, keras.callbacks.EarlyStopping)
    with pytest.raises(ValueError, match="Received: data=None"):
        recipe.callbacks(epochs=8)
    with pytest.raises(ValueError, match=r"`swa.start_fraction`.*Received: swa.start_fraction=1.5"):
        kt.presets.get("adam", swa={"start_fraction": 1.5})


def _logits_model(last=None):
    layers = [keras.Input((64,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(10)]
    return keras.Sequential(layers + ([last] if last is not None else []))


def test_compile_takes_from_logits_and_refuses_the_wrong_one(digits):
    x, y, _, _ = digits
    keras.utils.set_random_seed(0)
    recipe = kt.presets.get("cosine_warmup_adamw")  # label smoothing 0.1: the toolkit's own loss
    model = _logits_model()
    with pytest.raises(ValueError, match=r"from_logits=False, but the model outputs logits.*"
                                         r"activation 'linear'.*Pass from_logits=True\. Received: from_logits=False"):
        recipe.compile(model, steps_per_epoch=10, epochs=2)
    recipe.compile(model, steps_per_epoch=10, epochs=2, from_logits=True)
    # The compiled loss is the smoothed cross-entropy of the softmax of the logits (NumPy).
    z = keras.ops.convert_to_numpy(model(x[:16])).astype("float64")
    log_p = z - z.max(1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(1, keepdims=True))
    target = np.full((16, 10), 0.1 / 10) + 0.9 * np.eye(10)[y[:16]]  # Keras's convention: (1-ε)y + ε/C
    expected = np.mean(-(target * log_p).sum(1))
    assert float(model.loss(y[:16], model(x[:16]))) == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match=r"from_logits=True, but the model outputs probabilities.*softmax"):
        recipe.compile(_tiny_model(), steps_per_epoch=10, epochs=2, from_logits=True)
    with pytest.raises(TypeError, match="Received: from_logits='yes'"):
        recipe.compile(_tiny_model(), from_logits="yes")


def test_fit_takes_from_logits_and_checks_the_outputs(digits):
    x, y, _, _ = digits
    keras.utils.set_random_seed(0)
    recipe = kt.presets.get("karpathy_adam", early_stopping=None)
    with pytest.raises(ValueError, match=r"Pass from_logits=True"):
        recipe.fit(_logits_model(), (x, y), epochs=1, verbose=0)
    # A last layer that says nothing (a rescaling after the logits): the outputs on the data do.
    hidden = _logits_model(last=keras.layers.Rescaling(1.0))
    with pytest.raises(ValueError, match=r"outputs on a sample range over.*not probabilities.*Pass from_logits=True"):
        recipe.fit(hidden, (x, y), epochs=1, verbose=0)
    model = _logits_model()
    history = recipe.fit(model, (x, y), epochs=2, verbose=0, from_logits=True, seed=0)
    assert model.loss.get_config()["from_logits"] is True
    assert history.history["loss"][-1] < history.history["loss"][0]
