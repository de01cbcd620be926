"""The embedding_head model (issue 23): a head on frozen teacher embeddings trained by `fit` in
its own process, saved, loaded in a fresh process by `predict`, which embeds each window on the
fly; the Perch v2 stand-in as the teacher."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest
import teacher_models as tm
from conftest import TINY, run_cli

from birdtpu.config import load_config
from birdtpu.errors import ConfigError

pytestmark = pytest.mark.slow


def test_head_fits_saves_and_predicts_in_a_fresh_process(tmp_path):
    from birdtpu.data.audio import load_audio
    from birdtpu.infer.runners import open_model
    from birdtpu.infer.windows import windows
    from birdtpu.teachers.head import build_head

    teacher = tm.save_savedmodel(str(tmp_path / "perch_v2"))
    overrides = [
        *TINY,
        f"data.root={tmp_path}/data",
        f"output_dir={tmp_path}/runs",
        "name=head",
        "model.name=embedding_head",
        f"embed.teacher=perch:{teacher}",
        "train.epochs=3",
        "infer.window_seconds=5",
    ]
    sets = [x for o in overrides for x in ("--set", o)]
    done = run_cli("fit", *sets)  # dispatched to the head by model.name
    assert done.returncode == 0, done.stderr
    assert "fit: embedding_head on perch-v2 embeddings (1536), 3 classes" in done.stderr
    run = f"{tmp_path}/runs/head"
    scores = json.load(open(os.path.join(run, "metrics.json")))
    for name in ("config.yaml", "model.keras", "model.json", "history.csv", "metrics.json"):
        assert os.path.exists(os.path.join(run, name)), name
    assert len(pd.read_csv(os.path.join(run, "history.csv"))) == 3
    oof = pd.read_csv(os.path.join(run, "oof_fold0.csv"))
    assert len(oof) == scores["val_clips"] == 6 and 0 <= scores["macro_roc_auc"] <= 1
    assert scores["recording_val_clips"] == 6
    meta = json.load(open(os.path.join(run, "model.json")))
    assert (meta["sample_rate"], meta["clip_seconds"]) == (32000, 5.0)
    assert meta["teacher"]["spec"] == f"perch:{teacher}" and meta["teacher"]["dim"] == 1536
    # linear: 1536 x 3 + 3; with a neck of 8: 1536 x 8 + 8 + 8 x 3 + 3
    assert build_head(load_config(None, overrides), 1536, 3).count_params() == 4611
    neck = load_config(None, [*overrides, "model.neck=8"])
    assert build_head(neck, 1536, 3).count_params() == 12323

    done = run_cli("predict", *sets)
    assert done.returncode == 0, done.stderr
    sub = pd.read_csv(os.path.join(run, "submission.csv"))
    assert len(sub) == 6 and list(sub.columns[1:]) == meta["classes"]

    runner = open_model(os.path.join(run, "model.keras"))
    wave, _ = load_audio(f"{tmp_path}/data/soundscapes/soundscape_000.ogg", 32000)
    cut, _ = windows(wave, 32000, 5.0)
    here = runner(np.asarray(cut))
    np.testing.assert_allclose(sub.iloc[:3, 1:].to_numpy(), here, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(here.sum(axis=1), 1.0, rtol=1e-5)  # softmax

    tm.save_savedmodel(teacher, seed=1)  # another model at the same path
    with pytest.raises(ConfigError, match="that model file is now another one"):
        open_model(os.path.join(run, "model.keras"))
