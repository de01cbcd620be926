"""Config name -> model. A model takes a batch of waveforms and holds the whole front inside.

`build_model(cfg, num_classes)`: waveform (batch, clip samples) -> frontend (mel image) ->
backbone (a nested Keras model) -> head -> float32 probabilities (batch, classes). The head is
the architecture's own pooling (`model.head: clip`: global average for EfficientNet, PANNs'
max + mean for CNN14, the pixel-shuffle pool for fat2019) plus an optional neck, dropout and the
classifier, or the attention SED head (`model.head: sed`, birdtpu.models.heads).
"""

from __future__ import annotations

import dataclasses
import difflib
from typing import Callable

import keras

from birdtpu.config import ModelConfig
from birdtpu.errors import ConfigError
from birdtpu.layers.frontend import frontend
from birdtpu.models import cnn14, efficientnet, fat2019, heads


@dataclasses.dataclass(frozen=True)
class Architecture:
    """How to build one registered model."""

    backbone: Callable  # (model_cfg, input_shape, pretrained) -> keras.Model image -> feature map
    pool: Callable  # (feature_map, model_cfg) -> pooled features (batch, features)


def _efficientnet(name: str) -> Callable:
    return lambda m, shape, pretrained: efficientnet.efficientnet(
        name, shape, pretrained, m.backbone_dropout
    )


def _cnn14(m, shape, pretrained):
    return cnn14.cnn14(shape, m.width, m.backbone_dropout, pretrained)


def _fat2019(highway: bool) -> Callable:
    name = "fat2019_highway" if highway else "fat2019"
    return lambda m, shape, pretrained: fat2019.fat2019(
        shape, m.width, m.backbone_dropout, highway, pretrained, name
    )


def _gap(feature_map, model_cfg):
    return keras.layers.GlobalAveragePooling2D(name="pool")(feature_map)


MODELS: dict[str, Architecture] = {
    **{name: Architecture(_efficientnet(name), _gap) for name in efficientnet.NAMES},
    "cnn14": Architecture(_cnn14, cnn14.panns_pool),
    "fat2019": Architecture(_fat2019(highway=False), fat2019.pixel_shuffle_pool),
    "fat2019_highway": Architecture(_fat2019(highway=True), fat2019.pixel_shuffle_pool),
}


def architecture(name: str) -> Architecture:
    """The registered architecture `name`, or ConfigError with the nearest name."""
    if name not in MODELS:
        near = difflib.get_close_matches(name, list(MODELS), n=1)
        hint = f"; did you mean {near[0]}?" if near else f"; available: {', '.join(MODELS)}"
        raise ConfigError(f"model.name: unknown model {name!r}{hint}")
    return MODELS[name]


def build_backbone(
    name: str, input_shape: tuple[int, int, int], pretrained: str, model_cfg=None
) -> keras.Model:
    """The backbone registered under `name` (image -> feature map); `model_cfg` sets width and dropout."""
    return architecture(name).backbone(model_cfg or ModelConfig(name=name), input_shape, pretrained)


def walk_layers(model: keras.Model):
    """Every layer of `model`, nested models' layers included (depth first)."""
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from walk_layers(layer)


def set_bn_momentum(model: keras.Model, momentum: float) -> None:
    """Set the moving-statistics momentum of every BatchNormalization layer of `model`.

    From scratch and for few steps, the default 0.99 leaves inference statistics far from the
    training ones (validation then predicts a constant); 0.9 tracks them.
    """
    for layer in walk_layers(model):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = momentum


def set_bn_sync(model: keras.Model, synchronized: bool = True) -> None:
    """Make every BatchNormalization layer of `model` use global-batch statistics across replicas."""
    for layer in walk_layers(model):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.synchronized = synchronized


def build_model(cfg, num_classes: int, wave_augment=None) -> keras.Model:
    """Waveform (batch, clip samples) -> float32 class probabilities, from a full Config (with
    `model.global_features`, a dict of inputs: "waveform" and the clip's `clip_features`);
    `wave_augment`: an AugmentConfig whose noise and gain run in the model (training only).

    With `model.init_from` the backbone starts without pretrained weights (fine-tuning loads
    them); `birdtpu.train.finetune.init_from` does the loading.
    """
    model_cfg = cfg.model
    arch = architecture(model_cfg.name)
    sample_rate = cfg.data.sample_rate
    samples = int(round(cfg.frontend.clip_seconds * sample_rate))
    wave = keras.Input((samples,), name="waveform")
    image = frontend(
        cfg.frontend, sample_rate, cfg.augment, seed=cfg.runtime.seed, wave_augment=wave_augment
    )(wave)
    pretrained = "none" if model_cfg.init_from else model_cfg.pretrained
    backbone = arch.backbone(
        model_cfg, (cfg.frontend.n_mels, cfg.frontend.frames, cfg.frontend.channels), pretrained
    )
    feature_map = backbone(image)
    inputs = wave
    if model_cfg.head == "sed":
        out = heads.sed_head(feature_map, num_classes, model_cfg, cfg.frontend.frames)
    else:
        x = arch.pool(feature_map, model_cfg)
        if model_cfg.global_features:
            clip = fat2019.clip_inputs()
            x = keras.layers.Concatenate(name="pool_with_global")(
                [x, fat2019.global_branch(clip, model_cfg.width)]
            )
            inputs = {"waveform": wave, **clip}
        out = heads.classifier(x, num_classes, model_cfg)
    model = keras.Model(inputs, out, name=f"birdtpu_{model_cfg.name}")
    if model_cfg.bn_momentum:
        set_bn_momentum(model, model_cfg.bn_momentum)
    if model_cfg.sync_bn:
        set_bn_sync(model)
    return model
