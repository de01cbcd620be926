"""The Kaggle kernels in kernels/: metadata as the kaggle CLI needs it, valid notebooks, and their
install and config cells run offline against this checkout's wheel (no training, no network)."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from conftest import offline_kernel_env

from birdtpu import kaggle as bk
from birdtpu.errors import BirdtpuError

ROOT = Path(__file__).resolve().parents[1]
KERNELS = {
    "birdclef24-train-tpu": {"tpu": True, "internet": True, "recipe": "birdclef24.yaml"},
    "birdclef24-infer-cpu": {"tpu": False, "internet": False, "recipe": "birdclef24.yaml"},
    "pretrain-xc-tpu": {"tpu": True, "internet": True, "recipe": "pretrain_xc.yaml"},
}
# kaggle-api docs/kernels_metadata.md: required fields and their allowed values.
REQUIRED = {
    "id": None,
    "title": None,
    "code_file": None,
    "language": ("python", "r", "rmarkdown"),
    "kernel_type": ("script", "notebook"),
}
BOOLEANS = ("is_private", "enable_gpu", "enable_tpu", "enable_internet")
LISTS = {"dataset_sources": 2, "competition_sources": 1, "kernel_sources": 2, "model_sources": 5}


def metadata(slug: str) -> dict:
    return json.loads((ROOT / "kernels" / slug / bk.KERNEL_METADATA).read_text())


def notebook(slug: str):
    return nbformat.read(ROOT / "kernels" / slug / metadata(slug)["code_file"], as_version=4)


def code_cells(slug: str) -> list:
    return [c for c in notebook(slug).cells if c.cell_type == "code"]


def test_the_kernels_are_these():
    found = sorted(p.parent.name for p in (ROOT / "kernels").glob(f"*/{bk.KERNEL_METADATA}"))
    assert found == sorted(KERNELS)


@pytest.mark.parametrize("slug", KERNELS)
def test_kernel_metadata_has_what_kaggle_requires(slug):
    meta = metadata(slug)
    for field, allowed in REQUIRED.items():
        assert meta.get(field), f"{slug}: {field} is required"
        assert allowed is None or meta[field] in allowed, f"{slug}: {field}={meta[field]!r}"
    assert meta["id"] == f"birdtpu/{slug}"
    assert (
        re.sub(r"[^a-z0-9]+", "-", meta["title"].lower()).strip("-") == slug
    )  # Kaggle's slug of the title
    assert meta["kernel_type"] == "notebook" and meta["code_file"] == f"{slug}.ipynb"
    assert all(isinstance(meta[b], bool) for b in BOOLEANS)
    for key, parts in LISTS.items():
        assert all(len(ref.split("/")) == parts for ref in meta[key]), key
    assert set(meta) <= bk.KERNEL_FIELDS
    assert bk.check_kernel_metadata(ROOT / "kernels" / slug) == meta


@pytest.mark.parametrize("slug", KERNELS)
def test_kernel_runs_where_it_should(slug):
    meta, want = metadata(slug), KERNELS[slug]
    assert (meta["enable_tpu"], meta["enable_gpu"], meta["enable_internet"]) == (
        want["tpu"],
        False,
        want["internet"],
    )
    assert f"birdtpu/{bk.CODE_DATASET_SLUG}" in meta["dataset_sources"]
    assert "birdclef-2024" in meta["competition_sources"]


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("title", None, "title"),
        ("code_file", "absent.ipynb", "code_file"),
        ("language", "julia", "language"),
        ("kernel_type", "app", "kernel_type"),
        ("id", "no-owner", "id"),
        ("id", "birdtpu/another-slug", "slug"),
        ("enable_internet", "yes", "enable_internet"),
        ("enable_gpu", True, "choose one accelerator"),
        ("dataset_sources", ["no-owner"], "dataset_sources"),
        ("competition_sources", ["owner/slug"], "competition_sources"),
        ("enable_internt", False, "unknown field 'enable_internt'"),
    ],
)
def test_kernel_metadata_check_names_the_problem(tmp_path, field, value, message):
    folder = ROOT / "kernels" / "birdclef24-train-tpu"
    meta = {**metadata(folder.name), field: value}
    (tmp_path / bk.KERNEL_METADATA).write_text(
        json.dumps({k: v for k, v in meta.items() if v is not None})
    )
    (tmp_path / meta["code_file"] if field != "code_file" else tmp_path / "x.ipynb").write_text(
        "{}"
    )
    with pytest.raises(BirdtpuError, match=re.escape(message)):
        bk.check_kernel_metadata(tmp_path)


@pytest.mark.parametrize("slug", KERNELS)
def test_notebook_is_valid_and_starts_with_install_and_config(slug):
    nb = notebook(slug)
    nbformat.validate(nb)
    cells = code_cells(slug)
    assert [c.metadata.get("tags") for c in cells[:2]] == [["install"], ["config"]]
    for cell in cells:  # plain Python (no IPython magics), no stored outputs
        ast.parse(cell.source)
        assert cell.outputs == [] and cell.execution_count is None
    install, config = cells[0].source, cells[1].source
    assert "--no-deps" in install and "--no-index" in install and "BIRDTPU_LOCAL_SRC" in install
    assert "load_config" in config and f'"{KERNELS[slug]["recipe"]}"' in config
    assert ("OFFLINE = True" in install) == (not KERNELS[slug]["internet"])


@pytest.mark.parametrize("slug", KERNELS)
def test_notebook_reads_only_attached_inputs(slug):
    meta = metadata(slug)
    attached = {
        ref.split("/")[-1] for ref in meta["dataset_sources"] + meta["kernel_sources"]
    } | set(meta["competition_sources"])
    text = "\n".join(c.source for c in code_cells(slug))
    used = set(re.findall(r"/kaggle/input/([a-z0-9-]+)", text))
    used |= set(re.findall(r'get_gcs_path\("([a-z0-9-]+)"\)', text))
    assert used and used <= attached


@pytest.mark.parametrize("slug", KERNELS)
def test_notebook_recipe_is_in_configs(slug):
    recipe = ROOT / "configs" / KERNELS[slug]["recipe"]
    assert recipe.is_file(), f"{slug} loads {recipe.name}, which configs/ lacks"


@pytest.fixture(scope="module")
def code_dataset(tmp_path_factory) -> Path:
    """This checkout's code dataset folder (wheel and recipes), built offline."""
    return bk.build_code_dataset(
        tmp_path_factory.mktemp("code") / "birdtpu-code", "someone/birdtpu-code", src=ROOT
    )


REPORT = """
import json as _json
print("REPORT " + _json.dumps({"birdtpu": birdtpu.__file__, "recipe": RECIPE, "root": cfg.data.root,
                               "run_dir": cfg.run_dir, "model": cfg.infer.model,
                               "backend": cfg.runtime.backend, "device": cfg.runtime.device,
                               "submission": cfg.infer.submission, "sets": SETS}))
"""


@pytest.mark.parametrize("slug", KERNELS)
def test_install_and_config_cells_run_offline(tmp_path, code_dataset, slug):
    cells = code_cells(slug)
    script = tmp_path / "cells.py"
    script.write_text("\n\n".join([cells[0].source, cells[1].source, REPORT]))
    target, data, out, models = (tmp_path / n for n in ("target", "data", "working", "models"))
    for folder in (target, data):
        folder.mkdir()
    env = offline_kernel_env(tmp_path, code_dataset, data, out, models, target)
    proc = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    (line,) = [ln for ln in proc.stdout.splitlines() if ln.startswith("REPORT ")]
    report = json.loads(line[len("REPORT ") :])
    assert Path(report["birdtpu"]).is_relative_to(
        target
    )  # installed from the wheel, not this checkout
    assert report["recipe"] == str(code_dataset / KERNELS[slug]["recipe"])
    assert Path(report["run_dir"]).parent == out
    assert not out.exists()  # the config cell only loads; nothing ran
    if slug != "pretrain-xc-tpu":
        assert report["root"] == str(data)
    if KERNELS[slug]["tpu"]:  # JAX drives a TPU; here, without one, the CPU
        assert (report["backend"], report["device"]) == ("jax", "auto")
    if slug == "birdclef24-infer-cpu":
        name = Path(report["run_dir"]).name
        assert report["model"] == f"{models}/{name}/model.keras"
        assert report["submission"] == f"{out}/submission.csv"
        assert "data.soundscape_dir=test_soundscapes" in report["sets"]
