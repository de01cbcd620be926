"""Submission tables: sample-submission column order, validation before an atomic write, and the
alignment of predictions with per-window truth for scoring."""

import os
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from birdtpu.errors import DataError
from birdtpu.infer.scoring import align_windows, score_against_truth
from birdtpu.infer.submission import (
    like_sample,
    sample_columns,
    validate_submission,
    write_submission,
)

CLASSES = ["b", "a", "c"]


def table(ids=("s_5", "s_10"), values=None):
    values = np.full((len(ids), 3), 0.5) if values is None else values
    out = pd.DataFrame(values, columns=CLASSES)
    out.insert(0, "row_id", list(ids))
    return out


def test_sample_submission_sets_the_id_name_and_the_class_order(tmp_path):
    sample = tmp_path / "sample_submission.csv"
    sample.write_text("recording_id,c,a,b\nx,0,0,0\n")
    assert sample_columns(str(sample)) == ("recording_id", ["c", "a", "b"])
    out = like_sample(table(values=np.array([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]])), str(sample))
    assert list(out.columns) == ["recording_id", "c", "a", "b"]
    np.testing.assert_allclose(out.iloc[0, 1:].to_numpy(float), [0.3, 0.2, 0.1])


def test_a_sample_class_the_model_lacks_is_an_error_and_extra_model_classes_are_dropped(tmp_path):
    sample = tmp_path / "s.csv"
    sample.write_text("row_id,a,zz\n")
    with pytest.raises(DataError, match="class 'zz' is not a class of the model"):
        like_sample(table(), str(sample))
    sample.write_text("row_id,a,b\n")
    notes = []
    out = like_sample(table(), str(sample), log=notes.append)
    assert (
        list(out.columns) == ["row_id", "a", "b"] and "1 class(es)" in notes[0] and "'c'" not in out
    )


def test_a_missing_sample_submission_is_named(tmp_path):
    with pytest.raises(DataError, match="nope.csv: sample submission not found"):
        sample_columns(str(tmp_path / "nope.csv"))


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda t: t.assign(row_id=["s_5", "s_5"]), "duplicate row_id 's_5'"),
        (lambda t: t.drop(columns="a"), "missing column"),
        (lambda t: t.assign(a=[0.5, np.nan]), "row 's_10', column 'a': nan is NaN"),
        (lambda t: t.assign(c=[1.5, 0.5]), "row 's_5', column 'c': 1.5 is outside"),
        (lambda t: t.assign(b=[-0.1, 0.5]), "column 'b': -0.1 is outside"),
        (lambda t: t.assign(b=["x", "0.5"]), "column 'b' holds values that are not numbers"),
    ],
)
def test_invalid_submissions_are_refused_with_the_row_and_column(change, message):
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace("[", r"\[")):
        validate_submission(change(table()), CLASSES)


def test_ids_must_be_exactly_the_expected_ones():
    validate_submission(table(), CLASSES, expected_ids=["s_10", "s_5"])
    with pytest.raises(DataError, match="row_id 's_15' is missing"):
        validate_submission(table(), CLASSES, expected_ids=["s_5", "s_10", "s_15"])
    with pytest.raises(DataError, match="unexpected row_id 's_10'"):
        validate_submission(table(), CLASSES, expected_ids=["s_5"])


def test_nothing_is_written_when_the_check_fails(tmp_path):
    path = tmp_path / "submission.csv"
    path.write_text("old\n")
    with pytest.raises(DataError):
        write_submission(table(values=np.full((2, 3), 2.0)), str(path), CLASSES)
    assert path.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["submission.csv"]  # no temporary file left behind


def test_a_written_submission_reads_back_at_float32_precision(tmp_path):
    path = tmp_path / "sub" / "submission.csv"
    values = np.array([[0.123456789, 1e-7, 1.0], [0.0, 0.5, 0.987654321]])
    write_submission(table(values=values), str(path), CLASSES, expected_ids=["s_5", "s_10"])
    back = pd.read_csv(path)
    assert list(back.columns) == ["row_id", *CLASSES] and back.row_id.tolist() == ["s_5", "s_10"]
    np.testing.assert_allclose(back[CLASSES].to_numpy(), values, rtol=1e-6)


def test_same_windows_align_row_by_row():
    truth = table(values=np.array([[1, 0, 0], [0, 1, 0]]))
    pred = table(ids=("s_10", "s_5"), values=np.array([[0.2, 0.7, 0.1], [0.9, 0.05, 0.05]]))
    y, s = align_windows(truth, pred, CLASSES, 5.0)
    np.testing.assert_array_equal(y, [[1, 0, 0], [0, 1, 0]])
    np.testing.assert_allclose(s, [[0.9, 0.05, 0.05], [0.2, 0.7, 0.1]])


def test_shorter_windows_are_maxed_over_each_truth_window():
    truth = table(
        ids=("s_5", "s_10", "s_12"), values=np.eye(3)
    )  # a 12-s recording in 5-s truth rows
    ends = [2, 4, 6, 8, 10, 12]
    values = np.zeros((6, 3))
    values[:, 0] = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    pred = table(ids=[f"s_{e}" for e in ends], values=values)
    y, s = align_windows(truth, pred, CLASSES, 2.0)
    # (0, 5] <- windows ending 2, 4, 6; (5, 10] <- 6, 8, 10; (10, 12] <- 12
    np.testing.assert_allclose(s[:, 0], [0.3, 0.5, 0.6])
    assert len(y) == 3


def test_scoring_skips_recordings_without_truth_and_scores_files_when_aggregated(tmp_path):
    truth_path = tmp_path / "labels.csv"
    table(
        ids=("s_5", "s_10", "t_5", "t_10"),
        values=np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0]]),
    ).to_csv(truth_path, index=False)
    pred = table(
        ids=("s_5", "s_10", "u_5"),
        values=np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4]]),
    )
    out = score_against_truth(
        pred, str(truth_path), CLASSES, SimpleNamespace(aggregate="none", window_seconds=5.0)
    )
    assert out == {"macro_roc_auc": 1.0, "truth_rows": 2}
    files = table(ids=("s", "t"), values=np.array([[0.9, 0.9, 0.1], [0.8, 0.1, 0.9]]))
    out = score_against_truth(
        files, str(truth_path), CLASSES, SimpleNamespace(aggregate="max", window_seconds=5.0)
    )
    assert out["truth_rows"] == 2 and out["macro_roc_auc"] == 1.0  # classes with both labels: b, c
