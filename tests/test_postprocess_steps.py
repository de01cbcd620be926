"""Post-processing steps (file-level confidence, rank blending, the `infer.postprocess` runner)
against hand-computed values, and the runner wired into `birdtpu predict`."""

import numpy as np
import pytest
from test_predict import config, models, scapes, submission  # noqa: F401 (models: a fixture)

from birdtpu.config import load_config
from birdtpu.errors import ConfigError, DataError
from birdtpu.infer import postprocess
from birdtpu.infer.predict import predict


def test_file_confidence_scales_by_the_class_maximum_to_the_power_alpha():
    probs = np.array([[0.25, 0.04], [0.1, 0.01]], np.float32)
    # class maxima 0.25 and 0.04; square roots 0.5 and 0.2
    np.testing.assert_allclose(
        postprocess.file_confidence(probs, 0.5), [[0.125, 0.008], [0.05, 0.002]], rtol=1e-6
    )
    probs = np.array([[0.2, 0.5], [0.8, 0.1]], np.float32)  # maxima 0.8 and 0.5
    out = postprocess.file_confidence(probs, 1.0)
    np.testing.assert_allclose(out, [[0.16, 0.25], [0.64, 0.05]], rtol=1e-6)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(postprocess.file_confidence(probs, 0.0), probs)


def test_rank_blend_averages_ranks_scaled_to_0_1():
    a = np.array([[0.1, 0.7], [0.3, 0.7], [0.2, 0.7]])
    b = np.array([[0.9, 0.2], [0.9, 0.2], [0.1, 0.2]])
    # class 0: a ranks 1, 3, 2 -> 0, 1, 0.5; b ranks 2.5, 2.5, 1 (tie) -> 0.75, 0.75, 0
    # class 1: every score tied -> 0.5
    out = postprocess.rank_blend([a, b])
    np.testing.assert_allclose(out, [[0.375, 0.5], [0.875, 0.5], [0.25, 0.5]], rtol=1e-6)
    assert out.dtype == np.float32
    # weights 3 : 1 -> 0.75 a + 0.25 b
    np.testing.assert_allclose(
        postprocess.rank_blend([a, b], [3, 1])[:, 0], [0.1875, 0.9375, 0.375], rtol=1e-6
    )
    np.testing.assert_array_equal(postprocess.rank_blend([a[:1], b[:1]]), [[0.5, 0.5]])


def test_rank_blend_names_bad_weights_and_shapes():
    a = np.zeros((3, 2))
    with pytest.raises(ConfigError, match=r"rank_blend: expected 2 weights >= 0"):
        postprocess.rank_blend([a, a], [1, -1])
    with pytest.raises(ConfigError, match=r"expected 2 weights"):
        postprocess.rank_blend([a, a], [1])
    with pytest.raises(DataError, match=r"rank_blend: expected models' \(rows, classes\)"):
        postprocess.rank_blend([a, a[:2]])


def test_steps_run_in_the_recipe_order_per_recording():
    probs = {"x": np.array([[0.0], [0.4], [0.8]])}
    # smooth [1, 2, 1] (ends renormalised): 0.4/3, 1.6/4, 2.0/3 = 2/15, 2/5, 2/3;
    # then times the maximum 2/3
    out = postprocess.apply_steps(probs, [{"smooth": [1, 2, 1]}, {"file_confidence": 1}])
    np.testing.assert_allclose(out["x"][:, 0], [4 / 45, 4 / 15, 4 / 9], rtol=1e-12)
    # the other way round: times 0.8 -> 0, 0.32, 0.64; then smoothed
    out = postprocess.apply_steps(probs, [{"file_confidence": 1}, {"smooth": [1, 2, 1]}])
    np.testing.assert_allclose(out["x"][:, 0], [8 / 75, 8 / 25, 8 / 15], rtol=1e-12)
    # each recording has its own maxima
    out = postprocess.apply_steps(
        {"a": np.array([[0.5], [0.25]]), "b": np.array([[1.0], [0.25]])},
        [{"file_confidence": 1.0}],
    )
    np.testing.assert_allclose(out["a"][:, 0], [0.25, 0.125])
    np.testing.assert_allclose(out["b"][:, 0], [1.0, 0.25])
    assert postprocess.apply_steps(probs, [])["x"] is probs["x"]


@pytest.mark.parametrize(
    "steps, line",
    [
        (
            [{"smoth": [1, 2, 1]}],
            "infer.postprocess[0]: unknown step 'smoth'; did you mean smooth?",
        ),
        (
            [{"smooth": [1]}, {"sharpen": 2}],
            "infer.postprocess[1]: unknown step 'sharpen'; valid: smooth, file_confidence",
        ),
        (
            [{"file_confidence": -1}],
            "infer.postprocess[0] (file_confidence): expected a number >= 0, got -1",
        ),
        (
            [{"file_confidence": "high"}],
            "infer.postprocess[0] (file_confidence): expected a number >= 0, got 'high'",
        ),
        (
            [{"smooth": [0.5, 0.5]}],
            "infer.postprocess[0] (smooth): expected an odd number of weights >= 0 with a "
            "positive sum, got [0.5, 0.5]",
        ),
        (
            ["smooth"],
            "infer.postprocess[0]: expected one `name: value` mapping such as "
            "{file_confidence: 0.5}, got 'smooth'",
        ),
        (
            [{"smooth": [1], "file_confidence": 1}],
            "infer.postprocess[0]: expected one `name: value` mapping such as "
            "{file_confidence: 0.5}, got {'smooth': [1], 'file_confidence': 1}",
        ),
    ],
)
def test_bad_steps_raise_one_line_naming_the_step(steps, line):
    with pytest.raises(ConfigError) as err:
        postprocess.apply_steps({"x": np.ones((2, 1))}, steps)
    assert str(err.value) == line


def test_recipe_syntax_of_infer_postprocess(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "infer:\n  postprocess:\n    - smooth: [0.25, 0.5, 0.25]\n    - file_confidence: 0.5\n"
    )
    steps = [{"smooth": [0.25, 0.5, 0.25]}, {"file_confidence": 0.5}]
    assert load_config(str(recipe)).infer.postprocess == steps
    flag = "infer.postprocess=[{smooth: [0.25, 0.5, 0.25]}, {file_confidence: 0.5}]"
    assert load_config(None, [flag]).infer.postprocess == steps
    assert load_config(None).infer.postprocess == []


def test_predict_fails_on_a_bad_step_before_opening_a_model(tmp_path):
    cfg = config(tmp_path, str(tmp_path / "missing.keras"), "infer.postprocess=[{sharpen: 2}]")
    with pytest.raises(ConfigError, match=r"^infer.postprocess\[0\]: unknown step 'sharpen'"):
        predict(cfg, log=lambda *_: None)


def test_predict_runs_the_steps_per_recording(models, tmp_path):  # noqa: F811
    scapes(tmp_path / "scapes")
    quiet = {"log": lambda *_: None}
    predict(config(tmp_path, models["a"]), **quiet)
    plain = submission(tmp_path).set_index("row_id")
    steps = "infer.postprocess=[{smooth: [1, 2, 1]}, {file_confidence: 0.5}]"
    predict(config(tmp_path, models["a"], steps), **quiet)
    stepped = submission(tmp_path).set_index("row_id")
    assert stepped.index.tolist() == plain.index.tolist()
    for stem in ("s0", "s1"):
        rows = [i for i in plain.index if i.rsplit("_", 1)[0] == stem]
        p = plain.loc[rows].to_numpy(np.float32)
        expect = postprocess.file_confidence(postprocess.smooth(p, [1, 2, 1]), 0.5)
        np.testing.assert_allclose(stepped.loc[rows].to_numpy(), expect, atol=1e-6)
