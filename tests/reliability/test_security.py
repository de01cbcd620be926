"""Nothing from outside runs as code, and no credential reaches a log or a file.

Only `yaml.safe_load`; Keras models load with `safe_mode=True` (a Lambda layer is refused); no
pickle, marshal, eval or exec anywhere in the package; W&B and Kaggle keys never printed or saved.
"""

from __future__ import annotations

import ast
import json
import os
import pathlib

import pytest
from conftest import run_cli, tiny_overrides

PACKAGE = pathlib.Path(__file__).resolve().parents[2] / "birdtpu"
BANNED_MODULES = {"pickle", "cPickle", "_pickle", "dill", "marshal", "shelve", "cloudpickle"}
BANNED_CALLS = {
    "eval",
    "exec",
    "yaml.load",
    "yaml.unsafe_load",
    "yaml.full_load",
    "yaml.load_all",
    "yaml.unsafe_load_all",
    "joblib.load",
    "pd.read_pickle",
    "pandas.read_pickle",
    "np.load",
    "numpy.load",
}
BANNED_NAMES = {"yaml.Loader", "yaml.UnsafeLoader", "yaml.FullLoader"}
MODEL_LOADERS = {"keras.models.load_model", "keras.saving.load_model", "tf.keras.models.load_model"}
SECRET = "s3cr3t-6f1d2a9c"


def _dotted(node) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts))


def _problems(tree: ast.AST) -> list[str]:
    """Banned imports and calls (YAML: `yaml.safe_load` only)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] + (
                [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
            )
            found += [f"imports {n}" for n in names if n.split(".")[0] in BANNED_MODULES]
        elif isinstance(node, ast.Attribute) and _dotted(node) in BANNED_NAMES:
            found.append(f"uses {_dotted(node)}")
        elif isinstance(node, ast.Call):
            name = _dotted(node.func)
            kw = {k.arg: k.value for k in node.keywords}
            if name in ("np.load", "numpy.load"):
                pickled = kw.get("allow_pickle")
                if pickled is not None and not (
                    isinstance(pickled, ast.Constant) and pickled.value is False
                ):
                    found.append(f"calls {name}(allow_pickle=...)")
            elif name in BANNED_CALLS:
                found.append(f"calls {name}")
            elif name in MODEL_LOADERS:
                safe = kw.get("safe_mode")
                if not (isinstance(safe, ast.Constant) and safe.value is True):
                    found.append(f"calls {name} without safe_mode=True")
    return found


def test_the_scan_catches_each_banned_pattern():
    bad = (
        "import pickle\nfrom dill import loads\nyaml.load(x, Loader=yaml.Loader)\neval('1')\n"
        "np.load(p, allow_pickle=True)\nkeras.models.load_model(p)\nkeras.saving.load_model(p, safe_mode=False)\n"
    )
    assert len(_problems(ast.parse(bad))) == 8
    assert _problems(ast.parse("yaml.load(x, Loader=yaml.SafeLoader)\n")) == ["calls yaml.load"]
    good = (
        "yaml.safe_load(x)\nyaml.compose(x, Loader=yaml.SafeLoader)\nnp.load(p)\n"
        "keras.models.load_model(p, compile=False, safe_mode=True)\n"
    )
    assert _problems(ast.parse(good)) == []


def test_package_source_has_no_unsafe_loading():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        found += [f"{path.relative_to(PACKAGE.parent)}:{p}" for p in _problems(tree)]
    assert not found, "unsafe loading in the package:\n" + "\n".join(found)


def test_a_yaml_python_object_payload_is_refused_in_one_line(tmp_path):
    recipe = tmp_path / "evil.yaml"
    marker = tmp_path / "pwned"
    recipe.write_text(f"train: !!python/object/apply:os.system ['touch {marker}']\n")
    out = run_cli("info", "--cfg", str(recipe))
    assert out.returncode == 2, out.stderr[-2000:]
    lines = [x for x in out.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and str(recipe) in lines[0] and "Traceback" not in out.stderr, out.stderr
    assert not marker.exists()


def test_a_keras_model_with_a_lambda_layer_is_refused_by_init_from(tmp_path):
    import keras

    from birdtpu.errors import ConfigError
    from birdtpu.train.finetune import init_from

    inputs = keras.Input((4,))
    evil = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Lambda(lambda x: x * 2)(inputs)))
    path = str(tmp_path / "evil.keras")
    evil.save(path)
    target = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    with pytest.raises(ConfigError, match="cannot load .*evil.keras") as err:
        init_from(target, path, log=lambda *_: None)
    assert "\n" not in str(err.value)


def _secret_env(tmp_path) -> dict:
    kaggle_dir = tmp_path / "kaggle"
    kaggle_dir.mkdir()
    (kaggle_dir / "kaggle.json").write_text(
        json.dumps({"username": f"user-{SECRET}", "key": f"key-{SECRET}"})
    )
    os.chmod(kaggle_dir / "kaggle.json", 0o600)
    return {
        "WANDB_API_KEY": f"wandbkey{SECRET}" + "0" * 16,
        "KAGGLE_USERNAME": f"user-{SECRET}",
        "KAGGLE_KEY": f"key-{SECRET}",
        "KAGGLE_CONFIG_DIR": str(kaggle_dir),
        "WANDB_MODE": "offline",
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "HTTP_PROXY": "http://127.0.0.1:9",
    }


def _assert_no_secret(outputs, folder) -> None:
    for out in outputs:
        assert SECRET not in out.stdout and SECRET not in out.stderr, (out.args, out.stderr[-2000:])
    for path in pathlib.Path(folder).rglob("*"):
        if path.is_file() and "kaggle" not in path.parts:
            assert SECRET.encode() not in path.read_bytes(), f"{path} holds the secret"


@pytest.mark.slow
def test_credentials_reach_no_log_and_no_file(tmp_path, tiny_data, monkeypatch):
    root, _ = tiny_data
    for key, value in _secret_env(tmp_path).items():
        monkeypatch.setenv(key, value)
    sets = [
        x
        for o in tiny_overrides(
            tmp_path,
            f"data.root={root}",
            "model.name=fat2019",
            "model.width=0.125",
            "tracking.wandb=offline",
            "tracking.log_model=false",
        )
        for x in ("--set", o)
    ]
    outputs = [
        run_cli("info", timeout=300),
        run_cli("fit", *sets, timeout=600),
        run_cli("kaggle", "download", "birdclef-2024", "--path", str(tmp_path / "dl"), timeout=300),
    ]
    assert outputs[0].returncode == 0 and outputs[1].returncode == 0, outputs[1].stderr[-2000:]
    assert outputs[2].returncode != 0  # no network: a one-line failure, not a hang
    run = tmp_path / "runs" / "tiny"
    assert {"config.yaml", "history.csv", "model_card.md"} <= set(os.listdir(run))
    _assert_no_secret(outputs, tmp_path)
