"""Config name -> model. A model takes a batch of waveforms and holds the whole front inside."""

from __future__ import annotations

import difflib

import keras

from birdtpu.errors import ConfigError
from birdtpu.layers.frontend import frontend
from birdtpu.models import efficientnet

BACKBONES = {name: efficientnet.efficientnet for name in efficientnet.NAMES}


def build_backbone(name: str, input_shape: tuple[int, int, int], pretrained: str) -> keras.Model:
    """The backbone registered under `name`."""
    if name not in BACKBONES:
        near = difflib.get_close_matches(name, list(BACKBONES), n=1)
        hint = f"; did you mean {near[0]}?" if near else f"; available: {', '.join(BACKBONES)}"
        raise ConfigError(f"model.name: unknown model {name!r}{hint}")
    return BACKBONES[name](name, input_shape, pretrained)


def set_bn_momentum(model: keras.Model, momentum: float) -> None:
    """Set the moving-statistics momentum of every BatchNormalization layer of `model`.

    From scratch and for few steps, the default 0.99 leaves inference statistics far from the
    training ones (validation then predicts a constant); 0.9 tracks them.
    """
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = momentum


def build_model(cfg, num_classes: int) -> keras.Model:
    """Waveform (batch, clip samples) -> class probabilities, from a full Config."""
    sample_rate = cfg.data.sample_rate
    samples = int(round(cfg.frontend.clip_seconds * sample_rate))
    wave = keras.Input((samples,), name="waveform")
    image = frontend(cfg.frontend, sample_rate, cfg.augment)(wave)
    backbone = build_backbone(cfg.model.name, (cfg.frontend.n_mels, cfg.frontend.frames, cfg.frontend.channels),
                              cfg.model.pretrained)
    if cfg.model.bn_momentum:
        set_bn_momentum(backbone, cfg.model.bn_momentum)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(backbone(image))
    x = keras.layers.Dropout(cfg.model.dropout, name="head_dropout")(x)
    x = keras.layers.Dense(num_classes, name="classifier")(x)
    out = keras.layers.Activation(cfg.model.activation, dtype="float32", name="probabilities")(x)
    return keras.Model(wave, out, name=f"birdtpu_{cfg.model.name}")
