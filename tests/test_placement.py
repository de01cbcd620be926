"""Waveform noise and gain in the model (on an accelerator) or in tf.data (on a CPU)."""

from __future__ import annotations

import keras
import numpy as np
from conftest import tiny_overrides

from birdtpu.config import load_config
from birdtpu.infer.export import inference_model
from birdtpu.layers.augment import WaveAugment
from birdtpu.models.registry import build_model
from birdtpu.train.placement import augment_in_model, model_augment, pipeline_augment


def test_auto_puts_them_in_the_model_on_an_accelerator_only(tmp_path):
    cfg = load_config(None, tiny_overrides(tmp_path, "augment.noise_prob=0.5"))
    assert [augment_in_model(cfg.augment, d) for d in ("tpu", "gpu", "cpu")] == [True, True, False]
    forced = load_config(None, tiny_overrides(tmp_path, "augment.in_model=true"))
    assert augment_in_model(forced.augment, "cpu")
    moved = pipeline_augment(cfg.augment, True)
    assert moved.noise_prob == 0 and moved.mixup_prob == cfg.augment.mixup_prob
    assert pipeline_augment(cfg.augment, False) is cfg.augment


def test_the_model_augments_in_training_and_exports_without_it(tmp_path):
    cfg = load_config(
        None,
        tiny_overrides(
            tmp_path, "augment.noise_prob=1", "augment.gain_prob=1", "augment.pitch_prob=1"
        ),
    )
    model = build_model(cfg, 3, model_augment(cfg.augment))
    (front,) = [x for x in model.layers if isinstance(x, keras.Sequential)]
    wave_layer = front.layers[0]
    assert isinstance(wave_layer, WaveAugment) and wave_layer.noise_prob == 1
    assert wave_layer.pitch_prob == 0  # the phase vocoder stays in tf.data
    x = (0.1 * np.random.default_rng(0).standard_normal((4, 32000))).astype("float32")
    plain = np.asarray(model(x, training=False))
    exported = inference_model(model)
    assert not any(isinstance(x, WaveAugment) for x in exported.get_layer("frontend").layers)
    np.testing.assert_allclose(np.asarray(exported(x)), plain, atol=1e-5)
    # training mode: the front end's images change (the backbone's BN statistics would too)
    image = np.asarray(front(x, training=False))
    assert not np.allclose(np.asarray(front(x, training=True)), image, atol=1e-3)
