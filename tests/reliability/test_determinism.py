"""With a seed (and `runtime.deterministic: true` where it applies), a rerun repeats exactly:
the same shard bytes and manifest, the same first training batches, the same first-epoch loss."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
from conftest import run_cli, tiny_overrides


def _sets(overrides: list[str]) -> list[str]:
    return [x for o in overrides for x in ("--set", o)]


def _files(folder) -> dict[str, bytes]:
    return {
        name: open(os.path.join(folder, name), "rb").read() for name in sorted(os.listdir(folder))
    }


@pytest.mark.slow
def test_two_shard_builds_are_byte_identical(tmp_path, tiny_data):
    root, _ = tiny_data
    built = []
    for name in ("a", "b"):
        out = run_cli(
            "shard",
            *_sets(tiny_overrides(tmp_path, f"data.root={root}", f"shards.dir={tmp_path}/{name}")),
        )
        assert out.returncode == 0, out.stderr[-2000:]
        built.append(_files(tmp_path / name))
    assert "manifest.json" in built[0] and any(n.endswith(".tfrec") for n in built[0])
    assert built[0].keys() == built[1].keys()
    for name in built[0]:
        assert built[0][name] == built[1][name], f"{name} differs between two builds"


def test_seeded_pipeline_repeats_its_first_batches_with_augmentation_and_mixup(tmp_path, tiny_data):
    from birdtpu.config import load_config
    from birdtpu.data.pipeline import build_dataset
    from birdtpu.data.prepare import ensure_shards
    from birdtpu.data.shards import shard_paths

    root, _ = tiny_data
    cfg = load_config(
        None,
        tiny_overrides(
            tmp_path,
            f"data.root={root}",
            "augment.noise_prob=1",
            "augment.mixup_prob=1",
            "augment.gain_prob=1",
        ),
    )
    manifest = ensure_shards(cfg, log=lambda *_: None)
    paths = shard_paths(cfg.shard_dir, manifest, exclude=[0])

    def first_batches():
        ds = build_dataset(
            paths,
            len(manifest["classes"]),
            16000,
            4,
            True,
            cfg.augment,
            seed=7,
            deterministic=True,
            sample_rate=16000,
        )
        return [(w.numpy(), t.numpy()) for w, t in ds.take(3)]

    one, two = first_batches(), first_batches()
    for (w1, t1), (w2, t2) in zip(one, two):
        np.testing.assert_array_equal(w1, w2)
        np.testing.assert_array_equal(t1, t2)
    mixed = np.concatenate([t for _, t in one])
    assert ((mixed > 0) & (mixed < 1)).any()  # MixUp ran: soft targets


@pytest.mark.slow
def test_two_deterministic_fits_give_the_same_first_epoch_loss(tmp_path, tiny_data):
    root, _ = tiny_data
    losses = []
    for name in ("a", "b"):
        sets = tiny_overrides(
            tmp_path,
            f"data.root={root}",
            f"name={name}",
            f"shards.dir={tmp_path}/shards",
            "model.name=fat2019",
            "model.width=0.125",
            "runtime.deterministic=true",
        )
        out = run_cli("fit", *_sets(sets))
        assert out.returncode == 0, out.stderr[-2000:]
        losses.append(pd.read_csv(tmp_path / "runs" / name / "history.csv")["loss"].iloc[0])
    assert losses[0] == losses[1]
