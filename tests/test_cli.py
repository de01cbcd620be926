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


def test_info_reports_versions_backend_and_distribution():
    proc = run_cli("info", "--set", "runtime.backend=tensorflow")
    assert proc.returncode == 0, proc.stderr
    assert "tensorflow" in proc.stdout and "keras" in proc.stdout and "tensorflow-io" in proc.stdout
    assert "backend: tensorflow (runtime.backend: tensorflow)" in proc.stdout
    assert "distribution: no tf.distribute strategy over 1 cpu device(s)" in proc.stdout


def test_info_under_jax_names_the_devices_and_data_parallel():
    proc = run_cli("info", "--set", "runtime.backend=jax", "--set", "runtime.cpu_replicas=2")
    assert proc.returncode == 0, proc.stderr
    assert "backend: jax (runtime.backend: jax)" in proc.stdout
    assert "devices: cpu:0, cpu:1" in proc.stdout
    assert "distribution: DataParallel over 2 cpu device(s)" in proc.stdout


def test_auto_backend_follows_keras_backend_and_says_why(monkeypatch):
    from birdtpu import backend

    monkeypatch.setenv("KERAS_BACKEND", "jax")
    assert backend.choose("auto") == ("jax", "KERAS_BACKEND=jax (runtime.backend: auto)")
    monkeypatch.delenv("KERAS_BACKEND")
    if backend.tpu_hint():
        pytest.skip("this machine may have a TPU")
    name, why = backend.choose("auto")
    assert (name, why) == ("tensorflow", "no TPU on this machine (runtime.backend: auto)")


def test_a_backend_other_than_the_imported_one_is_one_clear_line():
    import keras

    from birdtpu import backend
    from birdtpu.errors import ConfigError

    other = "jax" if keras.backend.backend() == "tensorflow" else "tensorflow"
    with pytest.raises(ConfigError, match=f"already imported with the {keras.backend.backend()}"):
        backend.activate(other)
