"""Distillation from a teacher's predictions CSV (train.teacher_predictions): soft targets blended
into the training targets, checked against hand-computed values; one-line errors for bad tables."""

import numpy as np
import pandas as pd
import pytest
from test_pseudo_mix import CLASSES, QUIET, RATE, sets  # noqa: F401

from birdtpu.config import load_config
from birdtpu.data.pipeline import build_dataset
from birdtpu.data.shards import shard_paths
from birdtpu.errors import ConfigError, DataError
from birdtpu.train.teacher_targets import read_teacher, teacher_targets


def write(path, rows, classes=CLASSES):
    pd.DataFrame(rows, columns=["row_id", *classes]).to_csv(path, index=False)
    return str(path)


def test_read_teacher_errors_name_the_file_row_and_column(tmp_path):
    good = write(tmp_path / "a.csv", [["x", 0.1, 0.2, 0.3]])
    assert read_teacher([good], ["c", "a"]).columns.tolist() == ["row_id", "c", "a"]
    with pytest.raises(DataError, match=r"b.csv: teacher predictions lack class 'c' \(1 of 3"):
        read_teacher([write(tmp_path / "b.csv", [["x", 0.1, 0.2]], ["a", "b"])], CLASSES)
    with pytest.raises(DataError, match=r"c.csv: row 'y', column 'b': 1.5 is not a probability"):
        read_teacher([write(tmp_path / "c.csv", [["y", 0.1, 1.5, 0.3]])], CLASSES)
    with pytest.raises(DataError, match="row_id 'x' appears in more than one row"):
        read_teacher([good, good], CLASSES)


def test_every_training_clip_needs_a_teacher_row(tmp_path):
    path = write(tmp_path / "t.csv", [["a.wav", 0.5, 0.5, 0.5]])
    cfg = load_config(None, [f"train.teacher_predictions=[{path}]"])
    with pytest.raises(
        DataError, match=r"no teacher row for 1 of 2 training clips \(first: 'b.wav'\)"
    ):
        teacher_targets(cfg, CLASSES, ["a.wav", "b.wav"], lambda *_: None)
    assert teacher_targets(load_config(None, []), CLASSES, ["a.wav"]) is None
    with pytest.raises(ConfigError, match="train.distill_temperature: must be above 0"):
        load_config(None, ["train.distill_temperature=0"])


def test_training_targets_blend_the_teacher_at_its_temperature(sets, tmp_path):  # noqa: F811
    labelled, manifest, _ = sets
    probe = build_dataset(shard_paths(labelled, manifest), 3, RATE, 12, False, with_ids=True)
    ids = [i.decode() for _, _, batch in probe for i in batch.numpy()]
    q = np.random.default_rng(0).uniform(0.05, 0.95, (len(ids), 3))
    path = write(tmp_path / "teacher.csv", [[i, *row] for i, row in zip(ids, q)])
    cfg = load_config(
        None,
        [
            f"train.teacher_predictions=[{path}]",
            "train.distill_alpha=0.25",
            "train.distill_temperature=2",
        ],
    )
    teacher = teacher_targets(cfg, CLASSES, ids, lambda *_: None)
    soft = 1 / (1 + np.exp(-np.log(q / (1 - q)) / 2))  # sigmoid(logit(q) / T), by hand
    train = build_dataset(
        shard_paths(labelled, manifest),
        3,
        RATE,
        8,
        True,
        QUIET,
        seed=1,
        with_ids=True,
        teacher=teacher,
    )
    seen = 0
    for _, targets, batch_ids in train.take(3):
        for t, i in zip(targets.numpy(), batch_ids.numpy()):
            k = ids.index(i.decode())
            label = np.eye(3)[int(i.decode().split(".")[0]) % 3]  # clip <i>.wav is class i % 3
            np.testing.assert_allclose(t, 0.25 * label + 0.75 * soft[k], atol=1e-6)
            seen += 1
    assert seen == 24
    # validation keeps the hard targets
    val = build_dataset(shard_paths(labelled, manifest), 3, RATE, 12, False, teacher=teacher)
    assert set(np.concatenate([t.numpy() for _, t in val]).sum(1)) == {1.0}


@pytest.mark.slow
def test_fit_distils_from_a_predictions_csv(tiny_data, tmp_path):
    """fit with train.teacher_predictions over the whole catalog: it says what it blends and
    trains (finite losses), validating on the hard labels."""
    from conftest import NO_RANDOM_LAYERS, tiny_overrides

    from birdtpu.data.prepare import load_catalog
    from birdtpu.train.fit import fit

    root, _ = tiny_data
    cfg = load_config(None, [*tiny_overrides(tmp_path), f"data.root={root}", *NO_RANDOM_LAYERS])
    df, classes = load_catalog(cfg, log=lambda *_: None)
    q = np.random.default_rng(1).uniform(0.1, 0.9, (len(df), len(classes)))
    path = write(tmp_path / "oof.csv", [[f, *r] for f, r in zip(df["filename"], q)], classes)
    cfg.train.teacher_predictions = [path]
    lines = []
    fit(cfg, log=lines.append)
    said = [x for x in lines if "distilling from" in x]
    assert said == [
        f"fit: distilling from {len(df)} teacher predictions (1 file(s)): targets 0.5 x labels "
        "+ 0.5 x teacher at temperature 1.0"
    ]
    history = pd.read_csv(f"{cfg.run_dir}/history.csv")
    assert np.isfinite(history[["loss", "val_loss"]].to_numpy()).all()
