"""Bad and odd recordings through every verb that decodes audio: catalog --check-audio, shard, predict.

Corrupt, truncated, empty, sample-less, all-zero and NaN recordings are skipped, named with their
reason and counted per reason; 8-bit, 24-bit, 6-channel, 8 kHz and 96 kHz recordings are decoded,
mixed down to mono and resampled like any other.
"""

import json
import os

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from badfiles import write_bad, write_metadata, write_odd
from conftest import run_cli, tiny_overrides

from birdtpu.cli import main
from birdtpu.data.audio import AudioError, load_audio

RATE = 16000


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A folder with every bad and odd recording: (folder, {bad name: reason}, {odd name: (rate, channels)})."""
    folder = str(tmp_path_factory.mktemp("audio"))
    return folder, write_bad(folder), write_odd(folder)


def test_bad_recordings_raise_with_their_reason(files):
    folder, bad, _ = files
    for name, reason in bad.items():
        with pytest.raises(AudioError) as err:
            load_audio(os.path.join(folder, name), RATE)
        assert err.value.reason.startswith(reason) and str(err.value).startswith(
            os.path.join(folder, name)
        )


def test_odd_recordings_decode_to_mono_at_the_asked_rate(files):
    folder, _, odd = files
    for name in odd:
        wave, rate = load_audio(os.path.join(folder, name), RATE)
        assert (
            rate == RATE
            and wave.ndim == 1
            and wave.dtype == np.float32
            and abs(len(wave) - 2 * RATE) <= 2
        ), name
        assert 0.15 < np.sqrt(np.mean(wave**2)) < 0.3, (
            name
        )  # the 0.3-amplitude tone, not noise or silence


def write_dataset(root, files) -> tuple[str, list[str]]:
    """BirdCLEF layout whose train_audio holds the bad and odd files plus four clean ones; (root, odd names)."""
    folder, bad, odd = files
    audio = os.path.join(root, "train_audio")
    os.makedirs(audio)
    for name in [*bad, *odd]:
        os.symlink(os.path.join(folder, name), os.path.join(audio, name))
    names = sorted(odd) + [f"clean{i}.wav" for i in range(4)]
    for i in range(4):
        sf.write(
            os.path.join(audio, f"clean{i}.wav"),
            0.3 * np.sin(np.arange(2 * RATE) * (0.1 + 0.05 * i)),
            RATE,
        )
    rows = [["ab"[i % 2], "[]", n] for i, n in enumerate(names + sorted(bad))]
    write_metadata(root, rows)
    return root, sorted(odd)


def test_catalog_check_audio_drops_bad_and_keeps_odd(files, tmp_path, capsys):
    root, odd = write_dataset(str(tmp_path / "data"), files)
    out = str(tmp_path / "table.csv")
    assert (
        main(
            [
                "catalog",
                "--source",
                f"birdclef={root}",
                "--check-audio",
                "--folds",
                "0",
                "--out",
                out,
            ]
        )
        == 0
    )
    text, err = capsys.readouterr()
    bad = files[1]
    for name, reason in bad.items():
        assert f"catalog: skip {root}/train_audio/{name}: {reason}" in err
    assert f"unusable audio              {len(bad)} (" in text
    kept = pd.read_csv(out)
    assert set(odd) <= set(kept["filename"]) and not set(bad) & set(kept["filename"])
    assert sorted(
        os.path.basename(p) for p in json.load(open(str(tmp_path / "table.corrupt.json")))
    ) == sorted(bad)


@pytest.fixture(scope="module")
def sharded(files, tmp_path_factory):
    """`birdtpu shard` over the dataset in a real process: (completed process, manifest, data root, odd names)."""
    tmp = tmp_path_factory.mktemp("shard")
    root, odd = write_dataset(str(tmp / "data"), files)
    proc = run_cli(
        "shard",
        *[
            x
            for o in tiny_overrides(tmp, "data.synthesize=false", "data.num_folds=2")
            for x in ("--set", o)
        ],
        timeout=600,
    )
    (path,) = (tmp / "runs" / "shard-cache").glob("*/manifest.json")
    manifest = json.load(open(path))
    return proc, manifest, root, odd


def test_shard_skips_bad_recordings_and_keeps_odd_ones(files, sharded):
    proc, manifest, root, odd = sharded
    bad = files[1]
    assert proc.returncode == 0 and "Traceback" not in proc.stderr
    skipped = {os.path.basename(s["file"]): s["reason"] for s in manifest["skipped"]}
    assert set(skipped) == set(bad) and all(skipped[n].startswith(r) for n, r in bad.items())
    for name, reason in skipped.items():
        assert f"shard: skip {root}/train_audio/{name}: {reason}" in proc.stderr
    assert manifest["recordings"] == len(odd) + 4 and manifest["inputs"] == len(odd) + 4 + len(bad)
    assert f"{len(bad)} skipped" in proc.stdout


def test_shard_closing_line_counts_skips_per_reason(files, sharded):
    proc, manifest, _, odd = sharded
    total = len(odd) + 4 + len(files[1])
    assert (
        f"shard: skipped {len(files[1])} of {total} recordings: 2 truncated, 1 all samples are zero, "
        "1 contains NaN or infinite samples, 1 empty, 1 empty file, 1 unreadable "
        "(listed in manifest.json)"
    ) in proc.stderr


@pytest.mark.slow
def test_predict_names_and_counts_bad_soundscapes_and_scores_odd_ones(files, tmp_path, capsys):
    from test_export import save_tiny_model

    folder, bad, odd = files
    scapes = tmp_path / "scapes"
    scapes.mkdir()
    for name in [*bad, *odd]:
        os.symlink(os.path.join(folder, name), scapes / name)
    model = save_tiny_model(str(tmp_path / "model"))
    sets = [
        f"data.root={tmp_path}",
        "data.soundscape_dir=scapes",
        f"infer.model={model}",
        "infer.window_seconds=2",
        f"infer.submission={tmp_path}/sub.csv",
    ]
    assert main(["predict", *[x for o in sets for x in ("--set", o)]]) == 1
    out, err = capsys.readouterr()
    sub = pd.read_csv(tmp_path / "sub.csv")
    predicted = set(sub["row_id"].str.rsplit("_", n=1).str[0])
    assert {os.path.splitext(n)[0] for n in odd} <= predicted
    skipped = {"corrupt", "empty", "no_samples", "truncated_ogg"}  # nothing decodes
    assert not skipped & predicted and predicted >= {
        "all_zero",
        "nan",
        "truncated_wav",
    }  # something decodes
    for name in ("corrupt.ogg", "empty.wav", "no_samples.wav", "truncated_ogg.ogg"):
        assert f"predict: skip {scapes / name}: " in err
    assert f"predict: {scapes / 'truncated_wav.wav'}: truncated (data chunk holds" in err
    assert "nan.wav: 10 non-finite sample(s) at 16000 Hz set to 0" in err
    total = len(bad) + len(odd)
    assert "predict: 1 truncated recording(s) predicted over the part that decodes: " in out
    assert (
        f"predict: skipped 4 of {total} recordings: 1 empty, 1 empty file, 1 truncated, 1 unreadable"
    ) in out
