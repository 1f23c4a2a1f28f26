"""Synthetic curves: each pattern, the edge cases, the report API."""

import json

import numpy as np
import pytest

from kerastoolkit.diagnostics import CODES
from kerastoolkit.diagnostics import Finding
from kerastoolkit.diagnostics import Report
from kerastoolkit.diagnostics import batch_losses
from kerastoolkit.diagnostics import diagnose

RNG = np.random.default_rng(0)


def decay(n, start=2.3, end=0.3, rate=4.0, noise=0.0):
    t = np.linspace(0, 1, n)
    c = end + (start - end) * np.exp(-rate * t)
    return c * (1 + noise * RNG.standard_normal(n))


def test_batch_losses_inverts_keras_running_mean():
    own = RNG.uniform(0.1, 3.0, size=37)
    running = np.cumsum(own) / np.arange(1, 38)  # what Keras passes in logs
    np.testing.assert_allclose(batch_losses(running), own, rtol=1e-10)


def test_healthy_curve_has_no_findings_and_says_so():
    loss = decay(30, rate=6)
    val = decay(30, start=2.2, end=0.4, rate=6)
    report = diagnose({"loss": loss, "val_loss": val})
    assert report.findings == [] and report.healthy
    assert "healthy, no findings" in str(report)


def test_constant_loss_is_not_training():
    report = diagnose({"loss": [2.302585] * 10}, steps=np.full(500, 2.302585))
    assert report.codes == ["not_training"]
    assert report.findings[0].evidence["relative_drop"] == pytest.approx(0.0)


def test_single_epoch_is_too_short_and_says_why():
    report = diagnose({"loss": [1.2], "val_loss": [1.3]})
    assert report.codes == []
    assert any("too short" in n for n in report.notes)


def test_missing_validation_data_skips_overfitting_with_note():
    report = diagnose({"loss": decay(20, rate=8)})
    assert "overfitting_possible" not in report and "overfitting_definite" not in report
    assert any("no validation loss" in n for n in report.notes)


def test_nan_at_step_zero():
    steps = np.r_[np.nan, decay(99)]
    report = diagnose(steps=steps)
    assert report.codes == ["nan"]
    ev = report.findings[0].evidence
    assert ev["step"] == 0 and ev["last_finite_loss"] is None


def test_nan_after_some_steps_names_first_bad_step():
    steps = decay(300)
    steps[173:] = np.inf
    steps[180:] = np.nan
    report = diagnose(steps=steps)
    assert report.codes == ["nan"]
    assert report.findings[0].evidence["step"] == int(np.flatnonzero(~np.isfinite(steps))[0])


def test_very_long_run_healthy():
    steps = decay(200_000, rate=6, noise=0.05)
    report = diagnose(steps=steps, steps_per_epoch=2000)
    assert report.codes == []


def test_diverging_rising_loss():
    loss = np.r_[decay(5, start=2.3, end=1.5), np.linspace(1.6, 6.0, 10)]
    report = diagnose({"loss": loss})
    assert report.codes == ["diverging"]
    assert report.findings[0].evidence["minimum_at"] == int(np.argmin(loss))


def test_slow_start_plateau_then_learning():
    n = 400
    t = np.arange(n)
    steps = 0.3 + 2.0 / (1 + np.exp((t - 160) / 12.0))  # plateau, then a drop
    report = diagnose(steps=steps)
    assert report.codes == ["slow_start"]
    # independent: where the loss first falls 10% of its total drop
    c0 = np.mean(steps[:10])
    first_drop = np.flatnonzero(steps <= c0 - 0.1 * (c0 - steps.min()))[0]
    assert abs(report.findings[0].evidence["plateau_until"] - first_drop) <= n // 40


def test_overfitting_definite():
    loss = decay(20, rate=5)
    val = np.r_[decay(8, start=2.2, end=0.7, rate=3), np.linspace(0.72, 1.3, 12)]
    report = diagnose({"loss": loss, "val_loss": val})
    assert report.codes == ["overfitting_definite"]
    assert report.findings[0].evidence["best_epoch"] == int(np.argmin(val))


def test_overfitting_possible():
    loss = np.linspace(2.0, 0.1, 24)
    val = np.r_[np.linspace(2.1, 0.8, 12), np.full(12, 0.8) + 0.002 * np.arange(12)]
    report = diagnose({"loss": loss, "val_loss": val})
    assert report.codes == ["overfitting_possible"]


def _old_rule_fires(loss, val, k):
    """The rule `overfitting_possible` had before validation had to stall:
    training falls over the last `k` epochs, validation (3-epoch mean) gains
    < 25% as much, the gap grows by > 10% of the best validation loss."""
    vs = np.convolve(np.r_[val[0], val, val[-1]], np.ones(3) / 3, "valid")
    vs[-1] = (val[-2] + val[-1]) / 2
    train_drop = loss[-k] - loss[-1]
    val_drop = vs[-k] - vs[-k:].min()
    gap = (vs[-1] - loss[-1]) - (vs[-k] - loss[-k])
    noise = np.median(np.abs(np.diff(val)))
    return train_drop > 0 and val_drop < 0.25 * train_drop and gap > 0.1 * val.min() and gap > 2 * noise


def test_no_overfitting_while_validation_is_still_at_its_best():
    """Training falls faster than validation, but validation is still falling
    and lowest at the last epoch: not overfitting (the rule used to say
    `overfitting_possible` here)."""
    loss = np.linspace(2.0, 0.1, 24)
    val = np.r_[np.linspace(2.1, 0.8, 12), np.linspace(0.795, 0.74, 12)]
    assert int(np.argmin(val)) == len(val) - 1 and _old_rule_fires(loss, val, 8)
    report = diagnose({"loss": loss, "val_loss": val})
    assert not {"overfitting_possible", "overfitting_definite"} & set(report.codes), str(report)


def test_no_overfitting_while_validation_makes_new_lows_through_noise():
    """The last epoch is a little above the one before, but the last epochs
    went below everything before by more than the epoch-to-epoch noise."""
    loss = np.linspace(2.0, 0.1, 24)
    val = np.r_[np.linspace(2.1, 0.8, 12), np.linspace(0.79, 0.70, 12)]
    val[-1] = val[-2] + 0.004  # a noisy last epoch
    assert int(np.argmin(val)) == len(val) - 2 and _old_rule_fires(loss, val, 8)
    report = diagnose({"loss": loss, "val_loss": val})
    assert "overfitting_possible" not in report.codes, str(report)


def test_a_real_run_whose_validation_stalls_is_still_possible_overfitting():
    """`kerastoolkit train --dataset fashion_mnist` (seed 0, preset adam, 10
    epochs), as recorded: validation was best at epoch 7 (0.2115), then 0.2167
    and 0.2192 while the training loss kept falling."""
    loss = [0.5413, 0.3690, 0.3262, 0.2963, 0.2778, 0.2597, 0.2485, 0.2361, 0.2264, 0.2136]
    val = [0.3630, 0.2799, 0.2793, 0.2592, 0.2402, 0.2361, 0.2255, 0.2115, 0.2167, 0.2192]
    report = diagnose({"loss": loss, "val_loss": val})
    assert report.codes == ["overfitting_possible"], str(report)


def test_not_converged():
    loss = np.linspace(2.3, 1.2, 10)
    report = diagnose({"loss": loss, "val_loss": loss + 0.05})
    assert report.codes == ["not_converged"]
    # analytic: a straight line falls by (2.3 - 1.2) / 9 per epoch
    assert report.findings[0].evidence["slope_per_epoch"] == pytest.approx(-1.1 / 9)


def _repeating(spe=40, epochs=8):
    """A converging level times the same within-epoch profile every epoch."""
    profile = 0.3 * np.sin(np.linspace(0, 3 * np.pi, spe))
    level = 0.5 + 1.5 * np.exp(-2.0 * np.arange(epochs))
    return np.concatenate([lv * np.exp(profile) for lv in level])


def test_exactly_repeating_profile_is_an_order_problem():
    spe = 40
    report = diagnose(steps=_repeating(spe), steps_per_epoch=spe)
    assert report.codes == ["unshuffled"]
    ev = report.findings[0].evidence
    # analytic: log(level_e) + profile; the same residual every epoch
    assert ev["epoch_correlation"] == pytest.approx(1.0)
    assert ev["pattern"] == "unknown"  # no labels: sorted or repeated, both said
    assert "reshuffle_each_iteration" in report.findings[0].advice


def test_labels_tell_sorted_from_repeated_order():
    spe, epochs, n = 40, 8, 10
    steps = _repeating(spe, epochs)
    size = np.full(spe * epochs, n, "float64")
    # sorted: every batch holds one class (0..9 in turn); its mean label is
    # the class; the spread of batch means is var(y) against var(y)/n for
    # random batches: a ratio of exactly n.
    cls = np.tile(np.repeat(np.arange(10), spe // 10), epochs).astype("float64")
    sorted_labels = {"size": size, "label_sum": n * cls, "label_sq_sum": n * cls**2}
    report = diagnose(steps=steps, steps_per_epoch=spe, step_labels=sorted_labels)
    assert report.codes == ["unshuffled"]
    assert report.findings[0].evidence["label_spread_ratio"] == pytest.approx(n)
    # mixed: every batch holds each class once: the batch means never move
    mixed = {"size": size, "label_sum": np.full(spe * epochs, 45.0),
             "label_sq_sum": np.full(spe * epochs, float(np.sum(np.arange(10) ** 2)))}
    report = diagnose(steps=steps, steps_per_epoch=spe, step_labels=mixed)
    assert report.codes == ["repeated_order"]
    assert report.findings[0].evidence["label_spread_ratio"] == pytest.approx(0.0)


def test_jump_to_a_flat_chance_level_is_named():
    steps = np.r_[np.linspace(2.3, 0.6, 60), np.full(140, np.log(10))]
    report = diagnose(steps=steps)
    assert report.codes == ["chance_plateau"]
    ev = report.findings[0].evidence
    assert ev["chance_classes"] == 10 and ev["level"] == pytest.approx(np.log(10))
    # started at chance and never moved: that is not_training, not a jump
    assert diagnose(steps=np.full(200, np.log(10))).codes == ["not_training"]


def test_shuffled_noise_is_not_unshuffled():
    steps = decay(600, rate=5, noise=0.2)
    assert "unshuffled" not in diagnose(steps=steps, steps_per_epoch=60)


def test_steps_per_epoch_inferred_from_epochs():
    steps = decay(600, rate=5, noise=0.1)
    report = diagnose({"loss": decay(10, rate=5)}, steps=steps)
    assert report.steps_per_epoch == 60


def test_report_json_round_trip_and_plot(tmp_path):
    loss = np.r_[decay(5, start=2.3, end=1.5), np.linspace(1.6, 6.0, 10)]
    report = diagnose({"loss": loss, "val_loss": loss + 0.1}, steps=np.repeat(loss, 20))
    data = json.loads(report.to_json())
    assert [f["code"] for f in data["findings"]] == report.codes
    again = Report.from_json(report.to_json())
    assert again.codes == report.codes and again.findings[0].evidence == report.findings[0].evidence
    path = report.plot(str(tmp_path / "curves.png"))
    with open(path, "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"


def test_plot_history_still_works(tmp_path):
    from kerastoolkit.diagnostics import plot_history

    path = plot_history({"loss": [1.0, 0.5], "val_loss": [1.1, 0.7], "accuracy": [0.5, 0.8]},
                        str(tmp_path / "h.png"), title="t")
    with open(path, "rb") as handle:
        assert handle.read(4) == b"\x89PNG"


def test_finding_validation_and_codes():
    with pytest.raises(ValueError, match="Received: code='bogus'"):
        Finding("bogus", "error", "m", "a")
    with pytest.raises(ValueError, match="Received: severity='fatal'"):
        Finding("nan", "fatal", "m", "a")
    for code in ("nan", "not_training", "diverging", "unshuffled", "repeated_order",
                 "chance_plateau", "not_converged",
                 "slow_start", "overfitting_possible", "overfitting_definite", "dead_relu",
                 "vanishing_activations", "exploding_activations", "vanishing_gradients",
                 "exploding_gradients", "update_ratio"):
        assert code in CODES


def test_bad_arguments():
    with pytest.raises(ValueError, match="Received: epochs=None, steps=None"):
        diagnose()
    with pytest.raises(ValueError, match="Unknown thresholds"):
        diagnose({"loss": [1, 2, 3]}, thresholds={"nope": 1})
    with pytest.raises(ValueError, match="steps_per_epoch"):
        diagnose(steps=[1.0, 2.0], steps_per_epoch=0)
    with pytest.raises(ValueError, match="mismatched lengths"):
        diagnose({"loss": [1.0, 0.5], "val_loss": [1.0]})
    with pytest.raises(ValueError, match="Mismatched lengths"):
        diagnose({"loss": [1.0, 0.5]}, steps=np.ones(30), steps_per_epoch=10)
    with pytest.raises(TypeError, match="Received: epochs=int"):
        diagnose(3)


def test_thresholds_override():
    loss = np.linspace(2.3, 2.1, 10)  # drops 9%
    assert diagnose({"loss": loss}).codes != ["not_training"]
    assert diagnose({"loss": loss}, thresholds={"not_training_drop": 0.2}).codes == ["not_training"]


def stats(stds, grads, ratios=None, dead=None, steps=(0, 10, 20)):
    layers = [f"d{i}" for i in range(len(stds[0]))]
    records = []
    for i, step in enumerate(steps):
        records.append({
            "step": step, "activation_std": stds[i], "gradient_rms": grads[i],
            "dead_fraction": dead[i] if dead else [None] * len(layers),
            "update_ratio": ratios[i] if ratios else None,
        })
    return {"layers": layers, "relu": [False] * len(layers), "records": records}


def test_statistics_codes_from_records():
    healthy_curve = {"loss": decay(10, rate=6)}
    ok = stats([[1.0, 0.8, 0.9, 1.1]] * 3, [[0.01, 0.02, 0.02, 0.03]] * 3,
               ratios=[None, [1e-3] * 4, [2e-3] * 4])
    assert diagnose(healthy_curve, statistics=ok).codes == []
    # collapse at initialization only (first record), normal afterwards
    vanish = stats([[1.0, 1e-2, 1e-4, 0.5], [1.0, 0.9, 0.8, 1.0], [1.0, 0.9, 0.8, 1.0]],
                   [[1e-9, 1e-6, 1e-3, 1e-2], [0.01] * 4, [0.01] * 4])
    report = diagnose(healthy_curve, statistics=vanish)
    assert sorted(report.codes) == ["vanishing_activations", "vanishing_gradients"]
    act = [f for f in report.findings if f.code == "vanishing_activations"][0]
    assert act.evidence["ratio_last_to_first"] == pytest.approx(1e-4 / 1.0)
    assert "initialization" in act.message
    explode = stats([[1.0, 30.0, 900.0, 5.0]] * 3, [[5.0, 0.5, 0.05, 0.01]] * 3,
                    ratios=[None, [0.5] * 4, [0.4] * 4],
                    dead=[[0.7, None, None, None]] * 3)
    report = diagnose(healthy_curve, statistics=explode)
    assert sorted(report.codes) == ["dead_relu", "exploding_activations",
                                    "exploding_gradients", "update_ratio"]
    upd = [f for f in report.findings if f.code == "update_ratio"][0]
    assert upd.evidence["median_ratio"]["d0"] == pytest.approx(np.median([0.5, 0.4]))
