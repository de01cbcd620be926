"""A bad recipe through every verb that reads one: one line naming the file (or --set) and the key, exit 2."""

import pytest
from conftest import run_cli

from birdtpu.cli import main

# every verb that takes --cfg, with the other arguments it needs
VERBS = [
    ["info"],
    ["synth"],
    ["shard"],
    ["fit"],
    ["predict"],
    ["export", "--format", "tflite"],
    ["plot", "classes"],
    ["plot", "spectrograms"],
]

# recipe text -> what the one line must say after "<file>"
RECIPES = {
    "unknown_key": (
        "train:\n  epoch: 3\n",
        ": unknown key 'train.epoch'; did you mean train.epochs?",
    ),
    "unknown_section": ("trian:\n  epochs: 3\n", ": unknown key 'trian'; did you mean train?"),
    "wrong_type": ("train:\n  epochs: three\n", ": train.epochs: expected an integer, got 'three'"),
    "not_a_list": (
        "synth:\n  sample_rates: 22050\n",
        ": synth.sample_rates: expected a list, got 22050",
    ),
    "negative_probability": (
        "augment:\n  mixup_prob: -0.1\n",
        ": augment.mixup_prob: -0.1 is below the minimum 0.0",
    ),
    "crop_longer_than_window": (
        "frontend:\n  clip_seconds: 10\nshards:\n  max_seconds: 5\n",
        ": frontend.clip_seconds: 10.0 is longer than the shard window shards.max_seconds",
    ),
    "bad_rates": (
        "synth:\n  sample_rates: [-5, 0]\n",
        ": synth.sample_rates: expected one or more rates from 8000",
    ),
    "not_finite": ("train:\n  lr: .nan\n", ": train.lr: expected a finite number, got nan"),
    "invalid_yaml": ("train:\n  epochs: [3\n", " line 3: invalid YAML"),
    "tab_indent": ("train:\n\tepochs: 3\n", " line 2: invalid YAML"),
    "key_twice": (
        "train:\n  epochs: 3\n  epochs: 4\n",
        " line 3: key 'epochs' appears twice in one section",
    ),
    "top_level_list": ("- train\n- data\n", ": expected a mapping of sections at the top level"),
    "section_not_mapping": ("train: 5\n", ": train: expected a mapping of keys, got 5"),
}


def one_error_line(capsys, verb: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"birdtpu {verb}: error: "), err
    return err[0][len(f"birdtpu {verb}: error: ") :]


@pytest.mark.parametrize("case", RECIPES)
@pytest.mark.parametrize("verb", VERBS, ids=" ".join)
def test_bad_recipe_is_one_line_naming_file_and_key(tmp_path, capsys, verb, case):
    text, message = RECIPES[case]
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    assert main([*verb, "--cfg", str(path)]) == 2
    assert one_error_line(capsys, verb[0]).startswith(f"{path}{message}")


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "config file not found"),
        (b"\xff\xfe\x00\x80 binary", "not a text file"),
        ("dir", "is a folder"),
    ],
)
def test_unreadable_recipe_file(tmp_path, capsys, content, message):
    path = tmp_path / "recipe.yaml"
    if content == "dir":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    assert main(["shard", "--cfg", str(path)]) == 2
    assert one_error_line(capsys, "shard") == f"{path}: {message}" + (
        " (expected a UTF-8 YAML recipe)"
        if content and content != "dir"
        else ", not a YAML recipe"
        if content == "dir"
        else ""
    )


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.epochs", "--set 'train.epochs': expected KEY=VALUE"),
        (
            "train.epoch=3",
            "--set 'train.epoch=3': unknown key 'train.epoch'; did you mean train.epochs?",
        ),
        ("train.epochs=x", "--set 'train.epochs=x': train.epochs: expected an integer, got 'x'"),
        (
            "augment.noise_prob=1.5",
            "--set 'augment.noise_prob=1.5': augment.noise_prob: 1.5 is above the maximum 1.0",
        ),
        (
            "shards.max_seconds=1",
            "--set: frontend.clip_seconds: 5.0 is longer than the shard window",
        ),
    ],
)
def test_bad_override_names_the_override_not_the_file(tmp_path, capsys, override, message):
    path = tmp_path / "recipe.yaml"
    path.write_text("train:\n  epochs: 3\n")
    args = (
        ["--set", override]
        if override.startswith("shards")
        else ["--cfg", str(path), "--set", override]
    )
    assert main(["fit", *args]) == 2
    assert one_error_line(capsys, "fit").startswith(message)


def test_a_bad_recipe_in_a_real_process_has_no_traceback(tmp_path):
    path = tmp_path / "recipe.yaml"
    path.write_text("augment:\n  mixup_prob: -0.5\n")
    proc = run_cli("fit", "--cfg", str(path), timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert (
        proc.stderr.strip()
        == f"birdtpu fit: error: {path}: augment.mixup_prob: -0.5 is below the minimum 0.0"
    )
