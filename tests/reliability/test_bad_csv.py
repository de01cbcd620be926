"""Bad CSVs through every verb that reads one.

Metadata (catalog, shard, fit): a bad row (duplicate, malformed secondary_labels, unknown primary
label, path outside the data root, empty cell, bad box) is skipped, logged by file and row, and
counted by reason; a file that is not a CSV, lacks a required column or has no good row is one
error line, exit 2. Score tables (evaluate, stack, plot scores): any problem is one error line,
exit 2, because a score over part of the rows would be wrong.
"""

import os

import pandas as pd
import pytest
from badfiles import write_metadata
from conftest import tiny_overrides

from birdtpu.cli import main
from birdtpu.data import catalog
from birdtpu.errors import DataError

GOOD = [["a", "[]", "a/1.ogg"], ["b", "['a']", "b/2.ogg"], ["a", "[]", "a/3.ogg"]]
BAD = {  # row -> reason; rows 6.. of the file (the header is row 1)
    6: (["a", "[]", "a/1.ogg"], "duplicate row"),
    7: (["b", "\"['a', 'b'\"", "b/4.ogg"], "malformed secondary_labels"),
    8: (["a", "[]", "../../etc/passwd"], "path outside the data root"),
    9: (["a", "[]", "/etc/passwd"], "path outside the data root"),
    10: (["", "[]", "a/5.ogg"], "empty primary_label"),
    11: (["zz", "[]", "a/6.ogg"], "unknown label"),
}


def metadata(root) -> str:
    return write_metadata(
        str(root), GOOD + [["b", "[]", "b/7.ogg"]] + [row for row, _ in BAD.values()]
    )


def test_bad_rows_are_skipped_with_file_row_and_reason(tmp_path):
    path = metadata(tmp_path)
    bad = []
    df = catalog.read_birdclef(str(tmp_path), classes=["a", "b"], bad_rows=bad)
    assert df["filename"].tolist() == ["a/1.ogg", "b/2.ogg", "a/3.ogg", "b/7.ogg"]
    dropped = pd.concat(bad, ignore_index=True)
    assert dropped["reason"].tolist() == [reason for _, reason in BAD.values()]
    assert [d.split(":")[0] for d in dropped["detail"]] == [f"{path} row {r}" for r in BAD]
    first = tmp_path / "train_audio" / "a" / "1.ogg"
    assert dropped["detail"].iat[0].endswith(f"duplicate of row 2 (filepath={first})")
    assert (
        "escapes the data root" in dropped["detail"].iat[2]
        and dropped["filepath"].iat[2] == "../../etc/passwd"
    )


def test_without_a_list_the_first_bad_row_is_an_error(tmp_path):
    path = metadata(tmp_path)
    with pytest.raises(DataError, match=rf"^{path} row 10: empty primary_label$"):
        catalog.read_birdclef(str(tmp_path))


def test_other_formats_skip_bad_rows(tmp_path):
    rfcx = tmp_path / "train_tp.csv"
    rfcx.write_text(
        "recording_id,species_id,songtype_id,t_min,f_min,t_max,f_max\n"
        "r1,3,1,1.0,100,2.0,200\nr2,3,1,5.0,100,4.0,200\nr3,3,1,x,100,4.0,200\nr1,3,1,1.0,100,2.0,200\n"
    )
    bad = []
    assert catalog.read_rainforest(str(tmp_path), bad_rows=bad)["filename"].tolist() == ["r1.flac"]
    assert pd.concat(bad)["reason"].tolist() == ["bad box", "bad box", "duplicate row"]
    (tmp_path / "train_curated.csv").write_text(
        'fname,labels\na.wav,Bark\nb.wav," , "\na.wav,Run\n'
    )
    bad = []
    assert catalog.read_fat2019(str(tmp_path), bad_rows=bad)["filename"].tolist() == ["a.wav"]
    assert pd.concat(bad)["reason"].tolist() == ["empty labels", "duplicate row"]


def test_catalog_logs_each_skip_and_counts_them_by_reason(tmp_path, capsys):
    metadata(tmp_path / "data")
    (tmp_path / "classes.txt").write_text("a\nb\n")
    out = str(tmp_path / "table.csv")
    assert (
        main(
            [
                "catalog",
                "--source",
                f"birdclef={tmp_path / 'data'}",
                "--classes",
                str(tmp_path / "classes.txt"),
                "--folds",
                "0",
                "--out",
                out,
            ]
        )
        == 0
    )
    text, err = capsys.readouterr()
    skips = [line for line in err.splitlines() if line.startswith("catalog: skip ")]
    assert len(skips) == len(BAD) and all("train_metadata.csv row " in line for line in skips)
    assert (
        "catalog: skipped 6 of 10 metadata rows: 2 path outside the data root, 1 duplicate row, "
        "1 empty primary_label, 1 malformed secondary_labels, 1 unknown label"
    ) in text
    assert text.splitlines()[1].split() == [
        "birdclef",
        "10",
        "4",
        "6",
        "2",
    ]  # read, kept, dropped, classes
    dropped = pd.read_csv(str(tmp_path / "table.dropped.csv"))
    assert sorted(dropped["reason"]) == sorted(reason for _, reason in BAD.values())


@pytest.mark.parametrize(
    "content, message",
    [
        (
            "primary_label,secondary_labels\na,[]\n",
            "missing column(s) filename (has primary_label, secondary_labels)",
        ),
        ("", "not a readable CSV (No columns to parse from file)"),
        (b"\xff\xfe\x00\x80binary", "not a readable CSV"),
        (
            "primary_label,secondary_labels,filename\na,[],../x.ogg\nb,[],/x.ogg\n",
            "row 2: path '../x.ogg' escapes the data root",
        ),  # catalog: "all 2 rows are unusable (first: <file> row 2: ..."
    ],
)
@pytest.mark.parametrize("verb", ["catalog", "shard", "fit"])
def test_unusable_metadata_file_is_one_line_exit_2(tmp_path, capsys, verb, content, message):
    root = tmp_path / "data"
    root.mkdir()
    path = root / "train_metadata.csv"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    if verb == "catalog":
        args = ["--source", f"birdclef={root}"]
    else:
        args = [x for o in tiny_overrides(tmp_path, "data.synthesize=false") for x in ("--set", o)]
    assert main([verb, *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"birdtpu {verb}: error: {path}") and message in err[-1], err
    assert not [line for line in err[:-1] if "error" in line.lower()]


def test_shard_skips_and_counts_bad_metadata_rows(tiny_data, tmp_path, capsys):
    root, _ = tiny_data
    data = tmp_path / "data"
    data.mkdir()
    os.symlink(os.path.join(root, "train_audio"), data / "train_audio")
    meta = pd.read_csv(os.path.join(root, "train_metadata.csv"), dtype=str)
    extra = meta.iloc[[0, 1]].assign(filename=["../outside.ogg", meta["filename"].iat[2]])
    pd.concat([meta, extra]).to_csv(data / "train_metadata.csv", index=False)
    args = [x for o in tiny_overrides(tmp_path, "data.synthesize=false") for x in ("--set", o)]
    assert main(["shard", *args]) == 0
    out, err = capsys.readouterr()
    assert "escapes the data root" in err and "duplicate of row 4" in err
    assert (
        f"skipped 2 of {len(meta) + 2} metadata rows: 1 duplicate row, 1 path outside the data root"
        in out + err
    )


# ----------------------------------------------------------------------------- score tables


def score_tables(folder):
    truth = pd.DataFrame(
        {"row_id": ["s_5", "s_10", "t_5", "t_10"], "a": [1, 0, 0, 1], "b": [0, 1, 1, 0]}
    )
    pred = truth.assign(a=[0.9, 0.2, 0.3, 0.8], b=[0.1, 0.7, 0.6, 0.4])
    paths = {"truth": str(folder / "truth.csv"), "pred": str(folder / "pred.csv")}
    truth.to_csv(paths["truth"], index=False)
    pred.to_csv(paths["pred"], index=False)
    return paths, truth, pred


SCORE_CASES = {
    "missing class column": (
        lambda p: p.drop(columns="b"),
        "pred.csv: column 'b' of {truth} is missing",
    ),
    "unknown class column": (
        lambda p: p.assign(zz=0.5),
        "{truth}: column 'zz' of {pred} is missing",
    ),
    "duplicate row": (
        lambda p: pd.concat([p, p.iloc[[1]]]),
        "pred.csv: row_id 's_10' appears more than once",
    ),
    "missing row": (
        lambda p: p.iloc[1:],
        "pred.csv: row_id 's_5' of {truth} is missing (1 rows in all)",
    ),
    "NaN": (
        lambda p: p.assign(a=[0.9, None, 0.3, 0.8]),
        "pred.csv: row 's_10', column 'a': nan is not a finite",
    ),
    "text": (
        lambda p: p.assign(b=["x", 0.7, 0.6, 0.4]),
        "pred.csv: row 's_5', column 'b': 'x' is not a finite",
    ),
    "no row_id": (lambda p: p.drop(columns="row_id"), "pred.csv: no `row_id` column"),
}


@pytest.mark.parametrize("case", SCORE_CASES)
def test_bad_score_table_is_one_line_exit_2(tmp_path, capsys, case):
    paths, _, pred = score_tables(tmp_path)
    edit, message = SCORE_CASES[case]
    edit(pred).to_csv(paths["pred"], index=False)
    assert main(["evaluate", "--pred", paths["pred"], "--truth", paths["truth"]]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("birdtpu evaluate: error: "), err
    assert message.format(**paths) in err[0]


@pytest.mark.parametrize("verb", [["evaluate"], ["plot", "scores"]])
@pytest.mark.parametrize(
    "content, message",
    [
        (None, "file not found"),
        ("", "not a readable CSV"),
        (b"\xff\xfe\x00\x80binary", "not a readable CSV"),
    ],
)
def test_unreadable_score_table(tmp_path, capsys, verb, content, message):
    paths, _, _ = score_tables(tmp_path)
    os.remove(paths["pred"])
    if content is not None:
        with open(paths["pred"], "wb") as fh:
            fh.write(content if isinstance(content, bytes) else content.encode())
    assert main([*verb, "--pred", paths["pred"], "--truth", paths["truth"]]) == 2
    assert capsys.readouterr().err.startswith(
        f"birdtpu {verb[0]}: error: {paths['pred']}: {message}"
    )


def test_stack_names_the_bad_oof_table(tmp_path, capsys):
    paths, _, pred = score_tables(tmp_path)
    other = str(tmp_path / "other.csv")
    pd.concat([pred, pred.iloc[[0]]]).to_csv(other, index=False)
    assert (
        main(
            [
                "stack",
                "--oof",
                paths["pred"],
                other,
                "--truth",
                paths["truth"],
                "--out",
                str(tmp_path / "s"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == f"birdtpu stack: error: {other}: row_id 's_5' appears more than once"


def test_a_file_of_bad_rows_only_is_one_line(tmp_path, capsys):
    path = write_metadata(str(tmp_path), [["a", "[]", "../x.ogg"], ["", "[]", "a/1.ogg"]])
    assert main(["catalog", "--source", f"birdclef={tmp_path}"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"birdtpu catalog: error: {path}: all 2 rows are unusable "
        f"(first: {path} row 2: path '../x.ogg' escapes the data root)"
    )
