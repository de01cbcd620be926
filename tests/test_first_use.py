"""A new user's first runs on real recordings (issue 22): the synthetic set never overwrites data,
missing audio is named, runs that write nothing or skip most of their input exit 2 with one line,
each catalog source says what it expects, export says which windows it checked, shard prints
its skip summary once and no TensorFlow start-up lines."""

import os
import re
import shutil
import subprocess
import sys

import pandas as pd
import pytest
from conftest import REAL_CLIPS, tiny_overrides

from birdtpu.cli import main
from birdtpu.config import load_config
from birdtpu.data import catalog
from birdtpu.data.layouts import LAYOUTS
from birdtpu.data.prepare import ensure_dataset
from birdtpu.data.synth import MARKER, write_dataset

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = os.path.join(REPO, "configs", "demo.yaml")
DOC = open(os.path.join(REPO, "docs", "catalog-sources.md")).read()
CLIPS = sorted(n for n in os.listdir(REAL_CLIPS) if n.endswith(".wav"))


def sets(overrides):
    return [x for o in overrides for x in ("--set", o)]


def snapshot(root) -> dict[str, bytes]:
    return {
        os.path.relpath(os.path.join(d, n), root): open(os.path.join(d, n), "rb").read()
        for d, _, names in os.walk(root)
        for n in names
    }


def errors(err: str, verb: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith(f"birdtpu {verb}: error: ")]


def real_dataset(root, names=CLIPS, missing=()) -> str:
    """BirdCLEF layout of real clips (two labels, alternating) plus rows for `missing` files."""
    rows = []
    os.makedirs(root, exist_ok=True)
    for i, name in enumerate([*names, *missing]):
        label = "ab"[i % 2]
        rows.append(f"{label},[],{label}/{name}\n")
        if name in names:
            os.makedirs(os.path.join(root, "train_audio", label), exist_ok=True)
            shutil.copy(os.path.join(REAL_CLIPS, name), os.path.join(root, "train_audio", label))
    with open(os.path.join(root, "train_metadata.csv"), "w") as fh:
        fh.write("primary_label,secondary_labels,filename\n" + "".join(rows))
    return str(root)


# ----------------------------------------------------------------------------- item 1


def test_a_mistyped_metadata_name_leaves_the_real_metadata_untouched(tmp_path, capsys):
    root = real_dataset(tmp_path / "real")
    before = snapshot(root)
    argv = ["shard", "--cfg", DEMO, "--set", f"data.root={root}", "--set", "data.metadata=meta.csv"]
    assert main([*argv, "--set", f"output_dir={tmp_path}/runs"]) == 2
    assert errors(capsys.readouterr().err, "shard") == [
        f"birdtpu shard: error: {root}/meta.csv: metadata file not found, and data.synthesize "
        "writes train_metadata.csv, not data.metadata=meta.csv: check data.root and "
        "data.metadata, or set data.synthesize: false"
    ]
    assert snapshot(root) == before


def test_a_mistyped_root_holding_other_files_is_refused(tmp_path, capsys):
    root = tmp_path / "recordings"
    (root / "wav").mkdir(parents=True)
    shutil.copy(os.path.join(REAL_CLIPS, CLIPS[0]), root / "wav")
    (root / "labels.csv").write_text("file,label\nwav/x.wav,a\n")
    before = snapshot(root)
    argv = ["fit", "--cfg", DEMO, "--set", f"data.root={root}", "--set", f"output_dir={tmp_path}"]
    assert main(argv) == 2
    assert errors(capsys.readouterr().err, "fit") == [
        f"birdtpu fit: error: {root}: holds files the synthetic dataset did not write (labels.csv, "
        "wav); it writes only into an empty folder or an earlier synthetic set (check data.root)"
    ]
    assert snapshot(root) == before
    assert main(["synth", "--out", str(root)]) == 2  # the verb too
    assert "holds files the synthetic dataset did not write" in capsys.readouterr().err
    assert snapshot(root) == before


def test_an_earlier_synthetic_set_is_rewritten(tmp_path):
    cfg = load_config(None, tiny_overrides(tmp_path))
    write_dataset(cfg.data.root, cfg.synth, log=lambda *_: None)
    assert os.path.exists(os.path.join(cfg.data.root, MARKER))
    meta = os.path.join(cfg.data.root, "train_metadata.csv")
    written = open(meta, "rb").read()
    os.remove(meta)  # an interrupted write
    ensure_dataset(cfg, lambda *_: None)
    assert open(meta, "rb").read() == written


# ----------------------------------------------------------------------------- item 3


def test_missing_audio_is_named_by_catalog_and_stops_shard(tmp_path, capsys):
    root = real_dataset(tmp_path / "data", names=(), missing=["1.ogg", "2.ogg", "3.ogg", "4.ogg"])
    table = str(tmp_path / "table.csv")
    assert main(["catalog", "--source", f"birdclef={root}", "--folds", "2", "--out", table]) == 0
    out = capsys.readouterr().out
    assert (
        f"warning: 4 of 4 recordings do not exist (first in {root}/train_audio: a/1.ogg, b/2.ogg, "
        "a/3.ogg); check the source's layout (--help) and --audio-dir, or drop them with "
        "--check-audio"
    ) in out
    overrides = tiny_overrides(
        tmp_path, f"data.table={table}", "data.synthesize=false", f"shards.dir={tmp_path}/shards"
    )
    assert main(["shard", *sets(overrides)]) == 2
    err = capsys.readouterr().err
    assert errors(err, "shard") == [
        f"birdtpu shard: error: {tmp_path}/shards: no clips written, 4 of 4 recordings "
        f"skipped (4 not found in {root}/train_audio: a/1.ogg, b/2.ogg, a/3.ogg and 1 more)"
    ]
    assert err.strip().splitlines()[-1].startswith("birdtpu shard: error: ")


def test_skips_over_the_threshold_exit_2_in_shard_and_fit(tmp_path, capsys):
    root = real_dataset(tmp_path / "data", missing=["gone.ogg"])  # 1 of 4 missing
    overrides = tiny_overrides(
        tmp_path, "data.synthesize=false", "data.num_folds=2", f"shards.dir={tmp_path}/shards"
    )
    assert main(["shard", *sets(overrides), "--max-skipped", "0.2"]) == 2
    line = (
        f"{tmp_path}/shards: 1 of 4 recordings skipped, over shards.max_skipped=0.2 "
        f"(1 not found in {root}/train_audio/b: gone.ogg); fix them, or raise shards.max_skipped "
        "(`birdtpu shard --max-skipped`) to keep the rest"
    )
    assert errors(capsys.readouterr().err, "shard") == [f"birdtpu shard: error: {line}"]
    assert main(["fit", *sets([*overrides, "shards.max_skipped=0.2"])]) == 2
    assert errors(capsys.readouterr().err, "fit") == [f"birdtpu fit: error: {line}"]
    assert main(["shard", *sets(overrides)]) == 0  # the default 0.5 keeps the other three
    assert "3 clips in " in capsys.readouterr().out


# ----------------------------------------------------------------------------- item 4


def label_folders(root) -> str:
    """`<label>/<file>.wav` under DIR with a BirdCLEF-style CSV, as a user's own recordings are."""
    os.makedirs(os.path.join(root, "gretit1"))
    for name in CLIPS[:2]:
        shutil.copy(os.path.join(REAL_CLIPS, name), os.path.join(root, "gretit1", name))
    with open(os.path.join(root, "train_metadata.csv"), "w") as fh:
        fh.write("primary_label,filename\n" + "".join(f"gretit1,gretit1/{n}\n" for n in CLIPS[:2]))
    return str(root)


def test_a_layout_mismatch_is_named_and_audio_dir_fixes_it(tmp_path, capsys):
    root = label_folders(tmp_path / "mine")
    source = ["catalog", "--source", f"birdclef2024={root}", "--folds", "0"]
    assert main(source) == 0
    assert (
        f"warning: 2 of 2 recordings do not exist (first in {root}/train_audio/gretit1: "
        f"{CLIPS[0]}, {CLIPS[1]})"
    ) in capsys.readouterr().out
    assert main([*source, "--check-audio"]) == 2
    assert errors(capsys.readouterr().err, "catalog") == [
        "birdtpu catalog: error: all 2 rows dropped ("
        + "; ".join(
            f"{root}/train_audio/gretit1/{n}: unusable audio (unreadable (file not found))"
            for n in CLIPS[:2]
        )
        + ")"
    ]
    out = str(tmp_path / "table.csv")
    assert main([*source, "--audio-dir", ".", "--check-audio", "--out", out]) == 0
    assert "do not exist" not in capsys.readouterr().out
    assert list(pd.read_csv(out)["filepath"]) == [f"{root}/gretit1/{n}" for n in CLIPS[:2]]
    assert main([*source, "--audio-dir", ".", "--audio-dir", "x"]) == 2
    assert "2 --audio-dir for 1 --source" in capsys.readouterr().err


def test_the_help_names_each_sources_files_and_the_readers_agree(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["catalog", "--help"])
    text = capsys.readouterr().out
    assert list(LAYOUTS) == list(catalog.FORMATS) and "--audio-dir" in text
    columns = {  # one CSV holding every format's required columns, under each metadata name
        "primary_label": ["amecro", "norcar"],
        "filename": ["amecro/XC1.ogg", "norcar/XC2.ogg"],
        "ebird_code": ["amecro", "norcar"],
        "fname": ["1.wav", "2.wav"],
        "labels": ["Bark", "Purr"],
        "recording_id": ["r1", "r2"],
        "species_id": ["1", "2"],
        "songtype_id": [1, 1],
        "t_min": [0.5, 1.0],
        "t_max": [1.5, 2.0],
        "f_min": [100.0, 200.0],
        "f_max": [900.0, 800.0],
    }
    for name, (meta, needed, audio, _) in LAYOUTS.items():
        assert f"  {name:<16}DIR/{meta}: " in text and f"audio: DIR/{audio}" in text, name
        pd.DataFrame(columns).to_csv(tmp_path / meta, index=False)
        for column in needed.split(";")[0].split(", "):
            assert column.split(" ")[0] in columns, (name, column)
        paths = catalog.read_source(name, str(tmp_path))["filepath"]
        assert all(p.startswith(os.path.join(str(tmp_path), audio, "")) for p in paths), name
        assert f"`{name}`" in DOC and f"`{meta}`" in DOC, name


# ----------------------------------------------------------------------------- item 6


@pytest.mark.slow
def test_export_checks_on_the_soundscapes_predict_reads_and_says_so(tmp_path, monkeypatch, capsys):
    from test_export import save_tiny_model

    model = save_tiny_model(str(tmp_path / "model"))
    os.makedirs(tmp_path / "data" / "soundscapes")
    shutil.copy(os.path.join(REAL_CLIPS, "363.wav"), tmp_path / "data" / "soundscapes")
    monkeypatch.chdir(tmp_path)
    argv = ["export", "--format", "tflite", "--set", f"infer.model={model}", "--set"]
    assert main([*argv, "data.root=data", "--out", str(tmp_path / "a.tflite")]) == 0
    out, err = capsys.readouterr()
    where = f"of 1 recording(s) in {tmp_path}/data/soundscapes"
    assert "export: checking on " in err and where in err
    assert where + ", same top class on " in out
    assert main([*argv, "data.root=elsewhere", "--out", str(tmp_path / "b.tflite")]) == 0
    out, err = capsys.readouterr()
    assert (
        f"on 8 synthetic windows (no folder {tmp_path}/elsewhere/soundscapes "
        "(data.root/data.soundscape_dir)), same top class on "
    ) in out
    assert "checking on synthetic windows" in err


# ----------------------------------------------------------------------------- item 7

TF_NOTICE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] |WARNING: All log messages)")


def tensorflow_lines(err: str) -> list[str]:
    """TensorFlow's C++ start-up lines (CUDA stubs, oneDNN, CPU features, absl) in `err`."""
    return [line for line in err.splitlines() if TF_NOTICE.match(line) or "oneDNN" in line]


@pytest.mark.slow
def test_shard_with_workers_prints_the_skip_summary_once_and_no_tensorflow_lines(tmp_path):
    """Run as from a user's shell (no TF_CPP_MIN_LOG_LEVEL): the CLI sets it before TensorFlow is
    imported, and the spawned shard workers inherit it."""
    real_dataset(tmp_path / "data", missing=["gone.ogg"])
    overrides = tiny_overrides(
        tmp_path,
        "data.synthesize=false",
        "data.num_folds=2",
        f"shards.dir={tmp_path}/shards",
        "shards.workers=2",
    )
    done = subprocess.run(
        [sys.executable, "-m", "birdtpu.cli", "shard", *sets(overrides)],
        capture_output=True,
        text=True,
        env={
            k: v
            for k, v in os.environ.items()
            if k not in ("TF_CPP_MIN_LOG_LEVEL", "BIRDTPU_VERBOSE")
        },
        timeout=900,
    )
    assert done.returncode == 0, done.stderr
    both = done.stdout + done.stderr
    assert both.count("shard: skipped 1 of 4 recordings: 1 unreadable") == 1, both
    assert f"{tmp_path}/shards: 3 clips in 3 shards" in done.stdout
    assert "1 skipped (listed in manifest.json)" in done.stdout
    assert tensorflow_lines(done.stderr) == []
