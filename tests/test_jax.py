"""Training under JAX: 2 host devices (DataParallel) equal 1; a JAX-trained model reloads under
TensorFlow and exports with the same outputs."""

from __future__ import annotations

import json

import keras
import numpy as np
import pandas as pd
import pytest
from conftest import NO_RANDOM_LAYERS, run_cli, tiny_overrides

from birdtpu.config import load_config
from birdtpu.models.registry import build_model
from birdtpu.train.losses import make_loss


def _fit_once(cfg, weights, x, y):
    model = build_model(cfg, y.shape[1])
    model.set_weights(weights)
    model.compile(keras.optimizers.SGD(1e-3), make_loss(cfg.train), jit_compile=True)
    history = model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    return history.history["loss"][0], model.get_weights()


@pytest.mark.backends
def test_two_device_fit_equals_one_device_fit(tmp_path):
    if keras.backend.backend() != "jax":
        pytest.skip("DataParallel over host devices is the JAX backend's")
    import jax

    devices = jax.devices("cpu")
    if len(devices) < 2:
        pytest.skip("needs XLA_FLAGS=--xla_force_host_platform_device_count=2")
    cfg = load_config(None, tiny_overrides(tmp_path, *NO_RANDOM_LAYERS))
    rng = np.random.default_rng(0)
    # the Freesound 2019 CNN, two steps: EfficientNet's 80 BatchNorms over batches of 8 random
    # clips amplify float rounding (1e-6 after a step, on one device as on two) into drift
    x = (0.1 * rng.standard_normal((16, 32000))).astype("float32")
    y = np.eye(3, dtype="float32")[rng.integers(3, size=16)]
    keras.utils.set_random_seed(1)
    start = build_model(cfg, 3).get_weights()
    one_loss, one_weights = _fit_once(cfg, start, x, y)
    with keras.distribution.DataParallel(devices=devices[:2]).scope():
        two_loss, two_weights = _fit_once(cfg, start, x, y)
    assert abs(one_loss - two_loss) < 1e-5, (one_loss, two_loss)
    worst = max(float(np.abs(a - b).max()) for a, b in zip(one_weights, two_weights))
    assert worst < 1e-4, worst
    assert any(not np.array_equal(a, b) for a, b in zip(start, one_weights))  # it trained


@pytest.mark.slow
def test_a_jax_trained_model_predicts_the_same_under_tensorflow_and_exported(tmp_path):
    base = tiny_overrides(tmp_path)
    jax_sets = [*base, "runtime.backend=jax", "runtime.cpu_replicas=2"]
    fit = run_cli("fit", *[x for o in jax_sets for x in ("--set", o)])
    assert fit.returncode == 0, fit.stderr[-3000:]
    assert "jax backend, DataParallel over 2 cpu device(s)" in fit.stderr
    run = tmp_path / "runs" / "tiny"
    subs = {}
    for backend, model in (("jax", ""), ("tensorflow", ""), ("tensorflow", "tflite")):
        sets = [*base, f"runtime.backend={backend}", f"infer.check_windows={4 if model else 0}"]
        if model:
            export = run_cli("export", "--format", model, *[x for o in sets for x in ("--set", o)])
            assert export.returncode == 0, export.stderr[-3000:]
            side = json.loads((run / "model_fp32.json").read_text())
            assert side["max_abs_diff"] < 1e-5, side
            sets.append(f"infer.model={run / 'model_fp32.tflite'}")
        predict = run_cli("predict", *[x for o in sets for x in ("--set", o)])
        assert predict.returncode == 0, predict.stderr[-3000:]
        subs[backend + model] = pd.read_csv(run / "submission.csv").set_index("row_id")
    reference = subs["jax"].to_numpy()
    np.testing.assert_allclose(subs["tensorflow"].to_numpy(), reference, atol=1e-5, rtol=0)
    np.testing.assert_allclose(subs["tensorflowtflite"].to_numpy(), reference, atol=1e-5, rtol=0)
