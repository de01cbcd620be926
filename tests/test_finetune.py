"""Pretrain, then fine-tune with another class count: every backbone weight comes from the
checkpoint, the classifier starts fresh."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from conftest import tiny_overrides

from birdtpu.config import load_config
from birdtpu.errors import ConfigError
from birdtpu.models.registry import build_model
from birdtpu.train.finetune import init_from, named_layers


def cfg_for(*extra: str):
    return load_config(
        None,
        tiny_overrides(
            "/unused", "model.name=efficientnet_b0", "frontend.n_mels=32", "model.neck=16", *extra
        ),
    )


@pytest.fixture(scope="module")
def pretrained():
    """A 5-class model whose every weight is random (so no array equals a fresh one by chance)."""
    keras.utils.set_random_seed(11)
    model = build_model(cfg_for(), 5)
    rng = np.random.default_rng(0)
    for w in model.weights:
        w.assign(rng.standard_normal(w.shape).astype(w.dtype) + 2.0)
    return model


def _check_loaded(model, source, report):
    backbone, src = model.get_layer("efficientnetb0"), source.get_layer("efficientnetb0")
    assert len(backbone.weights) > 300
    for a, b in zip(backbone.weights, src.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=a.path)
    for a, b in zip(model.get_layer("neck").weights, source.get_layer("neck").weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    kernel = model.get_layer("classifier").kernel
    assert (
        tuple(kernel.shape) == (16, 3) and np.abs(np.asarray(kernel)).max() < 2.0
    )  # fresh Glorot values
    assert [k.split(" ")[0] for k in report["skipped"]] == ["classifier"]
    assert len(report["loaded"]) == len(list(named_layers(model))) - 1


def test_finetune_from_keras_file_loads_every_backbone_weight_by_name(pretrained, tmp_path):
    path = tmp_path / "pretrained.keras"
    pretrained.save(path)
    said = []
    model = build_model(cfg_for(f"model.init_from={path}"), 3)
    report = init_from(model, str(path), said.append)
    _check_loaded(model, pretrained, report)
    assert "layers loaded, 1 kept fresh (classifier (shape (16, 5) -> (16, 3)))" in said[0]


def test_finetune_from_weights_file(pretrained, tmp_path):
    path = tmp_path / "pretrained.weights.h5"
    pretrained.save_weights(path)
    model = build_model(cfg_for(), 3)
    _check_loaded(model, pretrained, init_from(model, str(path), lambda *_: None))


def test_finetune_from_a_remote_file_copies_it_first(pretrained, tmp_path):
    import tensorflow as tf

    path = (
        "ram://birdtpu-test/pretrained.weights.h5"  # TensorFlow's in-memory file system, as gs://
    )
    local = str(tmp_path / "pretrained.weights.h5")
    pretrained.save_weights(local)
    tf.io.gfile.makedirs("ram://birdtpu-test")
    tf.io.gfile.copy(local, path, overwrite=True)
    model = build_model(cfg_for(), 3)
    _check_loaded(model, pretrained, init_from(model, path, lambda *_: None))


def test_init_from_skips_imagenet_weights_of_the_new_model(monkeypatch):
    import birdtpu.models.efficientnet as eff

    asked = []
    real = eff.efficientnet
    monkeypatch.setattr(
        eff,
        "efficientnet",
        lambda name, shape, pretrained, rate: (
            asked.append(pretrained) or real(name, shape, pretrained, rate)
        ),
    )
    build_model(cfg_for("model.pretrained=imagenet", "model.init_from=/x/pretrained.keras"), 3)
    assert asked == ["none"]  # offline fine-tuning never downloads ImageNet weights


def test_bad_checkpoints_are_one_line(tmp_path):
    model = build_model(cfg_for(), 3)
    with pytest.raises(ConfigError, match="model.init_from: .*missing.keras not found"):
        init_from(model, str(tmp_path / "missing.keras"))
    with pytest.raises(ConfigError, match="expected a .keras or .weights.h5 file"):
        init_from(model, str(tmp_path / "model.h5"))
    other = build_model(
        load_config(None, tiny_overrides("/unused", "model.name=fat2019", "model.width=0.125")), 3
    )
    other.save(tmp_path / "fat.keras")
    with pytest.raises(
        ConfigError, match="no layer of .*fat.keras matches birdtpu_efficientnet_b0"
    ):
        init_from(model, str(tmp_path / "fat.keras"))
