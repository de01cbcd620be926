"""Row ids `<recording>_<end second>`: written as the competitions do, parsed back, fractional
seconds through `evaluate --file-level`."""

import numpy as np
import pandas as pd
import pytest

from birdtpu import cli, rowid
from birdtpu.errors import DataError
from birdtpu.metrics import file_level


@pytest.mark.parametrize(
    "value, text", [(5, "5"), (5.0, "5"), (7.5, "7.5"), (240.0, "240"), (2.3333333, "2.333")]
)
def test_end_seconds_are_written_as_the_competitions_do(value, text):
    assert rowid.format_end(value) == text
    assert rowid.row_ids("site_a", [value]) == [f"site_a_{text}"]


def test_ids_split_at_the_last_underscore_with_fractional_seconds():
    stems, ends = rowid.split(["site_a_5", "site_a_7.5"], "t")
    assert stems.tolist() == ["site_a", "site_a"] and ends.tolist() == [5.0, 7.5]
    for bad in ("nounderscore", "site_x", "site_-5"):
        with pytest.raises(DataError, match=f"t: row id '{bad}' is not <recording>_<end second>"):
            rowid.split(["site_5", bad], "t")


def test_file_level_keeps_the_rows_of_fractional_windows():
    ids = rowid.row_ids("a", [2.5, 5, 7.5]) + rowid.row_ids("b_c", [2.5, 5])
    df = pd.DataFrame({"row_id": ids, "x": [0.1, 0.9, 0.2, 0.3, 0.4]})
    out = file_level(df, "max")
    assert out.row_id.tolist() == ["a", "b_c"] and out.x.tolist() == [0.9, 0.4]


def test_a_fractional_second_submission_scores_in_evaluate(tmp_path, capsys):
    rng = np.random.default_rng(0)
    ends = np.arange(1, 13) * 2.5  # 5-s windows every 2.5 s: x_2.5, x_5, x_7.5, ...
    ids = [i for k in range(6) for i in rowid.row_ids(f"scape_{k}", ends)]
    truth = (rng.random((len(ids), 3)) < 0.3).astype(int)
    truth[np.arange(len(ids)), rng.integers(3, size=len(ids))] = 1
    pred = np.clip(truth * 0.6 + rng.random(truth.shape) * 0.5, 0, 1)
    for name, values in (("truth", truth), ("pred", pred)):
        df = pd.DataFrame(values, columns=["a", "b", "c"])
        df.insert(0, "row_id", ids)
        df.to_csv(tmp_path / f"{name}.csv", index=False)
    for extra in ([], ["--file-level", "max"]):
        args = [
            "evaluate",
            "--pred",
            str(tmp_path / "pred.csv"),
            "--truth",
            str(tmp_path / "truth.csv"),
        ]
        assert cli.main([*args, "--metric", "lwlrap", *extra]) == 0
        score = float(capsys.readouterr().out.split()[-1])
        assert 0.5 < score <= 1.0
