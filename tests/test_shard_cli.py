"""`birdtpu shard` as a user runs it: its errors (a SIGKILL part way: tests/reliability/test_faults.py)."""

import os

from conftest import tiny_overrides

from birdtpu import fs
from birdtpu.cli import main
from birdtpu.data.shards import MANIFEST, read_manifest


def test_cli_reports_an_unknown_schema_and_rebuilds(tiny_data, tmp_path, capsys):
    root, _ = tiny_data
    shard_dir = str(tmp_path / "shards")
    args = [
        x
        for a in tiny_overrides(tmp_path, f"data.root={root}", f"shards.dir={shard_dir}")
        for x in ("--set", a)
    ]
    assert main(["shard", *args]) == 0
    out = capsys.readouterr()
    assert out.out.startswith(f"{shard_dir}: 18 clips in ") and "0 skipped" in out.out
    assert "shard: 18 clips, " in out.err
    manifest = fs.read_json(os.path.join(shard_dir, MANIFEST))
    fs.write_json(os.path.join(shard_dir, MANIFEST), {**manifest, "schema_version": 99})
    assert main(["shard", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"birdtpu shard: error: {shard_dir}/{MANIFEST}: shard schema version 99 is not supported "
        "(this birdtpu reads version 2); rebuild the shards (`birdtpu shard --rebuild`)"
    ]
    assert main(["shard", *args, "--rebuild"]) == 0
    assert read_manifest(shard_dir)["examples"] == 18


def test_cli_beam_errors(tiny_data, tmp_path, capsys):
    """Beam options without the Beam runner, and the Beam runner where Beam is not installed (the
    tested stack: Beam has its own environment), are one-line errors, exit 2."""
    import importlib.util

    root, _ = tiny_data
    args = [
        x
        for a in tiny_overrides(tmp_path, f"data.root={root}", f"shards.dir={tmp_path / 's'}")
        for x in ("--set", a)
    ]
    assert main(["shard", *args, "--beam-option=--runner=DirectRunner"]) == 2
    assert capsys.readouterr().err.strip() == (
        "birdtpu shard: error: --beam-option needs --runner beam"
    )
    if importlib.util.find_spec("apache_beam") is None:
        assert main(["shard", *args, "--runner", "beam"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1] == (
            "birdtpu shard: error: shard --runner beam needs Apache Beam: pip install "
            "'birdtpu[beam]' (its tested pins: constraints-beam.txt)"
        )
