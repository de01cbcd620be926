"""The Freesound Audio Tagging 2019 winner's CNN (after the 1st-place write-up, seeds/002).

Four conv blocks of two 3x3 convs (64, 128, 256, 512 channels x width), each with
squeeze-and-excitation and a shortcut path: a 1x1 conv added to the block (`fat2019`) or a
highway gate `g * block + (1 - g) * 1x1(x)` (`fat2019_highway`). After each block the pooling
averages over frequency and takes the max over time; a ninth conv closes the backbone. The head
(`pixel_shuffle_pool`) folds pairs of time steps into channels ("pixel shuffle"), takes the max
over time, then the mean over mel bins. With `model.global_features` the model has two more
inputs, the global features of the whole clip (128 windows x 12 statistics, computed by the input
pipeline: birdtpu.data.clip_features) and the clip's length in seconds: a bidirectional GRU reads
the features, log(1 + seconds) joins it, both concatenated before the classifier.
"""

from __future__ import annotations

import keras
from keras import ops

from birdtpu.data.clip_features import STATISTICS, WINDOWS
from birdtpu.models.heads import Reduce
from birdtpu.models.weights import load_backbone_weights
from birdtpu.saving import register

CHANNELS = (64, 128, 256, 512)


@register
class PixelShuffleTime(keras.layers.Layer):
    """(batch, freq, time, ch) -> (batch, freq, ceil(time / factor), ch x factor): groups of
    `factor` neighbouring time steps side by side in the channels (odd ends are zero-padded)."""

    def __init__(self, factor: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.factor = int(factor)

    def call(self, x):
        _, freq, time, ch = x.shape
        steps = -(-time // self.factor)
        if steps * self.factor != time:
            x = ops.pad(x, [[0, 0], [0, 0], [0, steps * self.factor - time], [0, 0]])
        return ops.reshape(x, (-1, freq, steps, self.factor * ch))

    def compute_output_shape(self, input_shape):
        batch, freq, time, ch = input_shape
        return (batch, freq, -(-time // self.factor), ch * self.factor)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


def _squeeze_excite(x, channels: int, name: str):
    s = keras.layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_se_squeeze")(x)
    s = keras.layers.Conv2D(max(4, channels // 8), 1, activation="relu", name=f"{name}_se_reduce")(
        s
    )
    s = keras.layers.Conv2D(channels, 1, activation="sigmoid", name=f"{name}_se_expand")(s)
    return keras.layers.Multiply(name=f"{name}_se")([x, s])


def _block(x, channels: int, highway: bool, name: str):
    shortcut = keras.layers.Conv2D(channels, 1, use_bias=False, name=f"{name}_shortcut")(x)
    h = x
    for i in (1, 2):
        h = keras.layers.Conv2D(
            channels, 3, padding="same", use_bias=False, name=f"{name}_conv{i}"
        )(h)
        h = keras.layers.BatchNormalization(name=f"{name}_bn{i}")(h)
        if i == 1:
            h = keras.layers.Activation("relu", name=f"{name}_relu1")(h)
    h = _squeeze_excite(h, channels, name)
    if highway:  # shortcut + g * (block - shortcut) = g * block + (1 - g) * shortcut
        gate = keras.layers.Conv2D(channels, 1, activation="sigmoid", name=f"{name}_gate")(x)
        delta = keras.layers.Subtract(name=f"{name}_delta")([h, shortcut])
        gated = keras.layers.Multiply(name=f"{name}_gated")([gate, delta])
        h = keras.layers.Add(name=f"{name}_highway")([shortcut, gated])
    else:
        h = keras.layers.Add(name=f"{name}_add")([h, shortcut])
    return keras.layers.Activation("relu", name=f"{name}_out")(h)


def fat2019(
    input_shape: tuple[int, int, int],
    width: float = 1.0,
    dropout: float = 0.2,
    highway: bool = False,
    pretrained: str = "none",
    name: str = "fat2019",
) -> keras.Model:
    """The backbone: image (mels, frames, ch) -> feature map (mels/16, frames/16, 512 x width)."""
    image = keras.Input(input_shape, name="image")
    x = image
    for i, channels in enumerate(CHANNELS, 1):
        x = _block(x, max(1, round(channels * width)), highway, f"block{i}")
        x = keras.layers.AveragePooling2D((2, 1), padding="same", name=f"block{i}_freq_mean")(x)
        x = keras.layers.MaxPooling2D((1, 2), padding="same", name=f"block{i}_time_max")(x)
        x = keras.layers.Dropout(dropout, name=f"block{i}_dropout")(x)
    x = keras.layers.Conv2D(
        max(1, round(CHANNELS[-1] * width)), 3, padding="same", use_bias=False, name="conv9"
    )(x)
    x = keras.layers.BatchNormalization(name="conv9_bn")(x)
    x = keras.layers.Activation("relu", name="conv9_relu")(x)
    model = keras.Model(image, x, name=name)
    load_backbone_weights(model, pretrained)
    return model


def pixel_shuffle_pool(feature_map, model_cfg):
    """Pixel shuffle over time, max over time, mean over mel bins: (batch, 2 x channels)."""
    x = PixelShuffleTime(2, name="pixel_shuffle")(feature_map)
    x = Reduce(2, "max", name="pool_time_max")(x)  # (batch, freq, ch)
    return Reduce(1, "mean", name="pool")(x)


@register
class Log1p(keras.layers.Layer):
    """log(1 + x), elementwise (the clip length in seconds as the classifier reads it)."""

    def call(self, x):  # log(1 + x), not log1p: tf2onnx has no Log1p
        return ops.log(1.0 + ops.maximum(x, 0.0))


def clip_inputs() -> dict:
    """The model inputs beside the waveform: `clip_features` (128, 12), `clip_seconds` (1,)."""
    return {
        "clip_features": keras.Input((WINDOWS, len(STATISTICS)), name="clip_features"),
        "clip_seconds": keras.Input((1,), name="clip_seconds"),
    }


def global_branch(inputs: dict, width: float = 1.0):
    """The global-feature branch on the clip inputs: a bidirectional GRU over the 128 windows of
    statistics, max-pooled, with log(1 + clip seconds): (batch, 2 x 64 x width + 1). The GRU is
    unrolled over its 128 steps, so the model converts to TFLite builtin ops."""
    x = keras.layers.LayerNormalization(name="global_norm")(inputs["clip_features"])
    x = keras.layers.Bidirectional(
        keras.layers.GRU(max(4, round(64 * width)), return_sequences=True, unroll=True),
        name="global_gru",
    )(x)
    x = keras.layers.GlobalMaxPooling1D(name="global_pool")(x)
    length = Log1p(name="clip_log_seconds")(inputs["clip_seconds"])
    return keras.layers.Concatenate(name="global_with_length")([x, length])
