"""`.keras` files of the models package load in one fresh process with the same outputs."""

import json
import os

import keras
import numpy as np
import pytest

import kerastoolkit as kt
from tests.harness import fresh_process_predict
from tests.models.test_distiller import assert_model_config_roundtrip, hard_loss, mlp
from tests.models.test_tta import conv_net


@pytest.mark.slow
def test_distiller_and_tta_of_an_ensemble_load_in_a_fresh_process(tmp_path):
    x, y = kt.data.load("digits", "test", as_numpy=True)
    x, y = x[:16], y[:16]
    distiller = kt.models.Distiller([mlp(16, seed=1), mlp(16, seed=7)], mlp(8, seed=2), temperature=2.0, alpha=0.2)
    distiller.compile("adam", hard_loss(), metrics=["accuracy"])
    distiller.fit(x, y, epochs=1, verbose=0)
    tta = kt.models.TTAPredictor(
        kt.models.Ensemble([conv_net(seed=1), conv_net(seed=2)]),
        views=["identity", "hflip", "shift:1"], mean="geometric", beta=0.5,
    )
    rebuilt = assert_model_config_roundtrip(tta)
    assert rebuilt.views == ["identity", "hflip", "shift:1"] and rebuilt.beta == 0.5
    paths = [tmp_path / "distiller.keras", tmp_path / "tta.keras"]
    distiller.save(paths[0])
    tta.save(paths[1])
    got = fresh_process_predict(paths, [x, x], str(tmp_path))
    for model, out in zip((distiller, tta), got):
        np.testing.assert_allclose(out, keras.ops.convert_to_numpy(model(x, training=False)), atol=1e-6)
