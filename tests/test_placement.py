"""Waveform noise and gain in the model, MixUp/CutMix in the train step (on an accelerator), or
all of them in tf.data (on a CPU)."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from conftest import tiny_overrides

from birdtpu.config import load_config
from birdtpu.infer.export import inference_model
from birdtpu.layers.augment import WaveAugment
from birdtpu.models.registry import build_model
from birdtpu.train.mixstep import BatchMix, mix_in_train_step
from birdtpu.train.placement import augment_in_model, model_augment, pipeline_augment


def test_auto_puts_them_in_the_model_on_an_accelerator_only(tmp_path):
    cfg = load_config(None, tiny_overrides(tmp_path, "augment.noise_prob=0.5"))
    assert [augment_in_model(cfg.augment, d) for d in ("tpu", "gpu", "cpu")] == [True, True, False]
    forced = load_config(None, tiny_overrides(tmp_path, "augment.in_model=true"))
    assert augment_in_model(forced.augment, "cpu")
    moved = pipeline_augment(cfg.augment, True)
    assert moved.noise_prob == 0 and moved.mixup_prob == 0 and moved.cutmix_prob == 0
    assert moved.stretch_prob == cfg.augment.stretch_prob
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


def _batch(n=4, samples=64, classes=4):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, samples)).astype("float32")
    return x, np.eye(classes, dtype="float32")[np.arange(n) % classes]


@pytest.mark.backends
def test_batch_mix_is_seeded_by_the_step_and_mixes_the_targets(tmp_path):
    cfg = load_config(
        None, tiny_overrides(tmp_path, "augment.mixup_prob=1", "augment.cutmix_prob=0.5")
    )
    mix = BatchMix(cfg.augment, cfg.runtime.seed)
    x, y = _batch()
    x0, y0 = (np.asarray(v) for v in mix(keras.ops.array(x), keras.ops.array(y), 0))
    x0b, y0b = (np.asarray(v) for v in mix(keras.ops.array(x), keras.ops.array(y), 0))
    x1, _ = (np.asarray(v) for v in mix(keras.ops.array(x), keras.ops.array(y), 1))
    np.testing.assert_array_equal(x0, x0b)
    np.testing.assert_array_equal(y0, y0b)
    assert not np.allclose(x0, x1)  # the next step mixes otherwise
    assert not np.allclose(x0, x)
    assert ((y0 > 0).sum(axis=1) >= 2).all()  # every clip mixed with partners of other classes
    np.testing.assert_allclose(y0.sum(axis=1), 1.0, atol=1e-6)


def _compiled_mix(mix, x, y):
    """The mix of step 0 compiled as the train step is (TensorFlow's XLA draws differ from eager)."""
    if keras.backend.backend() == "jax":
        import jax

        fn = jax.jit(lambda a, b: mix(a, b, 0))
    else:
        import tensorflow as tf

        fn = tf.function(lambda a, b: mix(a, b, tf.constant(0, tf.int64)), jit_compile=True)
    return (keras.ops.convert_to_numpy(v) for v in fn(keras.ops.array(x), keras.ops.array(y)))


@pytest.mark.backends
def test_the_wrapped_train_step_trains_on_the_mixed_batch(tmp_path):
    cfg = load_config(None, tiny_overrides(tmp_path, "augment.mixup_prob=1"))
    mix = BatchMix(cfg.augment, cfg.runtime.seed)
    x, y = _batch()
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((x.shape[1],)), keras.layers.Dense(4, "sigmoid")])
    model.compile(keras.optimizers.SGD(0.0), "binary_crossentropy", jit_compile=True)
    plain = model.evaluate(x, y, batch_size=4, verbose=0)
    mx, my = _compiled_mix(mix, x, y)
    expected = model.evaluate(mx, my, batch_size=4, verbose=0)
    mix_in_train_step(model, mix)
    loss = model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0).history["loss"][0]
    assert not np.allclose(my, y) and abs(loss - expected) < 1e-6, (loss, expected, plain)
