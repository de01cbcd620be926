"""Runs on the same data share one shard set in the cache; a finished run is not retrained by
accident, and --overwrite retrains it."""

from __future__ import annotations

import pytest
from conftest import NO_RANDOM_LAYERS, run_cli, tiny_overrides


def _sets(overrides):
    return [x for o in overrides for x in ("--set", o)]


@pytest.mark.slow
def test_two_runs_share_the_cached_shards_and_a_finished_run_is_kept(tmp_path):
    first = tiny_overrides(tmp_path)
    second = [*tiny_overrides(tmp_path), "name=other", *NO_RANDOM_LAYERS, "data.min_per_class=8"]
    a = run_cli("fit", *_sets(first))
    assert a.returncode == 0, a.stderr[-3000:]
    assert "shard: [1/" in a.stderr  # decoded
    (cache,) = (tmp_path / "runs" / "shard-cache").iterdir()
    assert cache.name.startswith("birdclef-") and (cache / "manifest.json").exists()
    assert not (tmp_path / "runs" / "tiny" / "shards").exists()

    b = run_cli("fit", *_sets(second))
    assert b.returncode == 0, b.stderr[-3000:]
    assert "shard: [" not in b.stderr and f"{cache}: 18 clips, built before" in b.stderr
    assert "class balance of the training split (min 8" in b.stderr
    listing = run_cli("shard", "--list", *_sets(first))
    assert listing.returncode == 0, listing.stderr
    row = next(line for line in listing.stdout.splitlines() if line.startswith(cache.name))
    assert "runs/other" in row and "runs/tiny" in row

    model = tmp_path / "runs" / "tiny" / "model.keras"
    stamp = model.stat().st_mtime_ns
    again = run_cli("fit", *_sets(first))
    assert again.returncode == 0, again.stderr[-3000:]
    assert "is already trained" in again.stderr and model.stat().st_mtime_ns == stamp
    changed = run_cli("fit", *_sets([*first, "train.epochs=2"]))
    assert changed.returncode == 2
    assert "a finished run with other settings (train.epochs: 1 -> 2)" in changed.stderr
    over = run_cli("fit", "--overwrite", *_sets([*first, "train.epochs=2"]))
    assert over.returncode == 0, over.stderr[-3000:]
    assert "--overwrite: retraining" in over.stderr and model.stat().st_mtime_ns != stamp
    assert "Epoch 2/2" in over.stdout + over.stderr or "epoch 2" in over.stderr.lower()
