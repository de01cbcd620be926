"""`birdtpu evaluate` and `birdtpu stack` on CSV files."""

import json
import os
import re
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from birdtpu import cli  # noqa: E402
from birdtpu import metrics as M  # noqa: E402

CLASSES = ["amerob", "barswa", "comrav", "eurwre"]


def write_case(folder, seed=0, n=120):
    """truth.csv, good.csv and noisy.csv for windows `sc<k>_<end second>` (rows shuffled)."""
    rng = np.random.default_rng(seed)
    y = (rng.random((n, len(CLASSES))) < 0.25).astype(int)
    y[np.arange(n), rng.integers(len(CLASSES), size=n)] = 1
    ids = [f"sc{i // 12}_{5 * (i % 12 + 1)}" for i in range(n)]
    paths = {}
    for name, values in [("truth", y), ("good", None), ("noisy", None)]:
        if values is None:
            signal = 3.0 if name == "good" else 0.4
            values = 1 / (1 + np.exp(-(signal * (2 * y - 1) + rng.normal(0, 2, y.shape))))
        df = pd.DataFrame(values, columns=CLASSES)
        df.insert(0, "row_id", ids)
        if name != "truth":
            df = df.sample(frac=1, random_state=seed)[["row_id", *CLASSES[::-1]]]
        paths[name] = str(folder / f"{name}.csv")
        df.to_csv(paths[name], index=False)
    return paths


def scores_from(stdout):
    return {
        name: float(value) for name, value in (line.split() for line in stdout.strip().splitlines())
    }


def test_evaluate_prints_every_metric(tmp_path, capsys):
    paths = write_case(tmp_path)
    out_json = str(tmp_path / "scores.json")
    assert (
        cli.main(
            ["evaluate", "--pred", paths["good"], "--truth", paths["truth"], "--json", out_json]
        )
        == 0
    )
    printed = scores_from(capsys.readouterr().out)
    y, s, _ = M.align_tables(pd.read_csv(paths["truth"]), pd.read_csv(paths["good"]))
    assert list(printed) == list(M.METRICS)
    for name, fn in M.METRICS.items():
        assert printed[name] == pytest.approx(fn(y, s), abs=5e-7)
    saved = json.loads(open(out_json).read())
    assert saved["rows"] == 120 and saved["lwlrap"] == M.lwlrap(y, s)


def test_evaluate_file_level(tmp_path, capsys):
    paths = write_case(tmp_path)
    args = [
        "evaluate",
        "--pred",
        paths["good"],
        "--truth",
        paths["truth"],
        "--metric",
        "lwlrap",
        "--file-level",
        "mean",
    ]
    assert cli.main(args) == 0
    truth = M.file_level(pd.read_csv(paths["truth"]), "max")
    pred = M.file_level(pd.read_csv(paths["good"]), "mean")
    assert len(truth) == 10
    y, s, _ = M.align_tables(truth, pred)
    assert scores_from(capsys.readouterr().out) == {
        "lwlrap": pytest.approx(M.lwlrap(y, s), abs=5e-7)
    }


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda df: df.drop(index=3),
            r"good.csv: row_id 'sc\d+_\d+' of .*truth.csv is missing \(1 rows in all\)",
        ),
        (
            lambda df: df.drop(columns="comrav"),
            r"good.csv: column 'comrav' of .*truth.csv is missing",
        ),
        (
            lambda df: df.assign(barswa=df["barswa"].where(df.index != 7)),
            r"good.csv: row '.+', column 'barswa'",
        ),
    ],
)
def test_evaluate_bad_csv_exits_2_with_one_line(tmp_path, capsys, edit, message):
    paths = write_case(tmp_path)
    edit(pd.read_csv(paths["good"])).to_csv(paths["good"], index=False)
    assert cli.main(["evaluate", "--pred", paths["good"], "--truth", paths["truth"]]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("birdtpu evaluate: error: ")
    assert re.search(message, err), err


def test_evaluate_unknown_metric(tmp_path, capsys):
    paths = write_case(tmp_path)
    assert (
        cli.main(
            ["evaluate", "--pred", paths["good"], "--truth", paths["truth"], "--metric", "lwrap"]
        )
        == 2
    )
    assert "unknown metric 'lwrap' (did you mean 'lwlrap'?)" in capsys.readouterr().err


@pytest.mark.parametrize("verb", ["evaluate", "stack"])
def test_help_does_not_import_tensorflow(verb):
    code = (
        f"import sys\nfrom birdtpu import cli\ntry:\n    cli.main([{verb!r}, '--help'])\n"
        "except SystemExit:\n    pass\nprint('TF', 'tensorflow' in sys.modules)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "--truth" in proc.stdout and proc.stdout.strip().endswith("TF False")


def test_stack_needs_two_models(tmp_path, capsys):
    paths = write_case(tmp_path)
    assert (
        cli.main(
            [
                "stack",
                "--oof",
                paths["good"],
                "--truth",
                paths["truth"],
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    assert "at least two models" in capsys.readouterr().err


@pytest.mark.slow
def test_stack_end_to_end(tmp_path, capsys):
    from birdtpu.ensemble import apply_stacker, load_stacker

    paths = write_case(tmp_path, n=240)
    out = str(tmp_path / "stack")
    args = [
        "stack",
        "--oof",
        paths["good"],
        paths["noisy"],
        "--truth",
        paths["truth"],
        "--out",
        out,
        "--folds",
        "3",
        "--learning-rate",
        "0.03",
        "--patience",
        "10",
        "--metric",
        "macro_roc_auc",
    ]
    assert cli.main(args) == 0
    printed = capsys.readouterr().out
    assert sorted(os.listdir(out)) == ["oof_stacker.csv", "report.json", "stacker.keras"]
    report = json.loads(open(os.path.join(out, "report.json")).read())
    scores = {k: v["macro_roc_auc"] for k, v in report["out_of_fold"].items()}
    assert list(scores) == ["good", "noisy", "mean", "rank_mean", "weighted_mean", "stacker"]
    assert scores["stacker"] >= scores["mean"]
    assert f"{scores['stacker']:.6f}" in printed
    # the saved out-of-fold predictions score what the report says
    assert (
        cli.main(
            [
                "evaluate",
                "--pred",
                os.path.join(out, "oof_stacker.csv"),
                "--truth",
                paths["truth"],
                "--metric",
                "macro_roc_auc",
            ]
        )
        == 0
    )
    assert scores_from(capsys.readouterr().out)["macro_roc_auc"] == pytest.approx(
        scores["stacker"], abs=5e-7
    )
    # the saved stacker blends new tables given in the same order
    model = load_stacker(os.path.join(out, "stacker.keras"))
    assert model.model_names == ["good", "noisy"] and model.class_names == CLASSES
    blended = apply_stacker(model, [pd.read_csv(paths["good"]), pd.read_csv(paths["noisy"])])
    assert list(blended.columns) == ["row_id", *CLASSES] and len(blended) == 240
    assert blended[CLASSES].to_numpy().min() > 0 and blended[CLASSES].to_numpy().max() < 1
