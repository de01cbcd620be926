import os

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from birdtpu.config import SynthConfig
from birdtpu.data import catalog
from birdtpu.data.audio import write_audio
from birdtpu.data.catalog.birdclef_plus import (
    list_unlabelled_soundscapes,
    read_soundscape_labels,
    read_taxonomy,
    taxon_classes,
)
from birdtpu.data.synth import species_taxa, write_dataset
from birdtpu.errors import ConfigError, DataError

# the real headers (see the module docstring for where each was confirmed)
TRAIN25 = (
    "primary_label,secondary_labels,type,filename,collection,rating,url,latitude,longitude,"
    "scientific_name,common_name,author,license"
)
TRAIN26 = (
    "primary_label,secondary_labels,type,latitude,longitude,scientific_name,common_name,"
    "class_name,inat_taxon_id,author,license,rating,url,filename,collection"
)
TAXONOMY = "primary_label,inat_taxon_id,scientific_name,common_name,class_name"
LABELS = "filename,start,end,primary_label"


def write(path, *lines):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    return str(path)


def tone(path, seconds, rate=32000):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    write_audio(str(path), 0.3 * np.sin(2 * np.pi * 1000 * t).astype(np.float32), rate)


def test_train_csv_2025_reads_into_the_canonical_table(tmp_path):
    write(
        tmp_path / "train.csv",
        TRAIN25,
        "1139490,[''],[''],1139490/CSA36385.ogg,CSA,0.0,http://colecciones.humboldt.org.co/x,"
        "7.3206,-73.7128,Ragoniella pulchella,Ragoniella pulchella,Fabio A. Sarria-S,cc-by-nc-sa 4.0",
        "grekis,\"['compau', '1139490']\",['song'],grekis/XC123456.ogg,XC,4.5,"
        "https://xeno-canto.org/123456,7.1,-73.2,Pitangus sulphuratus,Great Kiskadee,A B,cc-by 4.0",
    )
    df = catalog.read_source("birdclef25", str(tmp_path))
    assert list(df.columns) == catalog.CANONICAL
    assert df.label.tolist() == ["1139490", "grekis"]
    assert df.labels.tolist() == [["1139490"], ["grekis", "compau", "1139490"]]
    assert df.filepath.tolist() == [
        f"{tmp_path}/train_audio/1139490/CSA36385.ogg",
        f"{tmp_path}/train_audio/grekis/XC123456.ogg",
    ]
    assert df.xc_id.isna().tolist() == [True, False] and df.xc_id[1] == "XC123456"
    assert df.rating.tolist() == [0.0, 4.5] and df.latitude.tolist() == [7.3206, 7.1]
    assert (df.source == "birdclef25").all()
    bad = []  # a primary label outside the classes is a bad row; a secondary one moves aside
    kept = catalog.read_source("birdclef25", str(tmp_path), ["grekis", "compau"], bad)
    assert kept.labels.tolist() == [["grekis", "compau"]]
    assert kept.other_labels.tolist() == [["1139490"]]
    assert bad[0].reason.tolist() == ["unknown label"]
    assert bad[0].detail[0].startswith(f"{tmp_path}/train.csv row 2: primary label '1139490'")


def test_train_csv_2026_reads_numeric_labels_as_text(tmp_path):
    write(
        tmp_path / "train.csv",
        TRAIN26,
        "22961,[],[],-16.5,-56.7,Leptodactylus podicipinus,Pointedbelly Frog,Amphibia,22961,"
        "C D,cc-by-nc 4.0,0.0,https://static.inaturalist.org/sounds/1.wav,22961/iNat1216197.ogg,iNat",
        "ashgre1,['22961'],['call'],-1.0,-2.0,Aratinga weddellii,Ash-breasted Parakeet,Aves,1,"
        "Bob,cc-by,3.5,https://xeno-canto.org/77,ashgre1/XC77.ogg,XC",
        ",[],[],0,0,x,y,Aves,2,E,cc,1.0,u,ashgre1/XC78.ogg,XC",
    )
    with pytest.raises(DataError, match=r"train\.csv row 4: empty primary_label"):
        catalog.read_source("birdclef26", str(tmp_path))
    bad = []
    df = catalog.read_source("birdclef26", str(tmp_path), bad_rows=bad)
    assert df.label.tolist() == ["22961", "ashgre1"]
    assert df.labels.tolist() == [["22961"], ["ashgre1", "22961"]]
    assert df.filename.tolist() == ["22961/iNat1216197.ogg", "ashgre1/XC77.ogg"]
    assert df.xc_id.isna().tolist() == [True, False]
    assert bad[0].reason.tolist() == ["empty primary_label"]


def test_taxonomy_and_the_classes_of_a_taxon(tmp_path):
    path = write(
        tmp_path / "taxonomy.csv",
        TAXONOMY,
        "1139490,1139490,Ragoniella pulchella,Ragoniella pulchella,Insecta",
        "grekis,16145,Pitangus sulphuratus,Great Kiskadee,Aves",
        "22961,22961,Leptodactylus podicipinus,Pointedbelly Frog,Amphibia",
        "47158son01,47158,Insecta sonotype 1,Sonotype 1,Insecta",
    )
    tax = read_taxonomy(path)
    assert list(tax.columns) == [
        "primary_label",
        "scientific_name",
        "common_name",
        "taxon",
        "inat_taxon_id",
    ]
    assert tax.primary_label.tolist() == ["1139490", "grekis", "22961", "47158son01"]
    assert tax.inat_taxon_id.tolist() == [1139490, 16145, 22961, 47158]
    assert taxon_classes(tax, "Insecta") == ["1139490", "47158son01"]
    assert taxon_classes(tax, "Amphibia") == ["22961"]
    with pytest.raises(
        DataError,
        match=r"taxon 'Mammalia' is not in the taxonomy \(it has Amphibia, Aves, Insecta\)",
    ):
        taxon_classes(tax, "Mammalia")


@pytest.mark.parametrize(
    "rows, message",
    [
        (["grekis,1,a,b,Aves", "grekis,2,c,d,Aves"], "row 3: primary_label 'grekis' repeats row 2"),
        (["grekis,x1,a,b,Aves"], "row 2: inat_taxon_id 'x1' is not a number"),
        (["grekis,1,a,b,Aves", "compau,2,a,b,"], "row 3: empty class_name"),
    ],
)
def test_bad_taxonomy_rows_name_the_row(tmp_path, rows, message):
    path = write(tmp_path / "taxonomy.csv", TAXONOMY, *rows)
    with pytest.raises(DataError, match=f"taxonomy.csv {message}"):
        read_taxonomy(path)
    write(tmp_path / "t2.csv", "primary_label,scientific_name", "grekis,a")
    with pytest.raises(DataError, match="missing column"):
        read_taxonomy(str(tmp_path / "t2.csv"))


def test_soundscape_labels_become_one_row_per_window(tmp_path):
    scapes = tmp_path / "train_soundscapes"
    tone(scapes / "BC2026_Train_0039_S22_20211231_201500.ogg", 1.0)
    tone(scapes / "B.ogg", 1.0)
    name = "BC2026_Train_0039_S22_20211231_201500.ogg"
    path = write(
        tmp_path / "train_soundscapes_labels.csv",
        LABELS,
        f"{name},00:00:00,00:00:05,22961;grekis",
        f"{name},00:00:00,00:00:05,22961;grekis",  # the published file repeats every row
        f"{name},00:00:55,00:01:00,grekis",
        f"{name},00:00:55,00:01:00,22961",  # another row of the same window: the union
        "B.ogg,10,20,1139490",  # plain seconds, two windows
    )
    classes = ["1139490", "22961", "grekis"]
    df = read_soundscape_labels(path, str(scapes), classes)
    assert list(df.columns) == ["filepath", "filename", "row_id", "start", "end", "labels"]
    stem = name[:-4]
    assert df.row_id.tolist() == ["B_15", "B_20", f"{stem}_5", f"{stem}_60"]
    assert df.start.tolist() == [10.0, 15.0, 0.0, 55.0] and df.end.tolist() == [15, 20, 5, 60]
    assert df.labels.tolist() == [
        ["1139490"],
        ["1139490"],
        ["22961", "grekis"],
        ["22961", "grekis"],
    ]
    assert df.filepath[2] == f"{scapes}/{name}"
    target = catalog.targets(df, classes)
    np.testing.assert_array_equal(target, [[1, 0, 0], [1, 0, 0], [0, 1, 1], [0, 1, 1]])


@pytest.mark.parametrize(
    "row, reason, message",
    [
        (
            "A.ogg,00:00:00,00:00:05,22961;nope",
            "unknown label",
            "label 'nope' is not one of the 2 classes",
        ),
        ("A.ogg,00:00:05,00:00:05,22961", "bad window", "end 5 s is not after start 5 s"),
        ("A.ogg,00:00:x5,00:00:10,22961", "bad start", "start '00:00:x5' is not HH:MM:SS"),
        ("gone.ogg,00:00:00,00:00:05,22961", "missing file", "gone.ogg does not exist"),
        ("A.ogg,00:00:00,00:00:05,", "empty primary_label", "empty primary_label"),
        ("../A.ogg,00:00:00,00:00:05,22961", "path outside the data root", "escapes"),
    ],
)
def test_bad_soundscape_label_rows_name_file_and_row(tmp_path, row, reason, message):
    scapes = tmp_path / "scapes"
    tone(scapes / "A.ogg", 1.0)
    path = write(tmp_path / "labels.csv", LABELS, "A.ogg,00:00:10,00:00:15,grekis", row)
    with pytest.raises(DataError, match=f"labels.csv row 3: .*{message}"):
        read_soundscape_labels(path, str(scapes), ["22961", "grekis"])
    bad = []
    df = read_soundscape_labels(path, str(scapes), ["22961", "grekis"], bad_rows=bad)
    assert df.row_id.tolist() == ["A_15"]
    assert bad[0].reason.tolist() == [reason]
    assert bad[0].detail[0].startswith(f"{path} row 3: ")


def test_unlabelled_soundscapes_from_headers_skipping_unreadable_files(tmp_path):
    folder = tmp_path / "train_soundscapes"
    tone(folder / "H02_20230420_074000.ogg", 12.0)
    tone(folder / "short.wav", 3.0, rate=16000)
    write(folder / "broken.ogg", "not audio")
    write(folder / "notes.txt", "ignored")
    skipped, lines = [], []
    df = list_unlabelled_soundscapes(str(folder), skipped=skipped, log=lines.append)
    assert list(df.columns) == ["filepath", "filename", "row_id", "start", "end"]
    assert df.row_id.tolist() == [
        "H02_20230420_074000_5",
        "H02_20230420_074000_10",
        "H02_20230420_074000_12",
        "short_3",
    ]
    assert df.start.tolist() == [0, 5, 10, 0] and df.end.tolist() == [5, 10, 12, 3]
    assert df.filepath[3] == f"{folder}/short.wav"
    assert skipped[0].filepath.tolist() == [f"{folder}/broken.ogg"]
    assert skipped[0].reason.tolist() == ["unusable audio"]
    assert len(lines) == 1 and "skipped 1 of 3 files" in lines[0] and "broken.ogg" in lines[0]
    with pytest.raises(DataError, match="no soundscape audio"):
        list_unlabelled_soundscapes(str(tmp_path))


def small(**kw):
    return SynthConfig(
        **{
            "num_species": 4,
            "clips_per_species": 1,
            "min_seconds": 1.0,
            "max_seconds": 1.5,
            "num_soundscapes": 1,
            "soundscape_seconds": 12.0,
            **kw,
        }
    )


PLUS_FILES = ("taxonomy.csv", "train.csv", "train_soundscapes", "train_soundscapes_labels.csv")


def test_synthetic_set_in_the_birdclef_plus_layout(tmp_path):
    plain, plus = tmp_path / "plain", tmp_path / "plus"
    write_dataset(str(plain), small(), log=lambda *_: None)
    write_dataset(str(plus), small(plus_soundscapes=3, plus_labelled=2), log=lambda *_: None)
    assert not any(os.path.exists(plain / n) for n in (*PLUS_FILES, "train_soundscapes_truth.csv"))
    for name in ("train_metadata.csv", "soundscape_labels.csv", "soundscape_events.csv"):
        assert (plain / name).read_bytes() == (plus / name).read_bytes()  # streams of their own
    a, _ = sf.read(plain / "soundscapes" / "soundscape_000.ogg")
    b, _ = sf.read(plus / "soundscapes" / "soundscape_000.ogg")
    np.testing.assert_array_equal(a, b)

    tax = read_taxonomy(str(plus / "taxonomy.csv"))
    assert tax.taxon.tolist() == ["Aves", "Aves", "Insecta", "Amphibia"] == species_taxa(4)
    codes = tax.primary_label.tolist()
    assert taxon_classes(tax, "Amphibia") == [codes[3]]
    assert list(pd.read_csv(plus / "train.csv").columns) == TRAIN26.split(",")
    got = catalog.read_source("birdclef26", str(plus))
    want = catalog.read_source("birdclef", str(plus))
    assert got.labels.tolist() == want.labels.tolist()
    assert got.filepath.tolist() == want.filepath.tolist()

    truth = pd.read_csv(plus / "train_soundscapes_truth.csv")
    names = sorted(os.listdir(plus / "train_soundscapes"))
    assert names == ["SYN_Train_0000.ogg", "SYN_Train_0001.ogg", "SYN_Train_0002.ogg"]
    windows = list_unlabelled_soundscapes(str(plus / "train_soundscapes"))
    assert windows.row_id.tolist() == truth.row_id.tolist()  # 3 files x (5, 10, 12)
    assert truth[codes].to_numpy().sum() > 0
    assert list(pd.read_csv(plus / "train_soundscapes_labels.csv").columns) == LABELS.split(",")
    labelled = read_soundscape_labels(
        str(plus / "train_soundscapes_labels.csv"), str(plus / "train_soundscapes"), codes
    )
    assert set(labelled.filename) <= {"SYN_Train_0000.ogg", "SYN_Train_0001.ogg"}
    first_two = truth[truth.row_id.str.startswith(("SYN_Train_0000_", "SYN_Train_0001_"))]
    heard = first_two[first_two[codes].sum(axis=1) > 0]  # windows without a call have no row
    assert labelled.row_id.tolist() == heard.row_id.tolist()
    np.testing.assert_array_equal(
        catalog.targets(labelled, codes), heard[codes].to_numpy(np.float32)
    )
    with pytest.raises(ConfigError, match="synth.plus_labelled: 2 is more than"):
        write_dataset(str(tmp_path / "x"), small(plus_soundscapes=1, plus_labelled=2))
