"""birdtpu.layers.stacker: LocallyConnected1D(filters, 1) for Keras 3, its initialiser and head."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from birdtpu.layers.stacker import OneHot, PerClassWeighting, ShiftedTanh  # noqa: E402

CLASSES, MODELS = 7, 4


def random_layer(filters, use_bias, seed=0):
    """A built PerClassWeighting with random kernel and bias, and those weights."""
    rng = np.random.default_rng(seed)
    layer = PerClassWeighting(filters, use_bias=use_bias)
    layer.build((None, CLASSES, MODELS))
    weights = [rng.normal(size=(CLASSES, MODELS, filters)).astype(np.float32)]
    if use_bias:
        weights.append(rng.normal(size=(CLASSES, filters)).astype(np.float32))
    layer.set_weights(weights)
    return layer, weights


def random_input(seed=1, batch=5):
    return np.random.default_rng(seed).random((batch, CLASSES, MODELS)).astype(np.float32)


@pytest.mark.parametrize("filters", [1, 3])
@pytest.mark.parametrize("use_bias", [True, False])
def test_equals_explicit_einsum(filters, use_bias):
    layer, weights = random_layer(filters, use_bias)
    x = random_input()
    expected = np.zeros((len(x), CLASSES, filters))
    for b in range(len(x)):
        for c in range(CLASSES):
            expected[b, c] = x[b, c] @ weights[0][c] + (weights[1][c] if use_bias else 0)
    out = keras.ops.convert_to_numpy(layer(x))
    assert out.shape == (len(x), CLASSES, filters)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("filters", [1, 3])
@pytest.mark.parametrize("use_bias", [True, False])
def test_equals_tf_keras_locally_connected_1d(filters, use_bias):
    tf_keras = pytest.importorskip(
        "tf_keras",
        reason="tf_keras (pip install tf-keras==2.17.0) holds the reference LocallyConnected1D; "
        "test_equals_explicit_einsum still checks the layer",
    )
    layer, weights = random_layer(filters, use_bias)
    reference = tf_keras.layers.LocallyConnected1D(filters, 1, use_bias=use_bias)
    reference.build((None, CLASSES, MODELS))
    assert [w.shape for w in reference.get_weights()] == [w.shape for w in weights]  # same layout
    reference.set_weights(weights)
    x = random_input()
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(layer(x)), reference(x).numpy(), rtol=0, atol=1e-5
    )


def test_one_hot_initialiser_and_unit_norm_constraint():
    kernel = keras.ops.convert_to_numpy(OneHot(-1)((CLASSES, MODELS, 1)))
    expected = np.zeros((CLASSES, MODELS, 1))
    expected[:, -1] = 1
    np.testing.assert_array_equal(kernel, expected)
    assert keras.ops.convert_to_numpy(OneHot(1)((2, 3, 2)))[:, :, 0].tolist() == [
        [0, 1, 0],
        [0, 1, 0],
    ]
    layer = PerClassWeighting(
        kernel_initializer=OneHot(-1), kernel_constraint=keras.constraints.UnitNorm(axis=1)
    )
    model = keras.Sequential([keras.Input((CLASSES, MODELS)), layer, keras.layers.Flatten()])
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss="mse")
    x = random_input(batch=32)
    model.fit(x, np.random.default_rng(2).random((32, CLASSES)), epochs=2, verbose=0)
    kernel = keras.ops.convert_to_numpy(layer.kernel)
    assert not np.allclose(kernel, expected)  # it trained
    np.testing.assert_allclose(
        np.linalg.norm(kernel, axis=1), 1.0, atol=1e-5
    )  # per class, over models


def test_shifted_tanh_is_a_scaled_sigmoid():
    x = np.linspace(-3, 4, 29).astype(np.float32)
    for offset, scale in [(1.6, 1.0), (0.5, 2.0)]:
        out = keras.ops.convert_to_numpy(ShiftedTanh(offset, scale)(x))
        np.testing.assert_allclose(out, 1 / (1 + np.exp(-2 * scale * (x - offset))), atol=1e-6)
    assert float(ShiftedTanh()(np.zeros(1, np.float32))[0]) == pytest.approx(
        1 / (1 + np.exp(3.2)), abs=1e-7
    )


def test_static_shapes_required():
    with pytest.raises(ValueError, match="static"):
        PerClassWeighting().build((None, None, MODELS))
    assert PerClassWeighting(3).compute_output_shape((None, CLASSES, MODELS)) == (None, CLASSES, 3)


def test_serialization_round_trip(tmp_path):
    inputs = keras.Input((CLASSES, MODELS))
    x = PerClassWeighting(
        2,
        kernel_initializer=OneHot(0),
        kernel_constraint=keras.constraints.UnitNorm(axis=1),
        name="weights",
    )(inputs)
    outputs = ShiftedTanh(1.2, 0.7, name="head")(x)
    model = keras.Model(inputs, outputs)
    layer = model.get_layer("weights")
    layer.set_weights(random_layer(2, True)[1])
    clone = PerClassWeighting.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    assert isinstance(clone.kernel_initializer, OneHot) and clone.kernel_initializer.index == 0
    assert keras.saving.get_registered_name(PerClassWeighting) == "birdtpu>PerClassWeighting"
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    x = random_input()
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loaded(x)), keras.ops.convert_to_numpy(model(x)), atol=1e-6
    )
    assert loaded.get_layer("head").get_config()["offset"] == 1.2


def test_jit_compile():
    layer, _ = random_layer(2, True)
    x = random_input()
    compiled = tf.function(lambda t: ShiftedTanh()(layer(t)), jit_compile=True)
    np.testing.assert_allclose(
        compiled(tf.constant(x)).numpy(),
        keras.ops.convert_to_numpy(ShiftedTanh()(layer(x))),
        atol=1e-6,
    )
    model = keras.Sequential(
        [keras.Input((CLASSES, MODELS)), PerClassWeighting(), keras.layers.Flatten()]
    )
    model.compile(optimizer="adam", loss="mse", jit_compile=True)
    history = model.fit(x, np.zeros((len(x), CLASSES)), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
