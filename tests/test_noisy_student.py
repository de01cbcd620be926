"""The noisy-student loop as the README gives it, each verb in a fresh process: a teacher is
trained, pseudo-labels its unlabelled BirdCLEF+ soundscapes, and a student trains on the labelled
clips with those windows mixed in, then predicts."""

import os

import pytest
from conftest import run_cli, tiny_overrides

from birdtpu.data.shards import read_manifest

pytestmark = pytest.mark.slow


def _sets(*overrides):
    return [x for o in overrides for x in ("--set", o)]


def test_teacher_pseudo_student_round(tmp_path):
    base = tiny_overrides(tmp_path, "synth.plus_soundscapes=3", "synth.plus_labelled=1")
    teacher = run_cli("fit", *_sets(*base, "name=teacher"))
    assert teacher.returncode == 0, teacher.stderr[-3000:]
    pseudo = run_cli(
        "pseudo",
        "--round",
        "1",
        *_sets(*base, "name=teacher", "pseudo.soundscapes=train_soundscapes", "pseudo.power=1.5"),
    )
    assert pseudo.returncode == 0, pseudo.stderr[-3000:]
    round_dir = tmp_path / "runs" / "teacher" / "pseudo" / "round-1"
    manifest = read_manifest(str(round_dir))
    assert manifest["pseudo"]["round"] == 1 and manifest["pseudo"]["files"] == 3
    assert manifest["examples"] == 3 * 6  # 12-s soundscapes in 2-s windows
    student = run_cli(
        "fit",
        *_sets(
            *base,
            "name=student",
            f"train.pseudo_shards=[{round_dir}]",
            "train.pseudo_ratio=0.3",
        ),
    )
    assert student.returncode == 0, student.stderr[-3000:]
    assert (
        "fit: 18 pseudo-labelled windows from 1 set(s): sampled in at ratio 0.3" in student.stderr
    )
    assert os.path.exists(tmp_path / "runs" / "student" / "model.keras")
    predict = run_cli("predict", *_sets(*base, "name=student"))
    assert predict.returncode == 0, predict.stderr[-3000:]
    assert os.path.exists(tmp_path / "runs" / "student" / "submission.csv")
