"""Catalog readers on fixture CSVs of every format, merging, cleaning, errors, table files."""

import ast
import csv
import json
import os
import shutil

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from birdtpu.data import catalog
from birdtpu.errors import DataError

DATA = os.path.join(os.path.dirname(__file__), "data", "catalog")
AUDIO = os.path.join(DATA, "audio")


def read(fmt, folder, **kwargs):
    return catalog.read_source(fmt, os.path.join(DATA, folder), **kwargs)


def write_csv(path, header, rows):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


BIRDCLEF_HEADER = ["primary_label", "secondary_labels", "author", "rating", "url", "filename"]


# ----------------------------------------------------------------------------- formats


def test_birdclef2021_audio_is_under_the_label_folder():
    df = read("birdclef2021", "birdclef2021")
    assert list(df.columns) == catalog.CANONICAL
    root = os.path.join(DATA, "birdclef2021", "train_short_audio")
    assert df["filepath"].tolist() == [
        os.path.join(root, f)
        for f in [
            "acafly/XC109605.ogg",
            "acafly/XC11209.ogg",
            "amegfi/XC134874.ogg",
            "norcar/XC200001.ogg",
        ]
    ]
    assert df["labels"].tolist() == [
        ["acafly", "amegfi"],
        ["acafly"],
        ["amegfi", "acafly", "norcar"],
        ["norcar"],
    ]
    assert df["xc_id"].tolist() == ["XC109605", "XC11209", "XC134874", "XC200001"]
    assert df["author"].iloc[1] == "Allen T. Chartier"
    assert df["rating"].tolist() == [2.5, 3.0, 4.0, 5.0]
    assert df["latitude"].iloc[0] == pytest.approx(35.386)
    assert (df["source"] == "birdclef2021").all() and df["positive"].all()


@pytest.mark.parametrize(
    "year, rows, second",
    [
        (2022, 3, ["apapan", "hawama"]),
        (2023, 3, ["abhori1", "abethr1"]),
        (2024, 4, ["asbfly", "ashdro1"]),
    ],
)
def test_birdclef_2022_to_2024(year, rows, second):
    df = read(f"birdclef{year}", f"birdclef{year}")
    assert len(df) == rows and list(df.columns) == catalog.CANONICAL
    assert df["labels"].iloc[1] == second and df["label"].iloc[1] == second[0]
    audio = os.path.join(DATA, f"birdclef{year}", "train_audio")
    assert all(p == os.path.join(audio, f) for p, f in zip(df["filepath"], df["filename"]))
    assert df["xc_id"].str.match(r"^XC\d+$").all()
    assert df["duration"].isna().all() and df["other_labels"].map(len).eq(0).all()


def test_cornell_secondary_names_become_codes():
    df = read("birdclef2020", "birdclef2020")
    assert len(df) == 4  # one description spans two lines inside quotes
    assert df["filename"].tolist() == [
        "amegfi/XC134874.mp3",
        "amerob/XC100002.mp3",
        "aldfly/XC100003.mp3",
        "amerob/XC100004.mp3",
    ]
    assert df["labels"].tolist() == [
        ["amegfi", "amerob"],
        ["amerob"],
        ["aldfly"],
        ["amerob", "amegfi"],
    ]
    assert df["other_labels"].iloc[0] == ["Empidonax minimus_Least Flycatcher"]
    assert df["xc_id"].tolist() == ["XC134874", "XC100002", "XC100003", "XC100004"]
    assert df["duration"].tolist() == [25.0, 36.0, 12.0, 48.0]
    assert np.isnan(df["latitude"].iloc[2]) and np.isnan(df["longitude"].iloc[2])  # "Not specified"


def test_xeno_canto_parts_split_one_csv_by_letter():
    am, nz = read("xc-am", "xc"), read("xc-nz", "xc")
    assert am["label"].tolist() == ["aldfly", "amerob"] and nz["label"].tolist() == [
        "norcar",
        "woothr",
    ]
    assert all("/xc/A-M/" in p for p in am["filepath"]) and all(
        "/xc/N-Z/" in p for p in nz["filepath"]
    )
    assert nz["labels"].iloc[0] == [
        "norcar",
        "amerob",
    ]  # resolved from the whole file, not the part
    assert nz["other_labels"].iloc[0] == ["Sialia sialis_Eastern Bluebird"]
    assert set(am["source"]) == {"xc-am"} and set(nz["source"]) == {"xc-nz"}


def test_fat2019_multilabel_targets():
    df = read("fat2019-curated", "fat2019")
    assert df["label"].tolist() == [
        "Bark",
        "Raindrop",
        "Finger_snapping",
        "Accelerating_and_revving_and_vroom",
        "Bark",
    ]
    assert len(df["labels"].iloc[3]) == 7 and df["labels"].iloc[4] == ["Bark", "Run"]
    assert df["filepath"].iloc[0] == os.path.join(DATA, "fat2019", "train_curated", "0006ae4e.wav")
    y = catalog.targets(df, catalog.label_map(df))
    assert y.sum(axis=1).tolist() == [1, 1, 2, 7, 2]
    noisy = read("fat2019-noisy", "fat2019")
    assert noisy["labels"].iloc[3] == ["Water_tap_and_faucet", "Sink_(filling_or_washing)"]
    assert noisy["filepath"].iloc[0].endswith("/train_noisy/00097e21.wav")


def test_rainforest_boxes_and_false_positives():
    tp, fp = read("rfcx-tp", "rfcx"), read("rfcx-fp", "rfcx")
    assert tp[["t_min", "f_min", "t_max", "f_max"]].iloc[0].tolist() == [
        44.544,
        2531.25,
        45.1307,
        5531.25,
    ]
    assert tp["songtype"].iloc[3] == 4 and tp["label"].iloc[0] == "14"
    assert tp["positive"].all() and not fp["positive"].any()
    both = set(tp["filepath"]) & set(fp["filepath"])
    assert both == {os.path.join(DATA, "rfcx", "train", "003bec244.flac")}
    df = catalog.merge([tp, fp])
    y = catalog.targets(df, catalog.label_map(df))
    assert y[: len(tp)].sum(axis=1).tolist() == [1] * len(tp)
    assert not y[len(tp) :].any()  # verified absences are negatives


def test_unknown_format_is_named():
    with pytest.raises(DataError, match="unknown metadata format 'birdclef1999'"):
        catalog.read_source("birdclef1999", DATA)


# ----------------------------------------------------------------------------- vectorised reader vs rows


def reference_rows(path, audio_root):
    """A plain csv-module reading of a BirdCLEF metadata file, one row at a time."""
    out = []
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            primary = row["primary_label"].strip()
            secondary = (
                ast.literal_eval(row["secondary_labels"]) if row["secondary_labels"].strip() else []
            )
            labels = [primary]
            for s in secondary:
                if s.strip() and s.strip() not in labels:
                    labels.append(s.strip())
            out.append(
                (os.path.normpath(os.path.join(audio_root, row["filename"])), primary, labels)
            )
    return out


def test_vectorised_reader_agrees_with_a_row_by_row_reading(tmp_path):
    rng = np.random.default_rng(3)
    names = ["a1", "b2", "c3", "Cooper's hawk", "d 4"]
    rows = []
    for i in range(300):
        primary = names[rng.integers(5)]
        secondary = [names[j] for j in rng.integers(0, 5, rng.integers(0, 4))]
        cell = repr(secondary) if i % 7 else json.dumps(secondary)
        name = f"./x/{primary}/XC{i}.ogg" if i % 11 == 0 else f"{primary}/XC{i}.ogg"
        rows.append([primary, cell if i % 13 else " [ ] ", "A", 3.0, "", name])
    path = write_csv(str(tmp_path / "train_metadata.csv"), BIRDCLEF_HEADER, rows)
    df = catalog.read_birdclef(str(tmp_path))
    expected = reference_rows(path, str(tmp_path / "train_audio"))
    assert list(zip(df["filepath"], df["label"], df["labels"])) == expected


# ----------------------------------------------------------------------------- errors


def test_missing_column_names_the_file(tmp_path):
    path = write_csv(
        str(tmp_path / "train_metadata.csv"), ["primary_label", "secondary_labels"], [["a", "[]"]]
    )
    with pytest.raises(DataError, match=rf"{path}: missing column\(s\) filename"):
        catalog.read_birdclef(str(tmp_path))
    with pytest.raises(DataError, match="missing column.*t_max"):
        write_csv(
            str(tmp_path / "train_tp.csv"),
            ["recording_id", "species_id", "songtype_id", "t_min"],
            [],
        )
        catalog.read_rainforest(str(tmp_path))


def test_missing_metadata_file(tmp_path):
    with pytest.raises(DataError, match="train.csv: metadata file not found"):
        catalog.read_cornell(str(tmp_path))


def test_unknown_label_in_a_finetuning_set_names_file_and_row():
    path = os.path.join(DATA, "birdclef2024", "train_metadata.csv")
    with pytest.raises(
        DataError, match=rf"{path} row 4: primary label 'ashdro1' is not one of the 2 classes"
    ):
        read("birdclef2024", "birdclef2024", classes=["asbfly", "norcar"])
    bad = []
    df = read("birdclef2024", "birdclef2024", classes=["asbfly", "norcar"], bad_rows=bad)
    assert df["label"].tolist() == ["asbfly", "asbfly", "norcar"]
    assert df["labels"].iloc[1] == ["asbfly"] and df["other_labels"].iloc[1] == [
        "ashdro1"
    ]  # secondary: kept aside
    assert bad[0][["reason", "detail"]].values.tolist() == [
        ["unknown label", f"{path} row 4: primary label 'ashdro1' is not one of the 2 classes"]
    ]
    fat = read(
        "fat2019-curated", "fat2019", classes=["Bark", "Raindrop", "Finger_snapping"], bad_rows=[]
    )
    assert fat["labels"].iloc[2] == ["Finger_snapping"] and fat["other_labels"].iloc[2] == ["Run"]


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd", "a/../../b.ogg", ".."])
def test_filename_escaping_the_root_is_refused(tmp_path, name):
    rows = [["a", "[]", "A", 3, "", "a/XC1.ogg"], ["a", "[]", "A", 3, "", name]]
    path = write_csv(str(tmp_path / "train_metadata.csv"), BIRDCLEF_HEADER, rows)
    with pytest.raises(DataError, match=rf"{path} row 3: path '{name}' escapes the data root"):
        catalog.read_birdclef(str(tmp_path))


def test_dot_segments_inside_the_root_are_normalised(tmp_path):
    rows = [["a", "[]", "A", 3, "", "a/./x/../XC1.ogg"], ["a", "[]", "A", 3, "", "a//XC2.ogg"]]
    write_csv(str(tmp_path / "train_metadata.csv"), BIRDCLEF_HEADER, rows)
    df = catalog.read_birdclef(str(tmp_path))
    assert df["filename"].tolist() == ["a/XC1.ogg", "a/XC2.ogg"]


def test_duplicate_row_names_both_rows(tmp_path):
    rows = [
        ["a", "[]", "A", 3, "", "a/XC1.ogg"],
        ["b", "[]", "B", 3, "", "b/XC2.ogg"],
        ["a", "['b']", "A", 4, "", "a/XC1.ogg"],
    ]
    path = write_csv(str(tmp_path / "train_metadata.csv"), BIRDCLEF_HEADER, rows)
    with pytest.raises(DataError, match=rf"{path} row 4: duplicate of row 2"):
        catalog.read_birdclef(str(tmp_path))
    rfcx = write_csv(
        str(tmp_path / "train_fp.csv"),
        ["recording_id", "species_id", "songtype_id", *catalog.BOXES],
        [["r1", 3, 1, 1.0, 2.0, 100, 200], ["r1", 3, 1, 1.0, 2.0, 100, 200]],
    )
    with pytest.raises(DataError, match=rf"{rfcx} row 3: duplicate of row 2"):
        catalog.read_rainforest(str(tmp_path), "fp")


def test_each_skipped_duplicate_names_the_first_good_row_of_its_file(tmp_path):
    rows = [
        ["a", "[]", "A", 3, "", "../x.ogg"],
        ["a", "[]", "A", 3, "", "a/1.ogg"],
        ["b", "[]", "B", 3, "", "b/2.ogg"],
        ["a", "[]", "A", 3, "", "a/1.ogg"],
        ["b", "[]", "B", 3, "", "b/2.ogg"],
        ["a", "[]", "A", 3, "", "a/1.ogg"],
    ]
    write_csv(str(tmp_path / "train_metadata.csv"), BIRDCLEF_HEADER, rows)
    bad = []
    df = catalog.read_birdclef(str(tmp_path), bad_rows=bad)
    assert df["filename"].tolist() == ["a/1.ogg", "b/2.ogg"]
    details = [d.split(": ", 1)[1] for d in pd.concat(bad)["detail"]]
    assert details[0] == "path '../x.ogg' escapes the data root"
    assert [d.split(" (")[0] for d in details[1:]] == [
        "duplicate of row 3",
        "duplicate of row 4",
        "duplicate of row 3",
    ]


@pytest.mark.parametrize(
    "cell, row, message",
    [("['a', 'b'", 3, "malformed label list"), ("{'a': 1}", 3, "malformed label list")],
)
def test_malformed_secondary_labels(tmp_path, cell, row, message):
    rows = [["a", "[]", "A", 3, "", "a/XC1.ogg"], ["a", cell, "A", 3, "", "a/XC2.ogg"]]
    write_csv(str(tmp_path / "train_metadata.csv"), BIRDCLEF_HEADER, rows)
    with pytest.raises(DataError, match=rf"row {row}: {message}"):
        catalog.read_birdclef(str(tmp_path))


def test_empty_label_and_bad_box_name_the_row(tmp_path):
    write_csv(
        str(tmp_path / "train_metadata.csv"),
        BIRDCLEF_HEADER,
        [["a", "[]", "A", 3, "", "a/XC1.ogg"], [" ", "[]", "A", 3, "", "a/XC2.ogg"]],
    )
    with pytest.raises(DataError, match="row 3: empty primary_label"):
        catalog.read_birdclef(str(tmp_path))
    write_csv(
        str(tmp_path / "train_tp.csv"),
        ["recording_id", "species_id", "songtype_id", *catalog.BOXES],
        [["r1", 3, 1, 1.0, 2.0, 100, 200], ["r2", 3, 1, 5.0, 4.0, 100, 200]],
    )
    with pytest.raises(DataError, match="row 3: empty or negative box"):
        catalog.read_rainforest(str(tmp_path))


# ----------------------------------------------------------------------------- merge, dedupe, exclude


def pretraining_sources():
    return catalog.merge(
        [
            read("birdclef2024", "birdclef2024"),
            read("birdclef2021", "birdclef2021"),
            read("birdclef2020", "birdclef2020"),
            read("xc-am", "xc"),
            read("xc-nz", "xc"),
        ]
    )


def test_deduplicate_by_xc_id_keeps_the_first_source():
    df = pretraining_sources()
    kept, dropped = catalog.deduplicate(df)
    assert len(kept) + len(dropped) == len(df) == 16
    assert sorted(dropped["source"] + ":" + dropped["filepath"].str.rsplit("/", n=1).str[-1]) == [
        "birdclef2020:XC134874.mp3",
        "birdclef2021:XC200001.ogg",
        "xc-am:XC100002.mp3",
    ]
    assert kept["xc_id"].dropna().is_unique
    row = dropped[dropped["source"] == "birdclef2021"].iloc[0]
    assert row["reason"] == "duplicate" and row["detail"].endswith(
        "birdclef2024/train_audio/norcar/XC200001.ogg"
    )


def test_deduplicate_with_label_and_author_keeps_a_respelled_author():
    kept, dropped = catalog.deduplicate(pretraining_sources(), ("xc_id", "label", "author"))
    assert len(dropped) == 2 and "XC200001" in set(kept["xc_id"])  # "John Roe" vs "J. Roe"


def test_rows_without_xc_id_are_never_duplicates():
    df = catalog.merge([read("fat2019-curated", "fat2019"), read("rfcx-tp", "rfcx")])
    kept, dropped = catalog.deduplicate(df)
    assert len(kept) == len(df) and dropped.empty and list(dropped.columns) == catalog.DROPPED


def test_deduplicate_on_a_missing_column():
    with pytest.raises(DataError, match="cannot de-duplicate on nope"):
        catalog.deduplicate(read("birdclef2024", "birdclef2024"), ("nope",))


def test_exclude_recordings_of_the_finetuning_set():
    pre = catalog.merge(
        [read("birdclef2021", "birdclef2021"), read("birdclef2022", "birdclef2022")]
    )
    kept, dropped = catalog.exclude_recordings(pre, read("birdclef2024", "birdclef2024"))
    assert dropped["filepath"].str.endswith("norcar/XC200001.ogg").tolist() == [True]
    assert dropped["reason"].tolist() == ["in fine-tuning set"] and len(kept) == len(pre) - 1


def test_label_map_and_targets_with_secondary_weight():
    df = read("birdclef2021", "birdclef2021")
    classes = catalog.label_map(df)
    assert classes == ["acafly", "amegfi", "norcar"]
    y = catalog.targets(df, classes, secondary_weight=0.3)
    assert y.dtype == np.float32 and y.shape == (4, 3)
    np.testing.assert_allclose(y[2], [0.3, 1.0, 0.3])
    np.testing.assert_allclose(y[0], [1.0, 0.3, 0.0])
    assert catalog.label_map(read("birdclef2024", "birdclef2024"), primary_only=True) == [
        "asbfly",
        "ashdro1",
        "norcar",
    ]
    with pytest.raises(DataError, match="catalog row 0: label 'acafly' is not in the label map"):
        catalog.targets(df, ["amegfi", "norcar"])


# ----------------------------------------------------------------------------- corrupt files and audio


def test_corrupt_lists_in_json_and_text():
    assert catalog.read_corrupt_list(os.path.join(DATA, "corrupt.json")) == {
        "train_short_audio/norcar/XC200001.ogg": "in corrupt-file list",
        "XC999999.mp3": "in corrupt-file list",
    }
    entries = catalog.read_corrupt_list(os.path.join(DATA, "corrupt.txt"))
    assert entries == {
        "train_audio/amerob/XC100004.mp3": "all-zero audio",
        "XC300012.mp3": "in corrupt-file list",
    }


def test_drop_listed_matches_whole_paths_and_tails():
    df = pretraining_sources()
    entries = {
        **catalog.read_corrupt_list(os.path.join(DATA, "corrupt.json")),
        **catalog.read_corrupt_list(os.path.join(DATA, "corrupt.txt")),
        df["filepath"].iloc[0]: "whole path",
        "amerob/XC100004.mp3x": "no such file",
    }
    kept, dropped, unmatched = catalog.drop_listed(df, entries)
    assert sorted(dropped["filepath"].str.rsplit("/", n=1).str[-1]) == [
        "XC100004.mp3",
        "XC134896.ogg",
        "XC200001.ogg",
        "XC300012.mp3",
    ]
    assert unmatched == ["XC999999.mp3", "amerob/XC100004.mp3x"]
    assert "all-zero audio" in dropped[dropped["source"] == "birdclef2020"]["detail"].iloc[0]
    assert len(kept) == len(df) - 4


def test_corrupt_list_errors(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2")
    with pytest.raises(DataError, match="bad.json: not valid JSON"):
        catalog.read_corrupt_list(str(bad))
    with pytest.raises(DataError, match="corrupt-file list not found"):
        catalog.read_corrupt_list(str(tmp_path / "none.txt"))


def audio_layout(root):
    """A BirdCLEF 2024 layout: two real clips, an all-zero clip, a non-audio file and a missing file."""
    audio = os.path.join(root, "train_audio", "gretit1")
    os.makedirs(audio)
    for name in ("2021-B32-0415_05-3.wav", "2021-SW83-0418_04-77.wav"):
        shutil.copy(os.path.join(AUDIO, name), audio)
    sf.write(os.path.join(audio, "zero.wav"), np.zeros(22050, np.float32), 22050, subtype="PCM_16")
    with open(os.path.join(audio, "garbage.ogg"), "wb") as fh:
        fh.write(b"not audio at all" * 10)
    names = [
        "2021-B32-0415_05-3.wav",
        "2021-SW83-0418_04-77.wav",
        "zero.wav",
        "garbage.ogg",
        "missing.ogg",
    ]
    write_csv(
        os.path.join(root, "train_metadata.csv"),
        BIRDCLEF_HEADER,
        [["gretit1", "[]", "Nilo Merino Recalde", 5.0, "", f"gretit1/{n}"] for n in names],
    )


def test_drop_unusable_reports_every_bad_file_and_fills_duration(tmp_path):
    audio_layout(str(tmp_path))
    df = catalog.read_source("birdclef2024", str(tmp_path))
    kept, dropped = catalog.drop_unusable(df)
    assert kept["filename"].tolist() == [
        "gretit1/2021-B32-0415_05-3.wav",
        "gretit1/2021-SW83-0418_04-77.wav",
    ]
    assert kept["duration"].tolist() == pytest.approx(
        [95256 / 2 / 22050, 97608 / 2 / 22050], abs=0.01
    )
    reasons = dict(zip(dropped["filepath"].str.rsplit("/", n=1).str[-1], dropped["detail"]))
    assert reasons["zero.wav"] == "all samples are zero"
    assert reasons["garbage.ogg"].startswith("unreadable") and reasons["missing.ogg"].startswith(
        "unreadable"
    )
    assert set(dropped["reason"]) == {"unusable audio"}


def test_probe_audio_in_worker_processes_matches_in_process(tmp_path):
    audio_layout(str(tmp_path))
    paths = catalog.read_source("birdclef2024", str(tmp_path))["filepath"].tolist()
    pooled, serial = catalog.probe_audio(paths, workers=2), catalog.probe_audio(paths, workers=1)
    assert [r for r, _ in pooled] == [r for r, _ in serial] and serial[2][
        0
    ] == "all samples are zero"
    np.testing.assert_allclose([s for _, s in pooled], [s for _, s in serial])  # NaN where unusable


# ----------------------------------------------------------------------------- table files and class lists


@pytest.mark.parametrize("name", ["table.csv", "table.csv.gz"])
def test_table_round_trip(tmp_path, name):
    df = catalog.merge([read("birdclef2020", "birdclef2020"), read("rfcx-fp", "rfcx")])
    path = str(tmp_path / "sub" / name)
    catalog.write_table(df, path)
    back = catalog.read_table(path)
    assert back["labels"].tolist() == df["labels"].tolist()
    assert back["other_labels"].tolist() == df["other_labels"].tolist()
    pd.testing.assert_frame_equal(
        back.drop(columns=list(catalog.LIST_COLUMNS)),
        df.drop(columns=list(catalog.LIST_COLUMNS)),
        check_dtype=False,
    )
    assert not [f for f in os.listdir(tmp_path / "sub") if f.startswith(".")]  # no temporary left


def test_parquet_needs_pyarrow(tmp_path):
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        with pytest.raises(DataError, match="writing parquet needs pyarrow"):
            catalog.write_table(read("birdclef2024", "birdclef2024"), str(tmp_path / "t.parquet"))
    else:
        pytest.skip("pyarrow is installed")


def test_class_lists(tmp_path):
    (tmp_path / "c.txt").write_text("b\n# comment\na\n\n")
    (tmp_path / "c.json").write_text('["x", "y"]')
    (tmp_path / "sample_submission.csv").write_text("row_id,asbfly,ashdro1\nr1,0.5,0.5\n")
    (tmp_path / "twice.txt").write_text("a\nb\na\n")
    assert catalog.read_class_list(str(tmp_path / "c.txt")) == ["b", "a"]
    assert catalog.read_class_list(str(tmp_path / "c.json")) == ["x", "y"]
    assert catalog.read_class_list(str(tmp_path / "sample_submission.csv")) == ["asbfly", "ashdro1"]
    with pytest.raises(DataError, match="class 'a' is listed twice"):
        catalog.read_class_list(str(tmp_path / "twice.txt"))


def test_parse_label_list_and_safe_join():
    assert catalog.parse_label_list("['a', \"b's\"]", "w") == ["a", "b's"]
    assert catalog.parse_label_list(float("nan"), "w") == [] and catalog.parse_label_list(
        ["x"], "w"
    ) == ["x"]
    with pytest.raises(DataError, match="^here: malformed label list"):
        catalog.parse_label_list("a, b", "here")
    assert catalog.safe_join("gs://bucket/data/", "a/./b.ogg", "w") == "gs://bucket/data/a/b.ogg"
    with pytest.raises(DataError, match="escapes the data root"):
        catalog.safe_join("/data", "a/../../b", "w")
