"""`birdtpu plot`: each PNG is written, is a real image, and shows the numbers it should."""

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import tiny_overrides
from PIL import Image

from birdtpu import plots
from birdtpu.cli import build_parser, main
from birdtpu.commands import plot as command
from birdtpu.config import load_config
from birdtpu.data import catalog
from birdtpu.metrics import lwlrap, lwlrap_per_class, per_class_average_precision, per_class_roc_auc

CLASSES = ["amerob", "barswa", "comrav", "eurwre", "houspa"]


def parse(*argv):
    return build_parser("plot").parse_args(["plot", *argv])


def assert_png(path, min_side=200):
    """`path` is a PNG of a real size with more than one colour."""
    with Image.open(path) as img:
        assert img.format == "PNG" and min(img.size) >= min_side
        assert len(img.convert("RGB").getcolors(1 << 20) or range(2)) > 1


def long_tail_table():
    """A merged, folded catalog: a long tail over two sources, fold -1 for train-only rows."""
    rng = np.random.default_rng(0)
    rows = []
    for n, label in zip([60, 25, 9, 3, 1], CLASSES):
        for i in range(n):
            rows.append(
                {
                    "filepath": f"/a/{label}_{i}.ogg",
                    "filename": f"{label}_{i}.ogg",
                    "label": label,
                    "labels": [label],
                    "source": "birdclef2024" if i % 3 else "xc-am",
                    "fold": -1 if n < 3 else int(rng.integers(0, 4)),
                }
            )
    return pd.DataFrame(rows)


def bar_heights(container):
    return np.array([bar.get_height() for bar in container])


def test_class_distribution_counts_equal_the_catalog(tmp_path, capsys):
    df = long_tail_table()
    path = str(tmp_path / "merged.csv")
    catalog.write_table(df, path)
    assert main(["plot", "classes", "--table", path, "--min", "5", "--max", "40"]) == 0
    out = str(tmp_path / "merged.classes.png")
    assert capsys.readouterr().out.startswith(f"{out}: 5 classes, 98 rows")
    assert_png(out)

    fig, _, _ = command.figure(parse("classes", "--table", path, "--min", "5", "--max", "40"))
    ax = plots.axes(fig, "classes")
    names = [t.get_text() for t in ax.get_xticklabels()]
    assert names == [
        "amerob",
        "barswa",
        "comrav",
        "eurwre",
        "houspa",
    ]  # the long tail, most rows first
    per_source = {c.get_label(): bar_heights(c) for c in ax.containers}
    expected = pd.crosstab(df["label"], df["source"]).loc[names]
    assert set(per_source) == {"birdclef2024", "xc-am"}
    for source, heights in per_source.items():
        np.testing.assert_array_equal(heights, expected[source].to_numpy())
    np.testing.assert_array_equal(
        sum(per_source.values()), df["label"].value_counts()[names].to_numpy()
    )
    thresholds = {line.get_label(): line.get_ydata()[0] for line in ax.get_lines()}
    assert thresholds == {"--min 5 (upsampled to)": 5, "--max 40 (downsampled to)": 40}
    folds = plots.axes(fig, "folds").get_images()[0].get_array()
    np.testing.assert_array_equal(
        folds, pd.crosstab(df["label"], df["fold"]).loc[names].to_numpy().T
    )
    labels = [t.get_text() for t in plots.axes(fig, "folds").get_yticklabels()]
    assert labels[0] == f"train-only ({(df['fold'] < 0).sum()})"
    sources = plots.axes(fig, "sources")
    assert [t.get_text() for t in sources.get_yticklabels()] == ["birdclef2024", "xc-am"]
    np.testing.assert_array_equal(
        [b.get_width() for b in sources.patches], df["source"].value_counts().to_numpy()
    )


def test_class_thresholds_from_a_recipe(tiny_data, tmp_path):
    overrides = tiny_overrides(
        tmp_path, f"data.root={tiny_data[0]}", "data.max_per_class=5", "data.cv_min=2"
    )
    argv = ["classes", *[a for o in overrides for a in ("--set", o)]]
    fig, out, what = command.figure(parse(*argv))
    assert out == os.path.join(str(tmp_path), "runs", "tiny", "plots", "classes.png")
    ax = plots.axes(fig, "classes")
    lines = {line.get_label(): line.get_ydata()[0] for line in ax.get_lines()}
    assert lines == {
        "data.max_per_class 5 (downsampled to)": 5,
        "data.cv_min 2 (train-only below)": 2,
    }
    # every recording once: the balance is the training pipeline's, per epoch
    assert sum(bar_heights(c).sum() for c in ax.containers) == 18 and what == "3 classes, 18 rows"
    assert main(["plot", *argv]) == 0
    assert_png(out)


def write_history(run):
    os.makedirs(run)
    df = pd.DataFrame(
        {
            "epoch": range(4),
            "lr": [1e-4, 1e-3, 5e-4, 1e-5],
            "loss": [2.0, 1.5, 1.1, 0.9],
            "auc": [0.6, 0.7, 0.8, 0.85],
            "val_loss": [2.1, 1.7, 1.4, 1.3],
            "val_auc": [0.55, 0.66, 0.7, 0.72],
            "val_pr_auc": [0.2, 0.3, 0.35, 0.4],
            "pr_auc": [0.25, 0.4, 0.5, 0.6],
        }
    )
    df.to_csv(os.path.join(run, "history.csv"), index=False)
    return df


def test_history_plot_shows_every_column(tmp_path):
    run = str(tmp_path / "run")
    df = write_history(run)
    assert main(["plot", "history", "--run", run]) == 0
    assert_png(os.path.join(run, "plots", "history.png"))
    fig, _, what = command.figure(parse("history", "--run", run))
    assert what == "4 epochs"
    assert [ax.get_gid() for ax in fig.axes] == ["loss", "auc", "pr_auc", "lr"]
    for ax in fig.axes:
        for line in ax.get_lines():
            np.testing.assert_array_equal(line.get_xdata(), df["epoch"] + 1)
            np.testing.assert_allclose(line.get_ydata(), df[line.get_label()])
        assert len(ax.get_lines()) == (1 if ax.get_gid() == "lr" else 2)
    assert plots.axes(fig, "lr").get_yscale() == "log"
    assert main(["plot", "history", "--run", str(tmp_path / "nowhere")]) == 2


def write_scores_case(folder, n=150):
    rng = np.random.default_rng(3)
    y = (rng.random((n, len(CLASSES))) < 0.3).astype(int)
    y[:, -1] = 0  # a class without positives: its ROC-AUC and AP are undefined
    strength = np.array([3.0, 1.5, 0.6, 0.1, 1.0])
    p = 1 / (1 + np.exp(-(strength * (2 * y - 1) + rng.normal(0, 1, y.shape))))
    ids = [f"clip{i}" for i in range(n)]
    for name, values in (("truth", y), ("oof", p)):
        table = pd.DataFrame(values, columns=CLASSES)
        table.insert(0, "row_id", ids)
        table.to_csv(folder / f"{name}.csv", index=False)
    return y, p


def test_scores_bars_equal_the_metrics(tmp_path, capsys):
    y, p = write_scores_case(tmp_path)
    pred, truth = str(tmp_path / "oof.csv"), str(tmp_path / "truth.csv")
    assert main(["plot", "scores", "--pred", pred, "--truth", truth, "--worst", "2"]) == 0
    printed = capsys.readouterr().out
    assert_png(str(tmp_path / "oof.scores.png"))
    assert "worst by roc_auc" in printed and printed.index("eurwre") < printed.index("comrav")

    fig, _, _ = command.figure(parse("scores", "--pred", pred, "--truth", truth, "--worst", "2"))
    per, weight = lwlrap_per_class(y, p)
    per[weight == 0] = np.nan  # houspa has no positives: no lwlrap either
    for metric, values in (
        ("roc_auc", per_class_roc_auc(y, p)),
        ("average_precision", per_class_average_precision(y, p)),
        ("lwlrap", per),
    ):
        ax = plots.axes(fig, metric)
        shown = [t.get_text() for t in ax.get_xticklabels()]
        defined = {c: v for c, v in zip(CLASSES, values) if not np.isnan(v)}
        assert shown == sorted(defined, key=defined.get)  # lowest first
        np.testing.assert_allclose(bar_heights(ax.containers[0]), [defined[c] for c in shown])
    assert (
        plots.axes(fig, "lwlrap").get_title()
        == "lwlrap per class, lowest first (1 undefined, not shown)"
    )
    overall = plots.axes(fig, "lwlrap").get_lines()[0].get_ydata()[0]
    assert overall == pytest.approx(lwlrap(y, p))
    worst = plots.axes(fig, "worst")
    assert [t.get_text() for t in worst.get_yticklabels()] == ["eurwre", "comrav"]


def test_timeline_heat_map_equals_the_submission(tmp_path, capsys):
    rng = np.random.default_rng(1)
    ids = [f"soundscape_{s}_{e}" for s in (11, 22) for e in (5, 10, 15, 20, 25, 30)]
    values = rng.random((len(ids), 3))
    sub = pd.DataFrame(values, columns=CLASSES[:3])
    sub.insert(0, "row_id", ids)
    path = str(tmp_path / "submission.csv")
    sub.to_csv(path, index=False)
    assert main(["plot", "timeline", "--submission", path, "--soundscape", "soundscape_22"]) == 0
    out = str(tmp_path / "submission.soundscape_22.timeline.png")
    assert capsys.readouterr().out.strip() == f"{out}: soundscape_22: 6 windows"
    assert_png(out)

    fig, _, _ = command.figure(parse("timeline", "--submission", path))  # the first soundscape
    image = plots.axes(fig, "timeline").get_images()[0]
    written = pd.read_csv(path)[CLASSES[:3]].to_numpy()
    np.testing.assert_array_equal(image.get_array(), written[:6].T)
    assert tuple(image.get_extent()) == (0.0, 30.0, 2.5, -0.5)

    shuffled = sub.iloc[
        rng.permutation(len(sub))
    ]  # rows out of order: the windows come in time order
    name, ends, classes, got = plots.soundscape_windows(shuffled, "soundscape_22")
    assert (name, list(ends), classes) == ("soundscape_22", [5, 10, 15, 20, 25, 30], CLASSES[:3])
    np.testing.assert_array_equal(got, values[6:])
    top = plots.timeline_figure(name, ends, classes, got, top=2)
    keep = np.sort(np.argsort(-values[6:].max(axis=0))[:2])
    np.testing.assert_array_equal(
        plots.axes(top, "timeline").get_images()[0].get_array(), values[6:, keep].T
    )


def test_timeline_errors_are_one_line(tmp_path, capsys):
    path = tmp_path / "bad.csv"
    path.write_text("row_id,a\nsoundscape_x,0.5\n")
    assert main(["plot", "timeline", "--submission", str(path)]) == 2
    assert capsys.readouterr().err.strip() == (
        "birdtpu plot: error: row_id 'soundscape_x' is not <soundscape>_<end second>"
    )
    path.write_text("row_id,a\nsc_5,0.5\n")
    assert main(["plot", "timeline", "--submission", str(path), "--soundscape", "other"]) == 2
    assert (
        "soundscape 'other' is not in the submission (1 soundscapes, e.g. sc)"
        in capsys.readouterr().err
    )


@pytest.mark.slow
def test_spectrograms_show_what_the_model_sees(tiny_data, tmp_path):
    import tensorflow as tf

    from birdtpu.data.shards import parse_example, read_manifest
    from birdtpu.layers.frontend import frontend

    overrides = tiny_overrides(
        tmp_path,
        f"data.root={tiny_data[0]}",
        "augment.mixup_prob=1.0",
        "augment.time_mask_prob=1.0",
        "augment.time_masks=3",
        "augment.time_mask_width=6",
    )
    sets = [a for o in overrides for a in ("--set", o)]
    fig, out, what = command.figure(parse("spectrograms", "--per-class", "2", *sets))
    plots.save_png(fig, out)
    assert out.endswith(os.path.join("tiny", "plots", "spectrograms.png")) and what == "3 classes"
    assert_png(out)

    cfg = load_config(None, overrides)
    manifest = read_manifest(cfg.shard_dir)
    samples = int(cfg.frontend.clip_seconds * cfg.data.sample_rate)
    records = {}
    for path in sorted(tf.io.gfile.glob(os.path.join(cfg.shard_dir, "*.tfrec"))):
        for raw in tf.data.TFRecordDataset(path):
            ex = parse_example(raw, len(manifest["classes"]))
            records[ex["id"].numpy().decode()] = (ex["audio"].numpy()[:samples], int(ex["label"]))
    fe = frontend(cfg.frontend, cfg.data.sample_rate, cfg.augment)
    masked = 0
    for i, name in enumerate(manifest["classes"]):
        assert plots.axes(fig, f"r{i}c0").get_ylabel() == name
        for j in range(4):
            ax = plots.axes(fig, f"r{i}c{j}")
            image = np.asarray(ax.get_images()[0].get_array())
            caption = ax.get_title().split(": ", 1)[1]
            if (
                j < 2
            ):  # clean: the first samples of a clip of this class, through the frontend in inference
                wave, label = records[caption]
                assert manifest["classes"][label] == name
                wave = np.pad(wave, (0, samples - len(wave)))[None]
                expected = np.asarray(fe(wave, training=False))[0, ..., 0]
                np.testing.assert_allclose(image, expected, atol=0.05)
                assert not (image == 0).all(axis=0).any()
            else:  # augmented: mixed targets led by this class, time masks (zero columns)
                assert caption.startswith(f"{name} ")
                masked += bool((image == 0).all(axis=0).any())
    assert masked >= 4
    titles = [plots.axes(fig, f"r{i}c{j}").get_title() for i in range(3) for j in (2, 3)]
    assert any(" + " in t for t in titles)


def test_plot_help_imports_neither_tensorflow_nor_matplotlib():
    code = (
        "import sys\nfrom birdtpu import cli\ntry:\n    cli.main(['plot', 'spectrograms', '--help'])\n"
        "except SystemExit:\n    pass\nprint('imported', 'tensorflow' in sys.modules, 'matplotlib' in sys.modules)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "--per-class" in proc.stdout and proc.stdout.strip().endswith("imported False False")


@pytest.mark.slow
def test_spectrograms_of_chosen_classes(tiny_data, tmp_path):
    from birdtpu.errors import DataError

    cfg = load_config(None, tiny_overrides(tmp_path, f"data.root={tiny_data[0]}"))
    sheet = plots.pipeline_spectrograms(cfg, 1, ["syn02ha"], log=lambda *_: None)
    assert sheet.classes == ["syn02ha"] and sheet.clean.shape == (1, 1, 32, 32)
    assert sheet.clean_titles[0][0].startswith("syn02ha/") and sheet.augmented_titles[0][
        0
    ].startswith("syn02ha ")
    assert plots.pipeline_spectrograms(cfg, 1, max_classes=2, log=lambda *_: None).classes == [
        "syn00wh",
        "syn01tr",
    ]
    with pytest.raises(DataError, match="class 'nope' is not a class of"):
        plots.pipeline_spectrograms(cfg, 1, ["nope"], log=lambda *_: None)
