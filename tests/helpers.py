"""The shared layer check every registered birdtpu layer goes through (tests/test_layer_contract.py).

`check_layer` wraps one layer in a functional model and checks: the config round trip, the output
shape and trainable-weight count, a `.keras` save and reload (through `birdtpu.saving.load_model`)
with equal outputs in inference and in training, and a `jit_compile=True` train and predict step.
It runs under whichever Keras backend the process uses.
"""

from __future__ import annotations

import os

import keras
import numpy as np

from birdtpu.saving import load_model


def _as_list(x):
    return list(x) if isinstance(x, (list, tuple)) else [x]


def _numpy(x):
    return [keras.ops.convert_to_numpy(v) for v in _as_list(x)]


def _assert_close(a, b, atol, what):
    for i, (u, v) in enumerate(zip(_numpy(a), _numpy(b))):
        np.testing.assert_allclose(u, v, atol=atol, rtol=0, err_msg=f"{what} (output {i})")


def wrap(layer, inputs) -> keras.Model:
    """A functional model of `layer` alone, with keras.Input shapes taken from `inputs`."""
    arrays = [np.asarray(x) for x in _as_list(inputs)]
    ins = [keras.Input(shape=x.shape[1:], dtype=str(x.dtype)) for x in arrays]
    ins = ins if isinstance(inputs, (list, tuple)) else ins[0]
    return keras.Model(ins, layer(ins))


def check_layer(layer, inputs, expected_shape, trainable_weights: int, tmp_path, atol=1e-5):
    """The contract of a birdtpu layer (see module doc); `inputs`: an array or a list of arrays,
    `expected_shape`: the first output's shape on them."""
    cls = type(layer)
    config = layer.get_config()
    assert cls.from_config(config).get_config() == config, f"{cls.__name__}: config round trip"

    model = wrap(layer, inputs)
    feed = [np.asarray(x) for x in _as_list(inputs)]
    feed = feed if isinstance(inputs, (list, tuple)) else feed[0]
    path = os.path.join(str(tmp_path), f"{cls.__name__}.keras")
    model.save(path)  # before any training call, so both copies draw the same random numbers
    loaded = load_model(path)
    assert type(loaded.layers[-1]) is cls

    inferred = model(feed, training=False)
    assert tuple(_numpy(inferred)[0].shape) == tuple(expected_shape), cls.__name__
    assert len(layer.trainable_weights) == trainable_weights, (
        f"{cls.__name__}: {len(layer.trainable_weights)} trainable weights"
    )
    _assert_close(inferred, loaded(feed, training=False), atol, f"{cls.__name__} inference")
    _assert_close(
        model(feed, training=True), loaded(feed, training=True), atol, f"{cls.__name__} training"
    )

    targets = [np.zeros_like(v) for v in _numpy(inferred)]
    float_out = all(np.issubdtype(t.dtype, np.floating) for t in targets)
    model.compile(
        optimizer="sgd", loss=["mse"] * len(targets) if float_out else None, jit_compile=True
    )
    if float_out:
        history = model.fit(
            feed,
            targets if len(targets) > 1 else targets[0],
            epochs=1,
            batch_size=len(targets[0]),
            verbose=0,
        )
        assert np.isfinite(history.history["loss"][-1]), f"{cls.__name__}: jit train step"
    predicted = model.predict(feed, batch_size=len(targets[0]), verbose=0)
    assert all(np.all(np.isfinite(p)) for p in _numpy(predicted)), f"{cls.__name__}: jit predict"
    return model
