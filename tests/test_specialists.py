"""Taxon specialists: `data.taxa` restricts a run's catalog and classes to some taxa, and
`infer.specialists` writes a specialist run's columns into the main blend of `birdtpu predict`."""

import os

import numpy as np
import pandas as pd
import pytest
from test_export import save_tiny_model
from test_predict import config, scapes, submission

from birdtpu.config import SynthConfig, load_config
from birdtpu.data.catalog.birdclef_plus import read_taxonomy
from birdtpu.data.prepare import load_catalog
from birdtpu.data.shardcache import cache_key
from birdtpu.data.synth import write_dataset
from birdtpu.errors import ConfigError, DataError
from birdtpu.infer.postprocess import smooth
from birdtpu.infer.predict import predict
from birdtpu.infer.specialists import check_entries, scatter


@pytest.fixture(scope="module")
def plus(tmp_path_factory):
    """A synthetic BirdCLEF+ set: 4 species (Aves, Aves, Insecta, Amphibia), 3 clips each, every
    clip with a secondary species."""
    root = str(tmp_path_factory.mktemp("plus"))
    synth = SynthConfig(
        num_species=4,
        clips_per_species=3,
        min_seconds=1.0,
        max_seconds=1.5,
        secondary_prob=1.0,
        num_soundscapes=0,
        plus_soundscapes=1,
        soundscape_seconds=5.0,
    )
    write_dataset(root, synth, log=lambda *_: None)
    return root


def plus_config(root, *extra):
    return load_config(
        None, [f"data.root={root}", "data.format=birdclef26", "data.num_folds=2", *extra]
    )


def test_taxa_keep_their_classes_and_rows(plus):
    codes = read_taxonomy(os.path.join(plus, "taxonomy.csv")).primary_label.tolist()
    full, all_classes = load_catalog(plus_config(plus), log=lambda *_: None)
    assert all_classes == sorted(codes)
    lines = []
    df, classes = load_catalog(plus_config(plus, "data.taxa=[Amphibia, Insecta]"), lines.append)
    assert classes == sorted(codes[2:])
    want = full[full.label.isin(codes[2:])]
    assert df.filepath.tolist() == want.filepath.tolist()  # 6 of 12 rows, in catalog order
    assert len(df) == 6
    for (_, row), (_, old) in zip(df.iterrows(), want.iterrows()):
        assert row.labels == [x for x in old.labels if x in codes[2:]]  # primary first
        assert row.other_labels == [*old.other_labels, *(x for x in old.labels if x in codes[:2])]
    assert sum(len(x) for x in df.other_labels) > 0  # some secondary label was a bird
    assert any("data.taxa Amphibia, Insecta: 6 of 12 rows kept" in line for line in lines)
    # a specialist's shards are a set of their own
    assert cache_key(plus_config(plus)) != cache_key(plus_config(plus, "data.taxa=[Amphibia]"))


def test_an_unknown_taxon_or_no_taxonomy_is_one_line_naming_the_file(plus, tmp_path):
    with pytest.raises(DataError) as err:
        load_catalog(plus_config(plus, "data.taxa=[Reptilia]"), log=lambda *_: None)
    assert str(err.value) == (
        f"data.taxa: {plus}/taxonomy.csv: taxon 'Reptilia' is not in the taxonomy "
        "(it has Amphibia, Aves, Insecta)"
    )
    plain = tmp_path / "plain"
    plain.mkdir()
    pd.read_csv(os.path.join(plus, "train.csv")).to_csv(plain / "train.csv", index=False)
    with pytest.raises(DataError, match=rf"^data.taxa: {plain}/taxonomy.csv not found") as err:
        load_catalog(plus_config(str(plain), "data.taxa=[Aves]"), log=lambda *_: None)
    assert "\n" not in str(err.value)


def test_scatter_replaces_or_mixes_the_specialist_columns():
    main = np.array([[0.1, 0.2, 0.3, 0.4], [0.5, 0.6, 0.7, 0.8]], np.float32)
    spec = np.array([[0.9, 0.0], [1.0, 0.2]], np.float32)  # classes of main columns 3 and 1
    columns = np.array([3, 1])
    np.testing.assert_allclose(
        scatter(main, columns, spec, 1.0), [[0.1, 0.0, 0.3, 0.9], [0.5, 0.2, 0.7, 1.0]]
    )
    # 0.25 * spec + 0.75 * main: col 3 0.25*0.9+0.75*0.4 = 0.525, col 1 0.75*0.2 = 0.15, ...
    np.testing.assert_allclose(
        scatter(main, columns, spec, 0.25),
        [[0.1, 0.15, 0.3, 0.525], [0.5, 0.5, 0.7, 0.85]],
        rtol=1e-6,
    )
    assert main[0, 3] == np.float32(0.4)  # the main blend is kept


@pytest.mark.parametrize(
    "entry, message",
    [
        ("runs/frogs", r"infer.specialists\[0\]: expected \{run"),
        ({"run": "r", "weight": 0}, r"infer.specialists\[0\].weight: must be above 0"),
        ({"run": "r", "weight": 1.5}, r"at most 1, got 1.5"),
        ({"run": "", "weight": 1}, r"infer.specialists\[0\].run: expected a run folder"),
        ({"run": "r", "wieght": 1}, r"unknown key 'wieght' \(keys: run, weight\)"),
    ],
)
def test_bad_specialist_entries_name_the_entry(entry, message):
    with pytest.raises(ConfigError, match=message):
        check_entries([entry])
    with pytest.raises(ConfigError, match="infer.specialists"):
        load_config(None, [f"infer.specialists=[{entry!r}]".replace("'", '"')])
    assert check_entries([{"run": "runs/frogs"}]) == [("runs/frogs", 1.0)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("specialist_runs")
    main = save_tiny_model(str(root / "main"), classes=("aa", "bb", "cc", "dd"), seed=0)
    frogs = save_tiny_model(str(root / "frogs"), classes=("dd", "bb"), sample_rate=22050, seed=1)
    save_tiny_model(str(root / "alien"), classes=("bb", "zz"), seed=2)
    return {"main": main, "frogs": os.path.dirname(frogs), "alien": str(root / "alien")}


def test_predict_writes_a_specialist_run_into_its_columns(runs, tmp_path):
    scapes(tmp_path / "scapes")
    rows = {}
    for name, model in (
        ("main", runs["main"]),
        ("frogs", os.path.join(runs["frogs"], "model.keras")),
    ):
        predict(config(tmp_path, model, "infer.sample_submission=none"), log=lambda *_: None)
        rows[name] = submission(tmp_path).set_index("row_id")
    for weight, weights in ((1.0, []), (0.4, [1, 2, 1])):
        predict(
            config(
                tmp_path,
                runs["main"],
                "infer.sample_submission=none",
                f"infer.smooth={weights}",
                f'infer.specialists=[{{run: "{runs["frogs"]}", weight: {weight}}}]',
            ),
            log=lambda *_: None,
        )
        got = submission(tmp_path).set_index("row_id")
        want = rows["main"].copy()
        want[["dd", "bb"]] = (
            weight * rows["frogs"][["dd", "bb"]] + (1 - weight) * want[["dd", "bb"]]
        )
        for stem in ("s0", "s1"):  # the blend comes before the smoothing
            ids = [i for i in want.index if i.startswith(stem + "_")]
            want.loc[ids] = smooth(want.loc[ids].to_numpy(np.float32), weights)
        np.testing.assert_allclose(got[want.columns].to_numpy(), want.to_numpy(), atol=1e-5)

    with pytest.raises(DataError) as err:
        predict(
            config(tmp_path, runs["main"], f'infer.specialists=[{{run: "{runs["alien"]}"}}]'),
            log=lambda *_: None,
        )
    assert str(err.value) == (
        f"infer.specialists: {runs['alien']}/model.keras: class 'zz' is not a class of the main "
        "model (1 of its 2 missing)"
    )
    with pytest.raises(ConfigError, match=r"infer.specialists: nowhere: no model there"):
        predict(config(tmp_path, runs["main"], "infer.specialists=[{run: nowhere}]"))
