"""Embedding distillation through the CLI: `birdtpu embed` with the Perch v2 stand-in, then `fit`
with `train.teacher_embeddings`; model.keras is the plain student, which predicts."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import teacher_models as tm
from conftest import run_cli, tiny_overrides

from birdtpu import saving

pytestmark = pytest.mark.slow


def test_fit_distils_teacher_embeddings_and_keeps_the_student(tmp_path):
    teacher = tm.save_savedmodel(str(tmp_path / "perch_v2"))
    embeddings = tmp_path / "embeddings"
    base = tiny_overrides(
        tmp_path, f"embed.teacher=perch:{teacher}", f"embed.output_dir={embeddings}"
    )
    sets = [x for o in base for x in ("--set", o)]
    done = run_cli("embed", *sets)
    assert done.returncode == 0, done.stderr[-2000:]
    distil = (
        "--set",
        f"train.teacher_embeddings=[{embeddings}]",
        "--set",
        "train.embedding_weight=2",
    )
    done = run_cli("fit", *sets, *distil)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "fit: teacher embeddings (1536 dims) for 12 of 12 training clips" in done.stderr
    model = saving.load_model(str(tmp_path / "runs" / "tiny" / "model.keras"))
    assert isinstance(model, keras.Model) and type(model).__name__ == "Functional"
    assert "projection" not in [layer.name for layer in model.layers]
    probs = np.asarray(model(np.zeros((2, 32000), np.float32), training=False))
    assert probs.shape == (2, 3) and np.isfinite(probs).all()
    done = run_cli("predict", *sets)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "runs" / "tiny" / "submission.csv").exists()
