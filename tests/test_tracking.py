"""birdtpu.tracking: the local run folder, W&B offline (read back from its run files), disabled
(nothing of W&B written or imported), the key never written, the model card. No network: W&B
points at tmp_path and a dead proxy."""

import glob
import json
import os
import subprocess
import sys
import textwrap
import time
from importlib import metadata

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from conftest import tiny_overrides
from PIL import Image

from birdtpu import __version__
from birdtpu.config import load_config, save_config
from birdtpu.errors import BirdtpuError
from birdtpu.tracking import (
    AudioClip,
    Picture,
    Tracker,
    wandb_key,
    worst_clips_table,
    write_model_card,
)

KEY = "0123456789abcdef0123456789abcdef01234567"  # a made-up 40-character key
CLASSES = ["amerob", "barswa", "comrav"]
DEAD_PROXY = "http://127.0.0.1:9"


@pytest.fixture
def offline_env(tmp_path, monkeypatch):
    """W&B settings and caches under tmp_path, every proxy dead, no netrc: nothing can reach out."""
    wandb_home = tmp_path / "wandb-home"
    for name in ("DIR", "CACHE_DIR", "CONFIG_DIR", "DATA_DIR", "ARTIFACT_DIR"):
        monkeypatch.setenv(f"WANDB_{name}", str(wandb_home / name.lower()))
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, DEAD_PROXY)
    monkeypatch.setenv("NO_PROXY", "")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv(
        "WANDB_MODE", "offline"
    )  # what a recipe asks for still wins; this guards the rest
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    return wandb_home


def config(tmp_path, mode, *extra):
    return load_config(None, tiny_overrides(tmp_path, f"tracking.wandb={mode}", *extra))


def files_under(folder):
    return sorted(
        os.path.relpath(p, folder)
        for p in glob.glob(os.path.join(folder, "**", "*"), recursive=True)
        if os.path.isfile(p)
    )


def oof_case(n=12, seed=0):
    rng = np.random.default_rng(seed)
    y = np.eye(len(CLASSES), dtype=int)[rng.integers(len(CLASSES), size=n)]
    p = np.clip(0.8 * y + rng.uniform(0, 0.5, y.shape), 0, 1)
    p[3] = 1 - y[3]  # clip3 is confidently wrong: the worst
    ids = [f"clip{i}" for i in range(n)]
    tables = []
    for values in (p, y):
        t = pd.DataFrame(values, columns=CLASSES)
        t.insert(0, "row_id", ids)
        tables.append(t)
    audio = {
        i: (np.sin(np.arange(8000) * (k + 1) / 20).astype(np.float32) * 0.5, 8000)
        for k, i in enumerate(ids)
    }
    return tables[0], tables[1], audio, y, p


def test_worst_clips_table_ranks_by_clip_loss():
    oof, truth, audio, y, p = oof_case()
    del audio["clip5"]
    table = worst_clips_table(oof, truth, audio, k=4, top=2)
    q = np.clip(p, 1e-7, 1 - 1e-7)
    bce = -(y * np.log(q) + (1 - y) * np.log(1 - q)).mean(axis=1)
    order = np.argsort(-bce)[:4]
    assert table["row_id"].tolist() == [f"clip{i}" for i in order] and table["row_id"][0] == "clip3"
    np.testing.assert_allclose(table["bce"], bce[order])
    first = table.iloc[0]
    assert first["truth"] == CLASSES[int(np.argmax(y[3]))]
    best = np.argsort(-p[3])[:2]
    assert first["top_predictions"] == ", ".join(f"{CLASSES[j]} {p[3, j]:.3f}" for j in best)
    assert first["true_score"] == pytest.approx(p[3][y[3] == 1].mean())
    assert isinstance(first["audio"], AudioClip) and first["audio"].sample_rate == 8000
    assert isinstance(first["spectrogram"], Picture) and first["spectrogram"].data.dtype == np.uint8
    every = worst_clips_table(oof, truth, audio, k=12)
    assert every.loc[every["row_id"] == "clip5", "audio"].item() is None
    by_call = worst_clips_table(oof, truth, lambda rid: audio.get(rid), k=1)
    np.testing.assert_array_equal(by_call["audio"][0].data, audio["clip3"][0])


def test_local_history_resumes_and_tables_write_media(tmp_path, offline_env):
    cfg = config(tmp_path, "disabled")
    run_dir = cfg.run_dir
    tracker = Tracker(cfg, run_dir, log=lambda *_: None)
    for epoch in range(3):
        tracker.log_metrics({"epoch": epoch, "loss": np.float32(1.0 / (epoch + 1)), "lr": 1e-3})
    again = Tracker(cfg, run_dir, log=lambda *_: None)  # a restarted run resumes at epoch 1
    again.log_metrics({"epoch": 1, "loss": 0.25, "lr": 5e-4})
    history = pd.read_csv(os.path.join(run_dir, "history.csv"))
    assert history.to_dict("list") == {"epoch": [0, 1], "loss": [1.0, 0.25], "lr": [1e-3, 5e-4]}

    wave = np.linspace(-0.5, 0.5, 4000, dtype=np.float32)
    df = pd.DataFrame(
        {
            "name": ["a", "b"],
            "audio": [AudioClip(wave, 8000), None],
            "image": [Picture(np.zeros((4, 6, 3), np.uint8)), Picture(np.eye(5))],
        }
    )
    path = again.log_table("clips", df)
    table = pd.read_csv(path)
    assert table["audio"][0] == os.path.join("clips", "0000-audio.wav") and pd.isna(
        table["audio"][1]
    )
    played, rate = sf.read(os.path.join(run_dir, "tables", table["audio"][0]), dtype="float32")
    assert rate == 8000
    np.testing.assert_allclose(played, wave, atol=1 / 32767)
    with Image.open(os.path.join(run_dir, "tables", table["image"][1])) as img:
        assert img.size == (5, 5)
    assert files_under(run_dir) == [
        "history.csv",
        "tables/clips.csv",
        "tables/clips/0000-audio.wav",
        "tables/clips/0000-image.png",
        "tables/clips/0001-image.png",
    ]


DISABLED_SCRIPT = """
import sys
import numpy as np, pandas as pd
from birdtpu.config import load_config, save_config
from birdtpu.tracking import Tracker, AudioClip
cfg = load_config(None, {overrides!r})
t = Tracker(cfg, cfg.run_dir)
t.log_metrics({{"epoch": 0, "loss": 1.0}})
t.log_image("history", {png!r})
clip = AudioClip(np.zeros(800, np.float32) + 0.1, 8000)
t.log_table("worst_clips", pd.DataFrame({{"row_id": ["a"], "audio": [clip]}}))
t.finish({{"macro_roc_auc": 0.5}}, None)
print("wandb imported:", any(m == "wandb" or m.startswith("wandb.") for m in sys.modules))
"""


def test_disabled_imports_no_wandb_and_writes_only_the_local_run_folder(tmp_path, offline_env):
    overrides = tiny_overrides(tmp_path, "tracking.wandb=disabled")
    from birdtpu import plots

    png = plots.save_png(
        plots.history_figure([{"epoch": 0, "loss": 1.0}]), str(tmp_path / "source.png")
    )
    env = {**os.environ, "WANDB_API_KEY": KEY, "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run(
        [sys.executable, "-c", DISABLED_SCRIPT.format(overrides=overrides, png=png)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "wandb imported: False"
    run_dir = os.path.join(str(tmp_path), "runs", "tiny")
    assert files_under(run_dir) == [
        "history.csv",
        "model_card.md",
        "plots/history.png",
        "tables/worst_clips.csv",
        "tables/worst_clips/0000-audio.wav",
    ]
    assert not os.path.exists(offline_env)  # no W&B folder, cache or settings anywhere


def scan(path):
    """(kind, record) of the records of a .wandb file (a partly written one may raise)."""
    from wandb.proto import wandb_internal_pb2 as pb
    from wandb.sdk.internal import datastore

    store = datastore.DataStore()
    store.open_for_scan(path)
    records = []
    while (data := store.scan_data()) is not None:
        record = pb.Record()
        record.ParseFromString(data)
        records.append((record.WhichOneof("record_type"), record))
    return records


def read_wandb_records(path, timeout=30.0):
    """The records of an offline run's .wandb file once its `exit` record is there (wandb's
    service process finishes writing the file after `run.finish` returns)."""
    deadline, records = time.monotonic() + timeout, []
    while True:
        try:
            records = scan(path)
            if records and records[-1][0] == "exit":
                return records
        except Exception:
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            return records
        time.sleep(0.2)


def test_offline_run_holds_metrics_plots_and_the_worst_clips(tmp_path, offline_env, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", KEY)
    cfg = config(tmp_path, "offline")
    run_dir = cfg.run_dir
    save_config(
        cfg, os.path.join(run_dir, "config.yaml")
    )  # as fit does: the resolved config, without the key
    lines = []
    tracker = Tracker(cfg, run_dir, log=lines.append)
    assert lines[0].startswith("tracking: W&B offline run ") and KEY not in lines[0]
    for epoch, loss in enumerate([0.9, 0.4]):
        tracker.log_metrics({"epoch": epoch, "loss": loss, "val_auc": 0.5 + epoch / 4})
    from birdtpu import plots

    png = plots.save_png(
        plots.history_figure(pd.read_csv(os.path.join(run_dir, "history.csv"))),
        os.path.join(run_dir, "plots", "history.png"),
    )
    tracker.log_image("history", png)
    oof, truth, audio, _, _ = oof_case()
    tracker.log_worst_clips(oof, truth, audio, k=3)
    model = os.path.join(run_dir, "model.keras")
    with open(model, "wb") as fh:
        fh.write(b"not really a model")
    tracker.finish({"macro_roc_auc": 0.75}, model)

    (wandb_file,) = glob.glob(os.path.join(run_dir, "wandb", "offline-run-*", "run-*.wandb"))
    records = read_wandb_records(wandb_file)
    history = [
        {
            item.key or "/".join(item.nested_key): json.loads(item.value_json)
            for item in r.history.item
        }
        for kind, r in records
        if kind == "history"
    ]
    assert [(h["epoch"], h["loss"], h["val_auc"]) for h in history if "loss" in h] == [
        (0, 0.9, 0.5),
        (1, 0.4, 0.75),
    ]
    assert any(h.get("history/_type") == "image-file" for h in history)
    assert any(
        h.get("worst_clips/_type") == "table-file" and h["worst_clips/nrows"] == 3 for h in history
    )
    summary = {
        item.key or "/".join(item.nested_key): json.loads(item.value_json)
        for kind, r in records
        if kind == "summary"
        for item in r.summary.update
    }
    assert summary["macro_roc_auc"] == 0.75
    artifacts = {r.artifact.type: r.artifact for kind, r in records if kind == "artifact"}
    table = artifacts["run_table"]
    entries = {e.path: e.local_path for e in table.manifest.contents}
    content = json.loads(open(entries["worst_clips.table.json"]).read())
    assert content["columns"] == [
        "row_id",
        "bce",
        "truth",
        "top_predictions",
        "true_score",
        "audio",
        "spectrogram",
    ]
    assert [row[0] for row in content["data"]] == worst_clips_table(oof, truth, audio, k=3)[
        "row_id"
    ].tolist()
    wavs = [p for p in entries if p.endswith(".wav")]
    pngs = [p for p in entries if p.endswith(".png")]
    assert len(wavs) == len(pngs) == 3
    assert sf.info(entries[wavs[0]]).samplerate == 8000
    assert {e.path for e in artifacts["model"].manifest.contents} == {
        "model.keras",
        "model_card.md",
    }

    assert sorted(os.listdir(run_dir)) == [
        "config.yaml",
        "history.csv",
        "model.keras",
        "model_card.md",
        "plots",
        "tables",
        "wandb",
        "wandb_id.txt",
    ]
    everything = glob.glob(os.path.join(str(tmp_path), "**", "*"), recursive=True)
    secret_holders = [
        p for p in everything if os.path.isfile(p) and KEY.encode() in open(p, "rb").read()
    ]
    assert secret_holders == []


def test_online_without_a_key_stops_before_any_network(tmp_path, offline_env):
    cfg = config(tmp_path, "online")
    with pytest.raises(BirdtpuError, match="no W&B API key; set WANDB_API_KEY"):
        Tracker(cfg, cfg.run_dir)
    assert not os.path.exists(cfg.run_dir)


def test_the_key_comes_from_the_environment_or_a_kaggle_secret(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    assert wandb_key() is None  # no kaggle_secrets module here
    kaggle = tmp_path / "kaggle_mod"
    kaggle.mkdir()
    (kaggle / "kaggle_secrets.py").write_text(
        textwrap.dedent(f"""
        class UserSecretsClient:  # the interface of Kaggle's kernel secrets
            def get_secret(self, label):
                if label != "WANDB_API_KEY":
                    raise KeyError(label)
                return {KEY!r}
    """)
    )
    monkeypatch.syspath_prepend(str(kaggle))
    monkeypatch.delitem(sys.modules, "kaggle_secrets", raising=False)
    assert wandb_key() == KEY
    monkeypatch.setenv("WANDB_API_KEY", "from-the-environment")
    assert wandb_key() == "from-the-environment"


def test_model_card_describes_the_run(tiny_data, tmp_path):
    from birdtpu.data.catalog import read_birdclef, write_table
    from birdtpu.data.prepare import ensure_shards
    from birdtpu.fs import write_json

    table = str(tmp_path / "catalog.csv")
    write_table(read_birdclef(tiny_data[0]), table)  # a table of one source, folded by the run
    cfg = load_config(None, tiny_overrides(tmp_path, f"data.table={table}", "data.fold=1"))
    manifest = ensure_shards(cfg, lambda *_: None)
    os.makedirs(cfg.run_dir, exist_ok=True)
    save_config(cfg, os.path.join(cfg.run_dir, "config.yaml"))
    write_json(
        os.path.join(cfg.run_dir, "metrics.json"),
        {"fold": 1, "macro_roc_auc": 0.8125, "val_clips": 6},
    )
    card = open(write_model_card(cfg, cfg.run_dir)).read()
    for section in ("## Data", "## Recipe", "## Metrics", "## Versions", "## How to load"):
        assert section in card
    assert f"- source: table `{table}`\n- rows per source: birdclef 18\n" in card
    for fold, clips in manifest["per_fold"].items():
        role = "validation" if fold == "1" else "training"
        assert f"| {fold} | {clips} | {role} |" in card
    assert (
        f"{manifest['examples']} clips of {manifest['recordings']} recordings in {len(manifest['shards'])} shards"
        in card
    )
    assert "- classes: 3 (syn00wh, syn01tr, syn02ha; all in model.json)" in card
    assert "| macro_roc_auc | 0.8125 |" in card and "| val_clips | 6 |" in card
    assert (
        f"| tensorflow | {metadata.version('tensorflow')} |" in card
        and f"| birdtpu | {__version__} |" in card
    )
    assert f"| keras | {metadata.version('keras')} |" in card
    assert "| model | efficientnet_b0, clip head, softmax, pretrained none |" in card
    assert f"load_model({os.path.join(cfg.run_dir, 'model.keras')!r})" in card
