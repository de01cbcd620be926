"""EfficientNet B0-B7 and V2 B0-B3/S backbones from keras.applications."""

from __future__ import annotations

import keras

from birdtpu.errors import ConfigError
from birdtpu.models.weights import load_backbone_weights

MIN_SIZE = 32  # the smallest image side keras.applications accepts
DEFAULT_DROP_CONNECT = 0.2  # keras.applications' drop_connect_rate; block b drops b / blocks of it

_APPS = {
    **{f"efficientnet_b{i}": f"EfficientNetB{i}" for i in range(8)},
    **{f"efficientnetv2_b{i}": f"EfficientNetV2B{i}" for i in range(4)},
    "efficientnetv2_s": "EfficientNetV2S",
}


def efficientnet(
    name: str, input_shape: tuple[int, int, int], pretrained: str, drop_connect_rate: float = 0.2
) -> keras.Model:
    """A headless backbone (feature map output). `pretrained`: imagenet, none or a weights file.

    A weights file is what `backbone.save_weights` wrote, or the keras.applications
    `*_notop.h5` file for offline notebooks. `drop_connect_rate` is the stochastic-depth rate of
    the last block (keras.applications' argument, which its public constructors do not expose).
    """
    cls = getattr(keras.applications, _APPS[name])
    imagenet = pretrained == "imagenet"
    if min(input_shape[:2]) < MIN_SIZE:  # five stride-2 stages with valid padding
        raise ConfigError(
            f"model.name: {name} needs an image of at least {MIN_SIZE} x {MIN_SIZE}; "
            f"frontend.n_mels x frontend.frames is {input_shape[0]} x {input_shape[1]}"
        )
    try:
        model = cls(
            include_top=False, weights="imagenet" if imagenet else None, input_shape=input_shape
        )
    except Exception as err:  # the ImageNet download needs internet
        if imagenet:
            raise ConfigError(
                f"model.pretrained: could not load ImageNet weights for {name} "
                f"({str(err).splitlines()[0][:120]}); offline, give a weights file path"
            ) from None
        raise
    if not imagenet:
        load_backbone_weights(model, pretrained)
    for layer in model.layers:  # the per-block drop-connect rates scale with drop_connect_rate
        if isinstance(layer, keras.layers.Dropout):
            layer.rate = layer.rate * drop_connect_rate / DEFAULT_DROP_CONNECT
    return model


NAMES = tuple(_APPS)
