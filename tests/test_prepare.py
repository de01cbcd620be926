"""Config -> catalog -> folds -> shards: the data settings of a recipe reach the shard set."""

import numpy as np
import pytest
from conftest import tiny_overrides

from birdtpu.config import load_config
from birdtpu.data import catalog
from birdtpu.data.folds import TRAIN_ONLY
from birdtpu.data.prepare import ensure_shards, load_catalog
from birdtpu.data.shards import shard_paths
from birdtpu.errors import DataError


def quiet(*_):
    pass


def test_catalog_table_with_its_folds_is_sharded_as_given(tiny_data, tmp_path):
    root, _ = tiny_data
    df = catalog.read_birdclef(root)
    df["fold"] = np.arange(len(df)) % 3
    df.loc[0, "fold"] = TRAIN_ONLY
    table = str(tmp_path / "merged.csv")
    catalog.write_table(df, table)
    cfg = load_config(
        None, tiny_overrides(tmp_path, f"data.table={table}", "data.root=/nonexistent")
    )
    manifest = ensure_shards(cfg, quiet)
    assert manifest["per_fold"] == {"-1": 1, "0": 5, "1": 6, "2": 6}
    train = shard_paths(cfg.shard_dir, manifest, exclude=[0])
    assert any("fold-1-" in p for p in train) and not any("fold0-" in p for p in train)


def test_sampling_and_rare_classes(tiny_data, tmp_path):
    root, _ = tiny_data
    cfg = load_config(None, tiny_overrides(tmp_path, f"data.root={root}", "data.max_per_class=4"))
    df, classes = load_catalog(cfg)  # class balance is the training pipeline's (test_balance)
    assert len(classes) == 3 and len(df) == 18 and df.filepath.is_unique
    cfg = load_config(None, tiny_overrides(tmp_path, f"data.root={root}", "data.cv_min=7"))
    df, _ = load_catalog(cfg)
    assert (df.fold == TRAIN_ONLY).all()  # every class has 6 < 7 clips: none validated


def test_other_formats_need_their_metadata(tmp_path):
    cfg = load_config(
        None, tiny_overrides(tmp_path, "data.format=fat2019-curated", f"data.root={tmp_path}/fat")
    )
    with pytest.raises(DataError, match="train_curated.csv"):
        ensure_shards(cfg, quiet)
    cfg = load_config(None, tiny_overrides(tmp_path, "data.format=nope"))
    with pytest.raises(DataError, match="unknown metadata format 'nope'"):
        ensure_shards(cfg, quiet)


def test_class_balance_leaves_catalog_and_shards_with_every_recording_once(tiny_data, tmp_path):
    root, _ = tiny_data
    cfg = load_config(None, tiny_overrides(tmp_path, f"data.root={root}", "data.min_per_class=10"))
    df, _ = load_catalog(cfg)
    assert len(df) == 18 and df.filepath.is_unique
    manifest = ensure_shards(cfg, quiet)
    assert manifest["examples"] == 18 and sum(manifest["per_fold"].values()) == 18
    # the balance does not reach the shards: another min_per_class shares the same set
    other = load_config(None, tiny_overrides(tmp_path, f"data.root={root}", "data.min_per_class=3"))
    assert other.shard_dir == cfg.shard_dir
