"""Pretrain, then fine-tune: start a model from another run's checkpoint (`model.init_from`).

A `.keras` file is loaded as a model and its weights are copied layer by layer, matched by
name (nested backbones by `<backbone>/<layer>`; layers with Keras' automatic names, such as
EfficientNet's input normalisation, by their place among the layers of their class). A layer
whose weight shapes differ (the classifier of another class count) or that the checkpoint lacks
keeps its fresh initial values.
A `.weights.h5` file (from `model.save_weights`) holds weights by model structure, not by
name: it must come from a model built with the same `model` settings; Keras skips the layers
whose shapes differ. Either way the loaded and skipped layers are reported.
"""

from __future__ import annotations

import re
import warnings

import numpy as np

from birdtpu import saving
from birdtpu.errors import ConfigError
from birdtpu.models.weights import local_copy


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def named_layers(model, prefix: str = ""):
    """(path, layer) for every layer with its own weights; nested models' layers as `<model>/<layer>`."""
    for layer in model.layers:
        if hasattr(layer, "layers"):
            yield from named_layers(layer, f"{prefix}{layer.name}/")
        elif layer.weights:
            yield f"{prefix}{layer.name}", layer


def _auto_keys(model) -> dict:
    """path -> `<parent>/<Class>#<n>` for layers with Keras' automatic names (`normalization_3`),
    which depend on what else the process built; the n-th layer of its class in its parent."""
    keys, counts = {}, {}
    for path, layer in named_layers(model):
        parent, cls = path.rpartition("/")[0], type(layer).__name__
        n = counts[(parent, cls)] = counts.get((parent, cls), -1) + 1
        if re.fullmatch(rf"{_snake(cls)}(_\d+)?", layer.name):
            keys[path] = f"{parent}/{cls}#{n}"
    return keys


def _copy_by_name(model, source) -> tuple[list[str], list[str]]:
    available = dict(named_layers(source))
    by_class = {key: available[path] for path, key in _auto_keys(source).items()}
    auto = _auto_keys(model)
    loaded, skipped = [], []
    for key, layer in named_layers(model):
        other = available.get(key) or by_class.get(auto.get(key))
        if other is None:
            skipped.append(f"{key} (not in the checkpoint)")
        elif [tuple(w.shape) for w in layer.weights] != [tuple(w.shape) for w in other.weights]:
            skipped.append(
                f"{key} (shape {[tuple(w.shape) for w in other.weights][0]} -> "
                f"{[tuple(w.shape) for w in layer.weights][0]})"
            )
        else:
            layer.set_weights(other.get_weights())
            loaded.append(key)
    return loaded, skipped


def _load_structured(model, path: str) -> tuple[list[str], list[str]]:
    """Keras' structural loader with skip_mismatch; a layer counts as loaded when its weights changed."""
    layers = list(named_layers(model))
    before = [[np.array(w) for w in layer.get_weights()] for _, layer in layers]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the skipped layers are reported below
        try:
            model.load_weights(path, skip_mismatch=True)
        except (ValueError, OSError) as err:
            raise ConfigError(
                f"model.init_from: {path} does not fit this model "
                f"({str(err).splitlines()[0][:160]})"
            ) from None
    loaded, skipped = [], []
    for (key, layer), old in zip(layers, before):
        changed = any(not np.array_equal(a, b) for a, b in zip(old, layer.get_weights()))
        (loaded if changed else skipped).append(key)
    return loaded, skipped


def init_from(model, path: str, log=print) -> dict:
    """Load the pretrained checkpoint `path` (.keras or .weights.h5, local or gs://) into `model`.

    Returns {"loaded": [layer paths], "skipped": [layer paths with the reason]}; ConfigError
    when nothing matches.
    """
    if not path.endswith((".keras", ".weights.h5")):
        raise ConfigError(f"model.init_from: {path}: expected a .keras or .weights.h5 file")
    local = local_copy(path, "model.init_from")
    if path.endswith(".keras"):
        try:
            source = saving.load_model(local)
        except (ValueError, OSError, TypeError) as err:
            raise ConfigError(
                f"model.init_from: cannot load {path} ({str(err).splitlines()[0][:160]})"
            ) from None
        loaded, skipped = _copy_by_name(model, source)
    else:
        loaded, skipped = _load_structured(model, local)
    if not loaded:
        raise ConfigError(
            f"model.init_from: no layer of {path} matches {model.name} (another architecture?)"
        )
    log(
        f"fit: init_from {path}: {len(loaded)} layers loaded, {len(skipped)} kept fresh"
        + (f" ({', '.join(skipped[:4])}{', ...' if len(skipped) > 4 else ''})" if skipped else "")
    )
    return {"loaded": loaded, "skipped": skipped}
