"""`birdtpu predict`: odd recordings, test-time augmentation, context, blends, smoothing, file-level
rows, exports, the sample submission's order, scoring; and (slow) a trained model finds the
calls of a synthetic soundscape in the right windows."""

import os

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from conftest import run_cli, tiny_overrides
from test_export import save_tiny_model

from birdtpu.cli import main
from birdtpu.config import load_config
from birdtpu.data.audio import write_audio
from birdtpu.errors import DataError
from birdtpu.infer import postprocess
from birdtpu.infer.export import export_model
from birdtpu.infer.parity import synthetic_windows
from birdtpu.infer.predict import predict, score_recording
from birdtpu.infer.runners import KerasRunner, open_model
from birdtpu.infer.windows import windows

RATE = 16000


def tone(seconds, rate=RATE, freq=1000.0, channels=1):
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * np.random.default_rng(0).standard_normal(
        len(t)
    )
    return (
        np.repeat(wave[:, None], channels, axis=1).astype(np.float32)
        if channels > 1
        else wave.astype(np.float32)
    )


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict_models")
    return {
        name: save_tiny_model(str(root / name), seed=seed) for name, seed in (("a", 0), ("b", 1))
    }


def scapes(folder, lengths=(4.0, 6.0)):
    """Soundscapes `s<i>.ogg` of the given lengths at 16 kHz."""
    os.makedirs(folder, exist_ok=True)
    for i, seconds in enumerate(lengths):
        write_audio(os.path.join(folder, f"s{i}.ogg"), tone(seconds, freq=800 + 700 * i), RATE)
    return folder


def config(tmp_path, model, *extra):
    return load_config(
        None,
        [
            f"data.root={tmp_path}",
            "data.soundscape_dir=scapes",
            f"infer.model={model}",
            "infer.window_seconds=2",
            f"infer.submission={tmp_path}/sub.csv",
            f"output_dir={tmp_path}/runs",
            *extra,
        ],
    )


def submission(tmp_path):
    return pd.read_csv(tmp_path / "sub.csv")


def test_odd_recordings_are_predicted_or_named_and_counted(models, tmp_path, capsys):
    folder = tmp_path / "scapes"
    folder.mkdir()
    write_audio(str(folder / "a_short.wav"), tone(0.3), RATE)
    write_audio(str(folder / "b_long.flac"), tone(600.0), RATE)  # ten minutes
    write_audio(str(folder / "c_stereo48k.ogg"), tone(3.0, rate=48000, channels=2), 48000)
    write_audio(str(folder / "d_silent.wav"), np.zeros(RATE, np.float32), RATE)
    nan_wave = tone(2.0)
    nan_wave[100:110] = np.nan
    sf.write(str(folder / "e_nan.wav"), nan_wave, RATE, subtype="FLOAT")
    (folder / "f_empty.wav").write_bytes(b"")
    (folder / "g_corrupt.ogg").write_bytes(os.urandom(3000))
    code = main(
        [
            "predict",
            *[
                x
                for o in [
                    f"data.root={tmp_path}",
                    "data.soundscape_dir=scapes",
                    f"infer.model={models['a']}",
                    "infer.window_seconds=2",
                    f"infer.submission={tmp_path}/sub.csv",
                ]
                for x in ("--set", o)
            ],
        ]
    )
    err = capsys.readouterr()
    assert code == 1  # predicted, with recordings left out
    assert "skip" in err.err and "f_empty.wav" in err.err and "g_corrupt.ogg" in err.err
    assert "e_nan.wav: 10 non-finite sample(s) at 16000 Hz set to 0" in err.err
    assert "2 skipped: " in err.out and "f_empty.wav" in err.out
    sub = submission(tmp_path)
    counts = sub.row_id.str.rsplit("_", n=1).str[0].value_counts()
    assert counts.to_dict() == {
        "a_short": 1,
        "b_long": 300,
        "c_stereo48k": 2,
        "d_silent": 1,
        "e_nan": 1,
    }
    assert (
        sub.row_id.iloc[0] == "a_short_2"
        and "b_long_600" in set(sub.row_id)
        and "c_stereo48k_4" in set(sub.row_id)
    )
    values = sub[["aa", "bb", "cc"]].to_numpy()
    assert np.isfinite(values).all() and values.min() >= 0 and values.max() <= 1
    np.testing.assert_allclose(values.sum(1), 1.0, atol=1e-4)  # softmax rows


def test_stereo_48k_is_scored_as_its_mono_16k_mix(models, tmp_path):
    stereo = tone(3.0, rate=48000, channels=2)
    stereo[:, 1] *= 0.2
    scapes_dir = tmp_path / "scapes"
    scapes_dir.mkdir()
    write_audio(str(scapes_dir / "st.wav"), stereo, 48000)
    predict(config(tmp_path, models["a"]), log=lambda *_: None)
    import soxr

    mono = soxr.resample(stereo.mean(axis=1), 48000, RATE, quality="HQ").astype(np.float32)
    expected = KerasRunner(models["a"])(windows(mono, RATE, 2.0)[0])
    np.testing.assert_allclose(
        submission(tmp_path)[["aa", "bb", "cc"]].to_numpy(), expected, atol=2e-3
    )


def test_only_broken_recordings_is_one_clear_error(models, tmp_path):
    (tmp_path / "scapes").mkdir()
    (tmp_path / "scapes" / "x.wav").write_bytes(b"")
    with pytest.raises(
        DataError, match=r"none of the 1 recordings could be predicted \(e.g. .*x.wav"
    ):
        predict(config(tmp_path, models["a"]), log=lambda *_: None)
    assert not (tmp_path / "sub.csv").exists()


def test_shifted_copies_are_averaged(models):
    runner = KerasRunner(models["a"])
    wave = tone(5.0, freq=1500) * np.linspace(0, 1, 5 * RATE, dtype=np.float32)
    probs, ends = score_recording(runner, wave, 2.0, shifts=[-0.5, 0.5])
    manual = np.mean(
        [runner(windows(wave, RATE, 2.0, shift=s)[0]) for s in (0.0, -0.5, 0.5)], axis=0
    )
    plain, _ = score_recording(runner, wave, 2.0)
    assert ends == [2, 4, 6]
    np.testing.assert_allclose(probs, manual, atol=1e-6)
    assert np.abs(probs - plain).max() > 1e-4  # the shifts changed something


def test_a_longer_clip_gets_context_from_the_neighbours(tmp_path):
    model = save_tiny_model(str(tmp_path / "ctx"), clip_seconds=3.0)
    runner = KerasRunner(model)
    wave = tone(6.0, freq=2000) * np.linspace(0.1, 1, 6 * RATE, dtype=np.float32)
    probs, ends = score_recording(runner, wave, 2.0)
    assert ends == [2, 4, 6]
    np.testing.assert_allclose(probs, runner(windows(wave, RATE, 2.0, context=0.5)[0]), atol=1e-6)
    short = KerasRunner(save_tiny_model(str(tmp_path / "short"), clip_seconds=1.0))
    with pytest.raises(
        DataError, match=r"its clip \(1.0 s\) is shorter than infer.window_seconds \(2.0 s\)"
    ):
        score_recording(short, wave, 2.0)


def test_models_are_averaged_and_postprocessed(models, tmp_path):
    scapes(tmp_path / "scapes")
    single = {}
    for name in ("a", "b"):
        predict(config(tmp_path, models[name]), log=lambda *_: None)
        single[name] = submission(tmp_path).set_index("row_id")
    predict(config(tmp_path, f"{models['a']},{models['b']}"), log=lambda *_: None)
    both = submission(tmp_path).set_index("row_id")
    np.testing.assert_allclose(
        both.to_numpy(), (single["a"].to_numpy() + single["b"].to_numpy()) / 2, atol=1e-6
    )

    predict(config(tmp_path, models["a"], "infer.smooth=[1, 2, 1]"), log=lambda *_: None)
    smoothed = submission(tmp_path).set_index("row_id")
    for stem in ("s0", "s1"):
        rows = [i for i in single["a"].index if i.rsplit("_", 1)[0] == stem]
        expect = postprocess.smooth(single["a"].loc[rows].to_numpy(np.float32), [1, 2, 1])
        np.testing.assert_allclose(smoothed.loc[rows].to_numpy(), expect, atol=1e-6)

    predict(config(tmp_path, models["a"], "infer.aggregate=max"), log=lambda *_: None)
    files = submission(tmp_path).set_index("row_id")
    assert files.index.tolist() == ["s0", "s1"]
    np.testing.assert_allclose(
        files.loc["s1"].to_numpy(),
        single["a"].loc[["s1_2", "s1_4", "s1_6"]].max().to_numpy(),
        atol=1e-6,
    )


def test_models_at_other_sample_rates_blend_on_one_grid(models, tmp_path):
    scapes(tmp_path / "scapes", lengths=(4.0, 5.0))
    other = save_tiny_model(str(tmp_path / "fast"), sample_rate=22050, seed=2)
    single = []
    for model in (models["a"], other):
        predict(config(tmp_path, model), log=lambda *_: None)
        single.append(submission(tmp_path).set_index("row_id"))
    predict(config(tmp_path, f"{models['a']},{other}"), log=lambda *_: None)
    both = submission(tmp_path).set_index("row_id")
    assert (
        both.index.tolist() == ["s0_2", "s0_4", "s1_2", "s1_4", "s1_6"] == single[0].index.tolist()
    )
    np.testing.assert_allclose(
        both.to_numpy(),
        (single[0].to_numpy() + single[1].loc[both.index].to_numpy()) / 2,
        atol=1e-6,
    )


def test_models_with_other_classes_are_not_blended(models, tmp_path):
    scapes(tmp_path / "scapes")
    other = save_tiny_model(str(tmp_path / "other"), classes=("aa", "bb", "zz"))
    with pytest.raises(DataError, match="classes differ"):
        predict(config(tmp_path, f"{models['a']},{other}"), log=lambda *_: None)


def test_the_stacker_blends_the_models(models, tmp_path):
    ensemble = pytest.importorskip("birdtpu.ensemble")
    scapes(tmp_path / "scapes")
    tables = []
    for name in ("a", "b"):
        predict(config(tmp_path, models[name]), log=lambda *_: None)
        tables.append(submission(tmp_path))
    stacker = ensemble.Stacker(["aa", "bb", "cc"], ["a", "b"])
    stacker.get_layer("label_mixing").set_weights(
        [np.array([[1.0, 0.5, 0], [0, 1, 0], [0, 0.3, 1]]), np.zeros(3)]
    )
    ensemble.save_stacker(stacker, str(tmp_path / "stacker.keras"))
    predict(
        config(tmp_path, f"{models['a']},{models['b']}", f"infer.stacker={tmp_path}/stacker.keras"),
        log=lambda *_: None,
    )
    expected = ensemble.apply_stacker(stacker, tables)
    np.testing.assert_allclose(
        submission(tmp_path)[["aa", "bb", "cc"]].to_numpy(),
        expected[["aa", "bb", "cc"]].to_numpy(),
        atol=1e-5,
    )
    mean = (tables[0][["aa", "bb", "cc"]].to_numpy() + tables[1][["aa", "bb", "cc"]].to_numpy()) / 2
    assert (
        np.abs(submission(tmp_path)[["aa", "bb", "cc"]].to_numpy() - mean).max() > 1e-3
    )  # not the plain mean


def test_columns_follow_the_sample_submission(models, tmp_path):
    scapes(tmp_path / "scapes")
    (tmp_path / "sample_submission.csv").write_text("row_id,cc,aa,bb\nx_5,0,0,0\n")
    predict(config(tmp_path, models["a"]), log=lambda *_: None)  # found in data.root
    assert list(submission(tmp_path).columns) == ["row_id", "cc", "aa", "bb"]
    predict(config(tmp_path, models["a"], "infer.sample_submission=none"), log=lambda *_: None)
    assert list(submission(tmp_path).columns) == ["row_id", "aa", "bb", "cc"]


def test_an_export_predicts_like_its_keras_model_and_is_checked(models, tmp_path):
    scapes(tmp_path / "scapes")
    predict(config(tmp_path, models["a"]), log=lambda *_: None)
    keras_sub = submission(tmp_path)
    export = export_model(
        models["a"],
        "tflite",
        out=str(tmp_path / "m" / "fp32.tflite"),
        check=synthetic_windows(32000, RATE, 4),
        log=lambda *_: None,
    )["path"]
    notes = []
    summary = predict(config(tmp_path, export), log=notes.append)
    np.testing.assert_allclose(
        submission(tmp_path)[["aa", "bb", "cc"]].to_numpy(),
        keras_sub[["aa", "bb", "cc"]].to_numpy(),
        atol=1e-4,
    )
    (check,) = summary["export_checks"].values()
    assert (
        check["max_abs_diff"] <= 1e-4 and check["check_windows"] == 2
    )  # the first recording has 2 windows
    assert any("largest difference" in n for n in notes)


def test_truth_next_to_the_soundscapes_is_scored(models, tmp_path):
    scapes(tmp_path / "scapes")
    pd.DataFrame(
        {
            "row_id": ["s0_2", "s0_4", "s1_2", "s1_4", "s1_6"],
            "aa": [1, 0, 0, 1, 0],
            "bb": [0, 1, 0, 0, 1],
            "cc": [0, 0, 1, 0, 0],
        }
    ).to_csv(tmp_path / "soundscape_labels.csv", index=False)
    summary = predict(config(tmp_path, models["a"]), log=lambda *_: None)
    assert summary["truth_rows"] == 5 and 0 <= summary["macro_roc_auc"] <= 1
    assert summary["rows"] == 5 and summary["files"] == 2 and summary["skipped"] == []


def test_the_kaggle_kernel_invocation_works(models, tmp_path):
    """What kernels/birdclef24-infer-cpu runs: a test_soundscapes folder and an absolute submission path."""
    scapes(tmp_path / "test_soundscapes", lengths=(4.0,))
    out = tmp_path / "working" / "submission.csv"
    sets = [
        f"data.root={tmp_path}",
        "data.soundscape_dir=test_soundscapes",
        f"infer.model={models['b']}",
        f"infer.submission={out}",
        "infer.window_seconds=2",
        "runtime.device=cpu",
    ]
    assert main(["predict", *[x for s in sets for x in ("--set", s)]]) == 0
    assert pd.read_csv(out).row_id.tolist() == ["s0_2", "s0_4"]


# --------------------------------------------------------------------------- a trained model

SPECIES = 3


def known_soundscape(path, seed=7):
    """A 12-s, 16 kHz soundscape in 2-s windows: calls of species 0, -, 1, 2, -, 0 (- : noise only).

    Returns {window index: species index} of the windows with calls."""
    from birdtpu.data.synth import make_species, pink_noise, render_call

    species = make_species(SPECIES, seed)
    rng = np.random.default_rng(11)
    wave = 0.02 * pink_noise(12 * RATE, rng)
    plan = {0: 0, 2: 1, 3: 2, 5: 0}
    for w, s in plan.items():
        t = w * 2.0 + 0.2
        while t < w * 2.0 + 1.6:
            call = render_call(species[s], RATE, rng)[: int((w * 2.0 + 1.9 - t) * RATE)]
            i = int(t * RATE)
            wave[i : i + len(call)] += 0.5 * call
            t += len(call) / RATE + 0.15
    write_audio(path, 0.8 * wave / np.abs(wave).max(), RATE)
    return plan


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """A small EfficientNetB0 (32 x 64 mel images) trained on 3 synthetic species, 20 clean clips each,
    for 72 steps of 16 without augmentation: about a minute on 2 cores, validation ROC-AUC near 1.
    Deterministic (an unlucky shuffle order once left a window undecided), in its own process: op
    determinism is process-wide and would turn Keras' XLA off for the tests that follow."""
    root = tmp_path_factory.mktemp("trained")
    overrides = tiny_overrides(
        root,
        "frontend.n_mels=32",
        "frontend.frames=64",
        "synth.clips_per_species=20",
        "synth.secondary_prob=0",
        "synth.num_soundscapes=0",
        "train.epochs=6",
        "train.steps_per_epoch=12",
        "train.batch_size=16",
        "train.lr=0.003",
        "train.label_smoothing=0",
        "augment.mixup_prob=0",
        "augment.noise_prob=0",
        "augment.freq_mask_prob=0",
        "augment.time_mask_prob=0",
        "runtime.deterministic=true",
        "name=trained",
    )
    proc = run_cli("fit", *[x for o in overrides for x in ("--set", o)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    return load_config(None, overrides)


@pytest.mark.slow
def test_a_trained_model_finds_the_calls_in_the_right_windows(trained, tmp_path):
    classes = open_model(os.path.join(trained.run_dir, "model.keras")).classes
    os.makedirs(tmp_path / "scapes")
    plan = known_soundscape(str(tmp_path / "scapes" / "known.ogg"))
    cfg = load_config(
        None,
        [
            f"data.root={tmp_path}",
            "data.soundscape_dir=scapes",
            "infer.window_seconds=2",
            f"infer.model={trained.run_dir}/model.keras",
            f"infer.submission={tmp_path}/sub.csv",
        ],
    )
    predict(cfg, log=lambda *_: None)
    sub = submission(tmp_path).set_index("row_id")
    from birdtpu.data.synth import make_species

    codes = [s.code for s in make_species(SPECIES, 7)]
    for w, s in plan.items():
        row = sub.loc[f"known_{2 * (w + 1)}", classes]
        assert row.idxmax() == codes[s] and row.max() > 0.5, (w, row.to_dict())
