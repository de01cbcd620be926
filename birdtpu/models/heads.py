"""Heads on a backbone's feature map (batch, freq, time, channels): the clip classifier and the
sound-event-detection (SED) head of PANNs and the BirdCLEF 2023 winners.

SED head: mean over frequency, a max + mean smoothing over 3 time steps, a hidden layer, then two
per-segment outputs: attention (tanh, softmax over time) and class probabilities. Clipwise =
attention-weighted sum of the segment probabilities; framewise = segments repeated back to the
spectrogram's frame rate. The model's output blends clipwise with the maximum over frames:
`w * clipwise + (1 - w) * max_t framewise` (`model.sed_clip_weight`); `sed_outputs` exposes all
of them. Every layer is a registered Keras layer (no Lambda), so `.keras` files load in safe mode.
"""

from __future__ import annotations

import keras
from keras import ops

from birdtpu.saving import register


@register
class Reduce(keras.layers.Layer):
    """Mean or max over one axis (dropped)."""

    def __init__(self, axis: int, how: str = "mean", **kwargs):
        super().__init__(**kwargs)
        if how not in ("mean", "max"):
            raise ValueError(f"how must be 'mean' or 'max', not {how!r}")
        self.axis, self.how = int(axis), how

    def call(self, x):
        return ops.mean(x, axis=self.axis) if self.how == "mean" else ops.max(x, axis=self.axis)

    def compute_output_shape(self, input_shape):
        shape = list(input_shape)
        del shape[self.axis]
        return tuple(shape)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "how": self.how}


@register
class AttentionPool(keras.layers.Layer):
    """[attention (batch, time, classes) in [-1, 1], probabilities (same)] -> (batch, classes):
    the probabilities averaged over time with softmax-over-time attention weights."""

    def __init__(self, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)

    def call(self, inputs):
        att, prob = (ops.cast(t, "float32") for t in inputs)
        weights = ops.softmax(att, axis=1)
        return ops.sum(weights * prob, axis=1)

    def compute_output_shape(self, input_shape):
        shape = input_shape[1]
        return (shape[0], shape[2])


@register
class FrameUpsample(keras.layers.Layer):
    """(batch, segments, classes) -> (batch, frames, classes): each segment repeated over the
    frames it covers (ceil(frames / segments) each), cut to `frames`."""

    def __init__(self, frames: int, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.frames = int(frames)

    def call(self, x):
        ratio = -(-self.frames // x.shape[1])
        return ops.repeat(ops.cast(x, "float32"), ratio, axis=1)[:, : self.frames]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.frames, input_shape[2])

    def get_config(self):
        return {**super().get_config(), "frames": self.frames}


@register
class SEDBlend(keras.layers.Layer):
    """[clipwise (batch, classes), framewise (batch, frames, classes)] ->
    `clip_weight * clipwise + (1 - clip_weight) * max over frames of framewise`."""

    def __init__(self, clip_weight: float = 0.5, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.clip_weight = float(clip_weight)

    def call(self, inputs):
        clip, frames = (ops.cast(t, "float32") for t in inputs)
        return self.clip_weight * clip + (1.0 - self.clip_weight) * ops.max(frames, axis=1)

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "clip_weight": self.clip_weight}


def classifier(x, num_classes: int, model_cfg):
    """Pooled features -> optional neck -> dropout -> Dense -> float32 probabilities."""
    if model_cfg.neck:
        x = keras.layers.Dense(model_cfg.neck, activation="relu", name="neck")(x)
    x = keras.layers.Dropout(model_cfg.dropout, name="head_dropout")(x)
    x = keras.layers.Dense(num_classes, name="classifier")(x)
    return keras.layers.Activation(model_cfg.activation, dtype="float32", name="probabilities")(x)


def sed_head(feature_map, num_classes: int, model_cfg, frames: int):
    """The SED head on (batch, freq, time, channels): float32 blended probabilities (batch, classes).

    Layers named `clipwise`, `segmentwise` and `framewise` hold the PANNs outputs.
    """
    x = Reduce(1, "mean", name="sed_freq_mean")(feature_map)  # (batch, time, channels)
    smooth_max = keras.layers.MaxPooling1D(3, 1, padding="same", name="sed_smooth_max")(x)
    smooth_mean = keras.layers.AveragePooling1D(3, 1, padding="same", name="sed_smooth_mean")(x)
    x = keras.layers.Add(name="sed_smooth")([smooth_max, smooth_mean])
    x = keras.layers.Dropout(model_cfg.dropout, name="sed_dropout")(x)
    x = keras.layers.Dense(model_cfg.neck or x.shape[-1], activation="relu", name="sed_hidden")(x)
    x = keras.layers.Dropout(model_cfg.dropout, name="head_dropout")(x)
    att = keras.layers.Dense(num_classes, activation="tanh", dtype="float32", name="sed_attention")(
        x
    )
    seg = keras.layers.Dense(
        num_classes, activation=model_cfg.activation, dtype="float32", name="segmentwise"
    )(x)
    clip = AttentionPool(name="clipwise")([att, seg])
    framewise = FrameUpsample(frames, name="framewise")(seg)
    return SEDBlend(model_cfg.sed_clip_weight, name="probabilities")([clip, framewise])


def sed_outputs(model: keras.Model) -> keras.Model:
    """The same weights with a dict of outputs: clipwise (batch, classes), segmentwise
    (batch, segments, classes), framewise (batch, frames, classes) and probabilities (the blend)."""
    names = ("clipwise", "segmentwise", "framewise", "probabilities")
    try:
        outputs = {name: model.get_layer(name).output for name in names}
    except ValueError:
        raise ValueError(f"{model.name} has no SED head (build it with model.head: sed)") from None
    return keras.Model(model.input, outputs, name=f"{model.name}_sed_outputs")
