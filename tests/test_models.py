"""The model zoo: every registered model builds, trains on CPU and round-trips `.keras` saving;
head and pooling layers against NumPy; CNN14 against PANNs' parameter count."""

from __future__ import annotations

import os

import keras
import numpy as np
import pytest
from conftest import tiny_overrides

from birdtpu.config import load_config
from birdtpu.errors import ConfigError
from birdtpu.models import fat2019, heads, registry

EFFICIENTNETS = [
    *(f"efficientnet_b{i}" for i in range(8)),
    *(f"efficientnetv2_b{i}" for i in range(4)),
    "efficientnetv2_s",
]
SMALL = ["model.width=0.125"]  # cnn14 / fat2019 at 1/8 of the published channels


def cfg_for(name: str, *extra: str, mels: int = 16):
    """A tiny recipe (2-s clips at 16 kHz, `mels` x 32 image) for model `name`."""
    return load_config(
        None, tiny_overrides("/unused", f"model.name={name}", f"frontend.n_mels={mels}", *extra)
    )


def batch(n: int = 4, classes: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    wave = (0.1 * rng.standard_normal((n, 32000))).astype("float32")
    return wave, np.eye(classes, dtype="float32")[np.arange(n) % classes]


def train_and_round_trip(model, tmp_path, steps: int = 2, **compile_kw):
    """Train `steps` steps, check the weights moved, save and reload `.keras`, compare outputs."""
    wave, target = batch()
    before = [w.copy() for w in model.get_weights()]
    model.compile(keras.optimizers.Adam(1e-3), "categorical_crossentropy", **compile_kw)
    losses = [float(model.train_on_batch(wave, target)) for _ in range(steps)]
    assert np.all(np.isfinite(losses))
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    probs = np.asarray(model(wave, training=False))
    assert probs.shape == (4, 3) and model.output.dtype == "float32"
    assert probs.min() >= 0 and probs.max() <= 1
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path, compile=False, safe_mode=True)
    np.testing.assert_allclose(
        np.asarray(loaded(wave, training=False)), probs, rtol=1e-5, atol=1e-6
    )
    return loaded


def test_registry_names_and_unknown_name():
    expected = set(EFFICIENTNETS) | {"cnn14", "fat2019", "fat2019_highway"}
    assert set(registry.MODELS) == expected
    with pytest.raises(
        ConfigError,
        match="model.name: unknown model 'efficientnet_b9'; did you mean efficientnet_b",
    ):
        registry.architecture("efficientnet_b9")


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.width=0.5", "model.width: applies to cnn14 and fat2019 models only"),
        ("model.global_features=true", "model.global_features: needs a fat2019 model"),
    ],
)
def test_model_fields_are_checked_against_the_model(override, message):
    with pytest.raises(ConfigError, match=message):
        cfg_for("efficientnet_b0", override, mels=32)


def test_imagenet_is_refused_for_our_own_cnns_and_one_channel():
    with pytest.raises(ConfigError, match="no ImageNet weights for cnn14"):
        cfg_for("cnn14", "model.pretrained=imagenet")
    with pytest.raises(ConfigError, match="ImageNet weights need frontend.channels: 3"):
        cfg_for("efficientnet_b0", "model.pretrained=imagenet", "frontend.channels=1", mels=32)


def test_efficientnet_refuses_images_below_32_pixels_with_one_line():
    with pytest.raises(
        ConfigError, match=r"efficientnet_b0 needs an image of at least 32 x 32; .* is 16 x 32"
    ):
        registry.build_model(cfg_for("efficientnet_b0"), 3)


def test_imagenet_download_failure_is_one_clear_line(monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))  # no cached weights; no network here
    cfg = cfg_for("efficientnet_b0", "model.pretrained=imagenet", mels=32)
    with pytest.raises(
        ConfigError, match="could not load ImageNet weights for efficientnet_b0.*weights file path"
    ):
        registry.build_model(cfg, 3)


# ------------------------------------------------------------------ layers against NumPy


def _softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def test_head_layers_match_numpy_and_round_trip_their_config():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 5, 7, 3)).astype("float32")
    for how, ref in (("mean", np.mean), ("max", np.max)):
        layer = heads.Reduce(2, how)
        np.testing.assert_allclose(layer(x), ref(x, axis=2), rtol=1e-6)
        assert heads.Reduce.from_config(layer.get_config()).get_config() == layer.get_config()
    att, prob = (
        np.tanh(rng.standard_normal((2, 4, 3))).astype("float32"),
        rng.random((2, 4, 3)).astype("float32"),
    )
    np.testing.assert_allclose(
        heads.AttentionPool()([att, prob]), (_softmax(att, 1) * prob).sum(1), rtol=1e-5
    )
    up = heads.FrameUpsample(10)
    np.testing.assert_array_equal(
        up(prob), np.repeat(prob, 3, axis=1)[:, :10]
    )  # ceil(10 / 4) = 3 frames each
    assert up.get_config()["frames"] == 10
    frames = np.repeat(prob, 3, axis=1)[:, :10]
    clip = prob.mean(1)
    np.testing.assert_allclose(
        heads.SEDBlend(0.25)([clip, frames]), 0.25 * clip + 0.75 * frames.max(1), rtol=1e-6
    )


def test_pixel_shuffle_folds_time_pairs_into_channels():
    x = np.arange(2 * 3 * 5 * 4, dtype="float32").reshape(2, 3, 5, 4)
    out = np.asarray(fat2019.PixelShuffleTime(2)(x))
    padded = np.concatenate(
        [x, np.zeros((2, 3, 1, 4), "float32")], axis=2
    )  # odd length: zero-padded
    assert out.shape == (2, 3, 3, 8)
    np.testing.assert_array_equal(out[:, :, 1, :4], padded[:, :, 2])  # step 1 holds frames 2 and 3
    np.testing.assert_array_equal(out[:, :, 1, 4:], padded[:, :, 3])
    np.testing.assert_array_equal(out[:, :, 2, 4:], 0)


def test_sed_outputs_are_consistent():
    model = registry.build_model(
        cfg_for("fat2019", *SMALL, "model.head=sed", "model.sed_clip_weight=0.3"), 3
    )
    sed = heads.sed_outputs(model)
    parts = keras.Model(model.input, model.get_layer("sed_attention").output)
    wave, _ = batch()
    out = {k: np.asarray(v) for k, v in sed(wave).items()}
    att = np.asarray(parts(wave))
    segments = out["segmentwise"].shape[1]
    assert out["framewise"].shape == (4, 32, 3) and segments == 2  # 32 frames pooled 16x in time
    np.testing.assert_allclose(
        out["clipwise"], (_softmax(att, 1) * out["segmentwise"]).sum(1), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_array_equal(
        out["framewise"][:, :16], np.repeat(out["segmentwise"][:, :1], 16, axis=1)
    )
    np.testing.assert_allclose(
        out["probabilities"],
        0.3 * out["clipwise"] + 0.7 * out["framewise"].max(1),
        rtol=1e-5,
        atol=1e-6,
    )
    np.testing.assert_allclose(np.asarray(model(wave)), out["probabilities"], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="no SED head"):
        heads.sed_outputs(registry.build_model(cfg_for("fat2019", *SMALL), 3))


def test_cnn14_has_panns_parameter_count():
    cfg = cfg_for("cnn14", "frontend.channels=1", "frontend.n_mels=64", mels=64)
    model = registry.build_model(cfg, 527)
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert trainable == 80_753_615  # PANNs Cnn14 with 527 AudioSet classes
    assert model.get_layer("cnn14").output.shape[1:] == (2, 1, 2048)  # 64 mels / 32, frames 32 / 32


def test_backbone_dropout_sets_efficientnet_drop_connect():
    def rates(value):
        model = registry.build_backbone(
            "efficientnet_b0",
            (32, 32, 3),
            "none",
            cfg_for("efficientnet_b0", f"model.backbone_dropout={value}", mels=32).model,
        )
        return [layer.rate for layer in model.layers if isinstance(layer, keras.layers.Dropout)]

    default, off, double = rates(0.2), rates(0.0), rates(0.4)
    assert (
        max(default) == pytest.approx(0.2 * 14 / 16) and min(default) > 0
    )  # block b of 16: 0.2 * b / 16
    assert set(off) == {0.0}
    np.testing.assert_allclose(double, 2 * np.array(default))


def test_pretrained_weights_file_loads_into_the_backbone(tmp_path):
    cfg = cfg_for("fat2019", *SMALL)
    source = registry.build_model(cfg, 3).get_layer("fat2019")
    path = tmp_path / "fat2019_backbone.weights.h5"
    source.save_weights(path)
    model = registry.build_model(cfg_for("fat2019", *SMALL, f"model.pretrained={path}"), 5)
    for a, b in zip(source.get_weights(), model.get_layer("fat2019").get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(
        ConfigError, match="model.pretrained: weights file .*missing.weights.h5 not found"
    ):
        registry.build_model(
            cfg_for("fat2019", *SMALL, f"model.pretrained={tmp_path}/missing.weights.h5"), 3
        )
    with pytest.raises(ConfigError, match="model.pretrained: .* does not fit fat2019"):
        registry.build_model(cfg_for("fat2019", "model.width=0.25", f"model.pretrained={path}"), 3)


def test_bn_settings_reach_nested_backbones():
    model = registry.build_model(
        cfg_for("cnn14", *SMALL, "model.bn_momentum=0.8", "model.sync_bn=true"), 3
    )
    bns = [
        layer
        for layer in registry.walk_layers(model)
        if isinstance(layer, keras.layers.BatchNormalization)
    ]
    assert len(bns) == 13  # bn0 and two per block
    assert {layer.momentum for layer in bns} == {0.8} and all(layer.synchronized for layer in bns)


@pytest.mark.slow
def test_global_features_are_inputs_beside_the_waveform(tmp_path):
    from birdtpu.data.clip_features import waveform_input

    model = registry.build_model(cfg_for("fat2019", *SMALL, "model.global_features=true"), 3)
    shapes = {k: tuple(t.shape) for k, t in model.input.items()}
    assert shapes == {
        "waveform": (None, 32000),
        "clip_features": (None, 128, 12),
        "clip_seconds": (None, 1),
    }
    assert waveform_input(model) is model.input["waveform"]
    # pixel shuffle + BiGRU + log(1 + seconds)
    assert model.get_layer("pool_with_global").output.shape[-1] == 2 * 64 + 2 * 8 + 1
    wave, target = batch()
    rng = np.random.default_rng(3)
    x = {
        "waveform": wave,
        "clip_features": rng.standard_normal((4, 128, 12)).astype("float32"),
        "clip_seconds": rng.uniform(1, 30, (4, 1)).astype("float32"),
    }
    model.compile(keras.optimizers.Adam(1e-3), "categorical_crossentropy", run_eagerly=True)
    assert np.isfinite(float(model.train_on_batch(x, target)))
    probs = np.asarray(model(x, training=False))
    other = {**x, "clip_seconds": x["clip_seconds"] + 10.0}  # the branch reads its inputs
    assert np.abs(np.asarray(model(other, training=False)) - probs).max() > 1e-6
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras", compile=False, safe_mode=True)
    np.testing.assert_allclose(np.asarray(loaded(x, training=False)), probs, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ training and saving every model


@pytest.mark.parametrize(
    "name, extra",
    [
        ("fat2019", ["model.neck=16"]),
        pytest.param(
            "fat2019_highway",
            ["model.head=sed", "model.activation=sigmoid"],
            marks=pytest.mark.slow,
        ),
        pytest.param("cnn14", ["frontend.channels=1"], marks=pytest.mark.slow),
        ("cnn14", ["model.head=sed"]),
    ],
)
def test_own_cnns_train_and_round_trip(name, extra, tmp_path):
    model = registry.build_model(cfg_for(name, *SMALL, *extra), 3)
    train_and_round_trip(model, tmp_path, run_eagerly=True)


@pytest.mark.slow
def test_custom_layers_compile_with_xla_under_bfloat16(tmp_path):
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = registry.build_model(cfg_for("fat2019_highway", *SMALL, "model.head=sed"), 3)
        assert model.get_layer("fat2019_highway").compute_dtype == "bfloat16"
        train_and_round_trip(model, tmp_path, jit_compile=True)
    finally:
        keras.mixed_precision.set_global_policy("float32")


@pytest.mark.slow
@pytest.mark.parametrize("name", EFFICIENTNETS)
def test_every_efficientnet_builds_trains_and_round_trips(name, tmp_path):
    model = registry.build_model(cfg_for(name, mels=32), 3)
    wave, target = batch()
    path = tmp_path / "m.keras"
    model.save(path)  # before compiling: the file holds no optimizer state (B7 is large)
    loaded = keras.models.load_model(path, compile=False, safe_mode=True)
    np.testing.assert_allclose(loaded(wave), model(wave), rtol=1e-5, atol=1e-6)
    model.compile(keras.optimizers.Adam(1e-3), "categorical_crossentropy", run_eagerly=True)
    before = model.get_layer("classifier").get_weights()[0].copy()
    assert np.isfinite(model.train_on_batch(wave, target))
    assert not np.array_equal(before, model.get_layer("classifier").get_weights()[0])


# ------------------------------------------------------------------ recipes

RECIPES = ["demo", "birdclef24", "birdclef23", "pretrain_xc", "fat2019", "rainforest"]
CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")


@pytest.mark.parametrize("recipe", RECIPES)
def test_recipe_loads(recipe):
    cfg = load_config(os.path.join(CONFIGS, f"{recipe}.yaml"))
    assert cfg.name == recipe and cfg.model.name in registry.MODELS


@pytest.mark.slow
@pytest.mark.parametrize("recipe", RECIPES)
def test_recipe_model_runs_at_its_input_size(recipe):
    cfg = load_config(os.path.join(CONFIGS, f"{recipe}.yaml"), ["model.pretrained=none"])
    model = registry.build_model(cfg, 24)
    samples = int(round(cfg.frontend.clip_seconds * cfg.data.sample_rate))
    x = np.zeros((1, samples), "float32")
    if cfg.model.global_features:  # the clip inputs of a silent 30-s recording
        x = {"waveform": x, "clip_features": np.zeros((1, 128, 12), "float32")}
        x["clip_seconds"] = np.full((1, 1), 30.0, "float32")
    out = np.asarray(model(x))
    assert out.shape == (1, 24) and np.all((out >= 0) & (out <= 1))
    if cfg.model.head == "sed":
        assert heads.sed_outputs(model).output["framewise"].shape[1] == cfg.frontend.frames
