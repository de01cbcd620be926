"""`birdtpu fit --rounds N`: each round's folder, the table of rounds, and a rerun that skips the
finished rounds and redoes a missing one."""

import json
import os

import pandas as pd
import pytest
from conftest import NO_RANDOM_LAYERS, tiny_overrides

from birdtpu.cli import main
from birdtpu.config import load_config
from birdtpu.errors import ConfigError
from birdtpu.train.rounds import COLUMNS, fit_rounds, format_table, round_config

ROUND_FILES = (
    "model.keras",
    "model.json",
    "config.yaml",
    "history.csv",
    "oof_fold0.csv",
    "truth_fold0.csv",
    "metrics.json",
    "soundscape_scores.json",
    "round.json",
)


def _overrides(tmp_path):
    return tiny_overrides(
        tmp_path,
        *NO_RANDOM_LAYERS,
        "name=ns",
        "synth.plus_soundscapes=3",
        "synth.plus_labelled=1",
        "pseudo.soundscapes=train_soundscapes",
        "pseudo.ratio=0.3",
        "train.soundscape_val=train_soundscapes_labels.csv",
    )


def test_round_config_and_bad_rounds(tmp_path):
    cfg = load_config(None, _overrides(tmp_path))
    zero, two = round_config(cfg, 0), round_config(cfg, 2)
    assert zero.run_dir == f"{tmp_path}/runs/ns/round-0" and zero.train == cfg.train
    assert two.run_dir == f"{tmp_path}/runs/ns/round-2"
    assert two.train.pseudo_shards == [f"{tmp_path}/runs/ns/pseudo/round-2"]
    assert two.train.pseudo_ratio == 0.3 and two.shard_dir == cfg.shard_dir
    with pytest.raises(ConfigError, match="--rounds"):
        fit_rounds(cfg, 0)


def _mtime(path):
    return os.stat(path).st_mtime_ns


@pytest.mark.slow
def test_rounds_folders_table_and_resume(tmp_path, capsys):
    overrides = _overrides(tmp_path)
    lines = []
    table = fit_rounds(load_config(None, overrides), 1, lines.append)
    run = tmp_path / "runs" / "ns"
    for k in (0, 1):
        for name in ROUND_FILES:
            assert (run / f"round-{k}" / name).exists(), f"round-{k}/{name}"
        history = pd.read_csv(run / f"round-{k}" / "history.csv")
        assert "val_soundscape_auc" in history.columns and "val_auc" in history.columns
    manifest = json.loads((run / "pseudo" / "round-1" / "manifest.json").read_text())
    assert manifest["examples"] == 18 and manifest["pseudo"]["runs"][0]["run"].endswith("round-0")
    assert any("18 pseudo-labelled windows" in line for line in lines)

    assert pd.read_csv(run / "rounds.csv").equals(table)
    assert list(table.columns) == COLUMNS and table["round"].tolist() == [0, 1]
    assert table["pseudo_windows"].tolist() == [0, 18]
    for k in (0, 1):
        metrics = json.loads((run / f"round-{k}" / "metrics.json").read_text())
        scapes = json.loads((run / f"round-{k}" / "soundscape_scores.json").read_text())
        assert table["val_macro_auc"][k] == pytest.approx(metrics["macro_roc_auc"])
        assert table["soundscape_macro_auc"][k] == pytest.approx(scapes["window_macro_auc"])
        assert scapes["windows"] == 3  # the labelled 12-s soundscape in 5-s windows
    assert (run / "model.keras").read_bytes() == (run / "round-1" / "model.keras").read_bytes()

    # the CLI on the finished run: no round is redone, the same table is printed
    models = [_mtime(run / f"round-{k}" / "model.keras") for k in (0, 1)]
    capsys.readouterr()
    assert main(["fit", "--rounds", "1", *[x for o in overrides for x in ("--set", o)]]) == 0
    out = capsys.readouterr()
    assert "rounds: round 0 is finished; not redone" in out.err
    assert "rounds: round 1 is finished; not redone" in out.err
    assert format_table(table) in out.out
    assert [_mtime(run / f"round-{k}" / "model.keras") for k in (0, 1)] == models
    assert pd.read_csv(run / "rounds.csv").equals(table)

    # `predict --cfg X` predicts with the last round's model, copied into the run folder
    assert main(["predict", *[x for o in overrides for x in ("--set", o)]]) == 0
    assert (run / "submission.csv").exists()
