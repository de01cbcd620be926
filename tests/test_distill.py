"""Distillation: soft targets, the distillation loss and the embedding cosine loss against NumPy
formulas and numbers worked out by hand, on both backends; the loss compiles back from a save."""

import math

import keras
import numpy as np
import pytest

from birdtpu.errors import ConfigError
from birdtpu.saving import load_model
from birdtpu.train.distill import DistillationLoss, soft_targets

pytestmark = pytest.mark.backends
RNG = np.random.default_rng(0)
EPS = 1e-7


def np_logit(p):
    p = np.clip(p, EPS, 1 - EPS)
    return np.log(p) - np.log1p(-p)


def np_sigmoid(z):
    return 1 / (1 + np.exp(-z))


def np_bce(t, s):
    return -(t * np.log(s) + (1 - t) * np.log(1 - s)).mean(axis=-1)


def np_distill(y, teacher, p, alpha, t, from_logits):
    z = np_logit(p)
    soft = np_sigmoid((teacher if from_logits else np_logit(teacher)) / t)
    per_row = alpha * np_bce(y, np_sigmoid(z)) + (1 - alpha) * t * t * np_bce(
        soft, np_sigmoid(z / t)
    )
    return per_row.mean()


def test_soft_targets_by_hand():
    # sigmoid(ln 3) = 3/4; at T = 2, sigmoid(ln 3 / 2) = sqrt(3) / (1 + sqrt(3))
    half = math.sqrt(3) / (1 + math.sqrt(3))
    logits = np.array([[0.0, math.log(3)]], np.float32)
    np.testing.assert_allclose(soft_targets(logits, 1.0, True), [[0.5, 0.75]], rtol=1e-6)
    np.testing.assert_allclose(soft_targets(logits, 2.0, True), [[0.5, half]], rtol=1e-6)
    probs = np.array([[0.5, 0.75]], np.float32)
    np.testing.assert_allclose(soft_targets(probs, 2.0, False), [[0.5, half]], rtol=1e-6)
    # probabilities 0 and 1 are clipped to finite logits
    assert np.isfinite(keras.ops.convert_to_numpy(soft_targets([[0.0, 1.0]], 2.0, False))).all()


def test_distillation_loss_by_hand():
    # y = 0, p = 0.8 (z = ln 4), teacher logit 0, alpha 1/4, T = 2:
    # hard: -ln 0.2; soft: target sigmoid(0) = 1/2, student sigmoid(ln 4 / 2) = 2/3,
    #   BCE = -(ln(2/3) + ln(1/3)) / 2 = ln 3 - (ln 2) / 2
    expect = 0.25 * -math.log(0.2) + 0.75 * 4 * (math.log(3) - math.log(2) / 2)
    loss = DistillationLoss(alpha=0.25, temperature=2.0, teacher_from_logits=True)
    value = loss(np.array([[0.0, 0.0]], np.float32), np.array([[0.8]], np.float32))
    assert float(value) == pytest.approx(expect, rel=1e-5)
    assert expect == pytest.approx(2.6584755, rel=1e-6)


@pytest.mark.parametrize("from_logits", [True, False])
@pytest.mark.parametrize("alpha, t", [(0.5, 2.0), (1.0, 3.0), (0.0, 1.0), (0.3, 0.5)])
def test_distillation_loss_matches_numpy(alpha, t, from_logits):
    y = (RNG.uniform(size=(6, 4)) > 0.5).astype(np.float32)
    p = RNG.uniform(0.01, 0.99, (6, 4)).astype(np.float32)
    teacher = (RNG.normal(0, 2, (6, 4)) if from_logits else RNG.uniform(0.01, 0.99, (6, 4))).astype(
        np.float32
    )
    loss = DistillationLoss(alpha=alpha, temperature=t, teacher_from_logits=from_logits)
    value = float(loss(np.concatenate([y, teacher], axis=-1), p))
    assert value == pytest.approx(np_distill(y, teacher, p, alpha, t, from_logits), rel=1e-4)


def test_distillation_loss_alpha_one_is_keras_bce():
    y = (RNG.uniform(size=(5, 3)) > 0.5).astype(np.float32)
    p = RNG.uniform(0.01, 0.99, (5, 3)).astype(np.float32)
    teacher = RNG.uniform(size=(5, 3)).astype(np.float32)
    ours = DistillationLoss(alpha=1.0)(np.concatenate([y, teacher], -1), p)
    assert float(ours) == pytest.approx(float(keras.losses.BinaryCrossentropy()(y, p)), rel=1e-5)


def test_distillation_loss_bad_settings_say_which():
    with pytest.raises(ConfigError, match=r"DistillationLoss: alpha must lie in \[0, 1\], got 1.5"):
        DistillationLoss(alpha=1.5)
    with pytest.raises(ConfigError, match="DistillationLoss: temperature must be above 0, got 0"):
        DistillationLoss(temperature=0)


def test_a_model_trained_with_it_compiles_back(tmp_path):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((5,))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="sigmoid")(inputs))
    loss = DistillationLoss(alpha=0.7, temperature=3.0, teacher_from_logits=True)
    model.compile(optimizer="adam", loss=loss)
    x = RNG.normal(size=(8, 5)).astype(np.float32)
    y = np.concatenate([(RNG.uniform(size=(8, 3)) > 0.5), RNG.normal(size=(8, 3))], axis=-1).astype(
        np.float32
    )
    model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    path = str(tmp_path / "student.keras")
    model.save(path)
    back = load_model(path, compile=True)
    assert isinstance(back.loss, DistillationLoss)
    assert back.loss.get_config() == loss.get_config()
    assert back.evaluate(x, y, verbose=0) == pytest.approx(
        model.evaluate(x, y, verbose=0), rel=1e-5
    )
