"""`birdtpu catalog`: summary, written files, audio checks, one-line errors, no TensorFlow import."""

import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from birdtpu.cli import main
from birdtpu.commands import catalog as command
from birdtpu.data import catalog

DATA = os.path.join(os.path.dirname(__file__), "data", "catalog")
CLIP = os.path.join(DATA, "audio", "2021-B32-0415_05-3.wav")  # real great tit song, 2.16 s


def dropped_counts(text):
    """{reason: rows} from the summary's `dropped` block."""
    return {
        m.group(1): int(m.group(2))
        for m in re.finditer(r"^  (\S.*?) +(\d+)(?: \(.*\))?$", text, re.M)
    }


def audio_layout(root):
    """BirdCLEF layout: a real clip, an all-zero clip, a non-audio file and a missing file."""
    audio = os.path.join(root, "train_audio", "gretit1")
    os.makedirs(audio)
    shutil.copy(CLIP, os.path.join(audio, "real.wav"))
    sf.write(os.path.join(audio, "zero.wav"), np.zeros(22050, np.float32), 22050, subtype="PCM_16")
    with open(os.path.join(audio, "garbage.ogg"), "wb") as fh:
        fh.write(b"not audio" * 20)
    rows = "".join(
        f"gretit1,[],gretit1/{n}\n" for n in ("real.wav", "zero.wav", "garbage.ogg", "missing.ogg")
    )
    with open(os.path.join(root, "train_metadata.csv"), "w") as fh:
        fh.write("primary_label,secondary_labels,filename\n" + rows)


def source(fmt, folder):
    return ["--source", f"{fmt}={os.path.join(DATA, folder)}"]


PRETRAIN = [
    *source("birdclef2021", "birdclef2021"),
    *source("birdclef2020", "birdclef2020"),
    *source("xc-am", "xc"),
    *source("xc-nz", "xc"),
]


def test_pretraining_merge_summary_and_files(tmp_path, capsys):
    out = str(tmp_path / "pretrain.csv")
    code = main(
        [
            "catalog",
            *PRETRAIN,
            "--exclude-finetune",
            f"birdclef2024={DATA}/birdclef2024",
            "--corrupt-list",
            os.path.join(DATA, "corrupt.txt"),
            "--folds",
            "2",
            "--cv-min",
            "2",
            "--seed",
            "3",
            "--out",
            out,
        ]
    )
    text = capsys.readouterr().out
    assert code == 0
    lines = text.splitlines()
    assert lines[0].split() == ["source", "read", "kept", "dropped", "classes"]
    assert lines[1].split() == [
        "birdclef2021",
        "4",
        "3",
        "1",
        "2",
    ]  # XC200001: in the fine-tuning set
    assert lines[2].split() == [
        "birdclef2020",
        "4",
        "2",
        "2",
        "2",
    ]  # XC134874 duplicate, XC100004 corrupt
    assert lines[5].split() == ["total", "12", "7", "5", "5"]
    assert dropped_counts(text) == {"duplicate": 2, "in fine-tuning set": 1, "corrupt list": 2}
    assert "folds (stratified, by recording, seed 3): train-only: " in text
    assert f"wrote 7 rows, 5 classes: {out}" in text
    table = catalog.read_table(out)
    assert len(table) == 7 and set(table["fold"]) <= {-1, 0, 1}
    assert (table.groupby("filepath")["fold"].nunique() == 1).all()
    assert table.loc[~table["cv"], "fold"].eq(-1).all()
    assert open(str(tmp_path / "pretrain.classes.txt")).read().split() == sorted(
        {x for labels in table["labels"] for x in labels}
    )
    dropped = pd.read_csv(str(tmp_path / "pretrain.dropped.csv"))
    assert list(dropped.columns) == catalog.DROPPED
    assert sorted(dropped["reason"]) == ["corrupt list"] * 2 + ["duplicate"] * 2 + [
        "in fine-tuning set"
    ]


def test_finetuning_set_with_a_class_list(tmp_path, capsys):
    classes = tmp_path / "sample_submission.csv"
    classes.write_text("row_id,asbfly,ashdro1,norcar\n")
    out = str(tmp_path / "ft.csv.gz")
    assert (
        main(
            [
                "catalog",
                *source("birdclef2024", "birdclef2024"),
                "--classes",
                str(classes),
                "--folds",
                "2",
                "--out",
                out,
            ]
        )
        == 0
    )
    assert open(str(tmp_path / "ft.classes.txt")).read().split() == ["asbfly", "ashdro1", "norcar"]
    assert len(catalog.read_table(out)) == 4
    assert "dropped 0 rows" in capsys.readouterr().out


def test_unknown_primary_label_is_skipped_and_counted(tmp_path, capsys):
    classes = tmp_path / "classes.txt"
    classes.write_text("asbfly\nnorcar\n")
    code = main(
        [
            "catalog",
            *source("birdclef2024", "birdclef2024"),
            "--classes",
            str(classes),
            "--folds",
            "0",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0
    assert (
        f"catalog: skip {DATA}/birdclef2024/train_metadata.csv row 4: primary label 'ashdro1'"
        in err
    )
    assert dropped_counts(out) == {"unknown label": 1}
    assert "catalog: skipped 1 of 4 metadata rows: 1 unknown label" in out
    assert "1 secondary label(s) without a class code kept in other_labels" in out


def test_escaping_path_exits_2(tmp_path, capsys):
    (tmp_path / "train_metadata.csv").write_text(
        "primary_label,secondary_labels,filename\na,[],../../x.ogg\n"
    )
    assert main(["catalog", "--source", f"birdclef={tmp_path}"]) == 2
    assert "row 2: path '../../x.ogg' escapes the data root" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args, message",
    [
        (["--source", "birdclef2024"], "expected FORMAT=DIR"),
        (["--source", "birdclef1999=/x"], "unknown metadata format 'birdclef1999'"),
        (
            [*source("birdclef2024", "birdclef2024"), "--folds", "1"],
            "--folds 1 cannot validate anything",
        ),
        ([*source("birdclef2024", "birdclef2024"), "--folds", "9"], "cannot fill 9 folds"),
        (
            [
                *source("birdclef2024", "birdclef2024"),
                "--min-per-class",
                "9",
            ],
            "--min-per-class: copies in the table would land in validation folds; set "
            "data.min_per_class: 9 in the recipe",
        ),
        (
            [*source("birdclef2024", "birdclef2024"), "--dedupe", "xc_id,colour"],
            "cannot de-duplicate on colour",
        ),
    ],
)
def test_bad_arguments_exit_2(args, message, capsys):
    assert main(["catalog", *args]) == 2
    assert message in capsys.readouterr().err


def test_check_audio_lists_bad_files_and_the_list_is_reusable(tmp_path, capsys):
    audio_layout(str(tmp_path / "data"))
    out = str(tmp_path / "checked.csv")
    args = [
        "catalog",
        "--source",
        f"birdclef2024={tmp_path / 'data'}",
        "--folds",
        "0",
        "--out",
        out,
    ]
    assert main([*args, "--check-audio"]) == 0
    text = capsys.readouterr().out
    assert "unusable audio              3 (unreadable: 2, all samples are zero: 1)" in text
    assert dropped_counts(text) == {"unusable audio": 3}
    bad = json.load(open(str(tmp_path / "checked.corrupt.json")))
    assert sorted(os.path.basename(p) for p in bad) == ["garbage.ogg", "missing.ogg", "zero.wav"]
    table = catalog.read_table(out)
    assert table["filename"].tolist() == ["gretit1/real.wav"]
    assert table["duration"].iloc[0] == pytest.approx(2.16, abs=0.01)
    assert main([*args, "--corrupt-list", str(tmp_path / "checked.corrupt.json")]) == 0
    assert dropped_counts(capsys.readouterr().out) == {"corrupt list": 3}


def test_downsampled_rows_are_counted_as_dropped(tmp_path, capsys):
    out = str(tmp_path / "down.csv")
    assert (
        main(
            [
                "catalog",
                *source("rfcx-tp", "rfcx"),
                *source("rfcx-fp", "rfcx"),
                "--max-per-class",
                "1",
                "--folds",
                "0",
                "--out",
                out,
            ]
        )
        == 0
    )
    assert dropped_counts(capsys.readouterr().out) == {"downsampled": 3}
    assert catalog.read_table(out)["label"].value_counts().max() == 1


def test_parquet_without_pyarrow_is_a_clear_error(tmp_path, capsys):
    try:
        import pyarrow  # noqa: F401

        pytest.skip("pyarrow is installed")
    except ImportError:
        pass
    assert (
        main(
            [
                "catalog",
                *source("birdclef2024", "birdclef2024"),
                "--folds",
                "0",
                "--out",
                str(tmp_path / "t.parquet"),
            ]
        )
        == 2
    )
    assert "writing parquet needs pyarrow" in capsys.readouterr().err


def test_format_names_in_help_match_the_readers():
    assert command.FORMAT_NAMES.split() == list(catalog.FORMATS)


def test_no_tensorflow_import_for_local_catalogs(tmp_path):
    code = (
        f"import sys; from birdtpu.cli import main; "
        f"rc = main(['catalog', '--source', 'birdclef2024={DATA}/birdclef2024', '--folds', '2', "
        f"'--out', '{tmp_path}/t.csv']); "
        f"print(rc, 'tensorflow' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.stdout.strip().splitlines()[-1] == "0 False", result.stderr


def test_warns_when_grouping_leaves_a_fold_empty(capsys):
    assert (
        main(
            [
                "catalog",
                *source("birdclef2022", "birdclef2022"),
                "--folds",
                "2",
                "--group-by",
                "author",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "folds (stratified, by author, seed 42): train-only: 3, 0: 0, 1: 0" in text
    assert "warning: fold(s) 0, 1 validate nothing: too few authors per class" in text
