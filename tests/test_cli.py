import pytest
from conftest import run_cli

from birdtpu.cli import VERBS, main


def test_help_lists_every_verb(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for verb in (
        "info",
        "synth",
        "catalog",
        "shard",
        "fit",
        "evaluate",
        "predict",
        "export",
        "stack",
        "plot",
        "kaggle",
    ):
        assert verb in VERBS and f"    {verb}" in out


@pytest.mark.parametrize("verb", list(VERBS))
def test_each_verb_has_help(verb, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([verb, "--help"])
    assert exit_.value.code == 0
    assert VERBS[verb].split()[0] in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["fit", "--cfg", "missing.yaml"],
            "birdtpu fit: error: missing.yaml: config file not found",
        ),
        (
            ["fit", "--set", "train.epoch=2"],
            "birdtpu fit: error: --set 'train.epoch=2': unknown key 'train.epoch'; did you mean train.epochs?",
        ),
        (
            ["shard", "--set", "train.epochs=many"],
            "birdtpu shard: error: --set 'train.epochs=many': train.epochs: expected an integer, got 'many'",
        ),
        (
            [
                "predict",
                "--set",
                "data.root=/nonexistent",
                "--set",
                "infer.model=/nonexistent/model.keras",
            ],
            "birdtpu predict: error: /nonexistent/model.keras: model not found",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, message):
    proc = run_cli(*args)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith(message), proc.stderr
    assert "Traceback" not in proc.stderr


def test_fit_on_missing_data_says_where(tmp_path):
    proc = run_cli(
        "fit", "--set", f"data.root={tmp_path}/none", "--set", f"output_dir={tmp_path}/runs"
    )
    assert proc.returncode == 2
    assert f"{tmp_path}/none/train_metadata.csv: metadata file not found" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_info_reports_versions_and_strategy():
    proc = run_cli("info")
    assert proc.returncode == 0, proc.stderr
    assert "tensorflow" in proc.stdout and "keras" in proc.stdout
    assert (
        "tensorflow-io" in proc.stdout and "strategy:" in proc.stdout and "replica" in proc.stdout
    )
