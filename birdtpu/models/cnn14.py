"""PANNs CNN14 (Kong et al. 2020): six conv blocks, 64 ... 2048 channels, on a log-mel image.

Layout here is (batch, mels, frames, channels). `bn0` normalises each mel bin, as PANNs does;
each block is two 3x3 convs (no bias) with BatchNorm and ReLU, a 2x2 average pool (none after
the last block) and dropout. The tagging head (`panns_pool`) takes the mean over frequency, then
max + mean over time, then a ReLU dense layer as wide as the last block (PANNs' fc1); the SED
variant is `model.head: sed` (birdtpu.models.heads). At width 1 with 527 classes the model has
PANNs' 80,753,615 trainable parameters. PANNs' own checkpoints are PyTorch files: `pretrained`
takes a Keras weights file of this backbone (`backbone.save_weights`).
"""

from __future__ import annotations

import keras

from birdtpu.models.heads import Reduce
from birdtpu.models.weights import load_backbone_weights

CHANNELS = (64, 128, 256, 512, 1024, 2048)


def _conv_block(x, channels: int, pool: int, dropout: float, name: str):
    for i in (1, 2):
        x = keras.layers.Conv2D(
            channels, 3, padding="same", use_bias=False, name=f"{name}_conv{i}"
        )(x)
        x = keras.layers.BatchNormalization(name=f"{name}_bn{i}")(x)
        x = keras.layers.Activation("relu", name=f"{name}_relu{i}")(x)
    if pool > 1:
        x = keras.layers.AveragePooling2D(pool, padding="same", name=f"{name}_pool")(x)
    return keras.layers.Dropout(dropout, name=f"{name}_dropout")(x)


def cnn14(
    input_shape: tuple[int, int, int],
    width: float = 1.0,
    dropout: float = 0.2,
    pretrained: str = "none",
    name: str = "cnn14",
) -> keras.Model:
    """The CNN14 backbone: image (mels, frames, ch) -> feature map (mels/32, frames/32, 2048 x width)."""
    image = keras.Input(input_shape, name="image")
    x = keras.layers.BatchNormalization(axis=1, name="bn0")(image)
    for i, channels in enumerate(CHANNELS, 1):
        x = _conv_block(
            x, max(1, round(channels * width)), 2 if i < len(CHANNELS) else 1, dropout, f"block{i}"
        )
    model = keras.Model(image, x, name=name)
    load_backbone_weights(model, pretrained)
    return model


def panns_pool(feature_map, model_cfg):
    """PANNs' tagging pool: mean over frequency, max + mean over time, dropout, ReLU dense (fc1)."""
    x = Reduce(1, "mean", name="pool_freq_mean")(feature_map)  # (batch, time, channels)
    x = keras.layers.Add(name="pool")(
        [Reduce(1, "max", name="pool_time_max")(x), Reduce(1, "mean", name="pool_time_mean")(x)]
    )
    x = keras.layers.Dropout(model_cfg.dropout, name="pool_dropout")(x)
    return keras.layers.Dense(x.shape[-1], activation="relu", name="fc1")(x)
