"""EfficientNet B0-B7 and V2 B0-B3/S backbones from keras.applications."""

from __future__ import annotations

import os
import tempfile

import keras

from birdtpu.errors import ConfigError

_APPS = {
    **{f"efficientnet_b{i}": f"EfficientNetB{i}" for i in range(8)},
    **{f"efficientnetv2_b{i}": f"EfficientNetV2B{i}" for i in range(4)},
    "efficientnetv2_s": "EfficientNetV2S",
}


def _local_copy(path: str) -> str:
    """A local file for `path` (gs:// weights are copied to a temporary file)."""
    if "://" not in path:
        if not os.path.exists(path):
            raise ConfigError(f"model.pretrained: weights file {path} not found")
        return path
    import tensorflow as tf

    if not tf.io.gfile.exists(path):
        raise ConfigError(f"model.pretrained: weights file {path} not found")
    local = os.path.join(tempfile.mkdtemp(prefix="birdtpu-weights-"), os.path.basename(path))
    tf.io.gfile.copy(path, local, overwrite=True)
    return local


def efficientnet(name: str, input_shape: tuple[int, int, int], pretrained: str) -> keras.Model:
    """A headless backbone (feature map output). `pretrained`: imagenet, none or a weights file.

    A weights file is what `backbone.save_weights` wrote, or the keras.applications
    `*_notop.h5` file for offline notebooks.
    """
    cls = getattr(keras.applications, _APPS[name])
    weights = {"imagenet": "imagenet", "none": None, "": None}.get(pretrained, "file")
    try:
        model = cls(include_top=False, weights=None if weights == "file" else weights,
                    input_shape=input_shape)
    except Exception as err:  # the ImageNet download needs internet
        if weights == "imagenet":
            raise ConfigError(f"model.pretrained: could not load ImageNet weights for {name} "
                              f"({str(err).splitlines()[0][:120]}); offline, give a weights file path") from None
        raise
    if weights == "file":
        model.load_weights(_local_copy(pretrained))
    return model


NAMES = tuple(_APPS)
