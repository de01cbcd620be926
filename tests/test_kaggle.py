"""birdtpu.kaggle and `birdtpu kaggle`: the code dataset, metadata checks, credentials, the workflow.

Nothing here reaches the network: the wheel build and pip run for real but offline (--no-index,
a local wheelhouse of stand-in wheels), and the CLI runs with an empty HOME and no KAGGLE_*
variables. The upload functions are exercised through their `connect` seam with a recording
stand-in for the kaggle API, since the real API cannot be reached from tests.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import json
import os
import shlex
import subprocess
import sys
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from birdtpu import __version__
from birdtpu import kaggle as bk
from birdtpu.cli import build_parser
from birdtpu.errors import BirdtpuError
from birdtpu.kaggle.requirements import _installed

ROOT = Path(__file__).resolve().parents[1]
KERNELS = ROOT / "kernels"
SENTINEL = "sEnTiNeL-kaggle-key-0123456789"

# The fields `kaggle datasets create` requires (kaggle-api docs/datasets_metadata.md).
DATASET_REQUIRED = ("title", "id", "licenses")


def write_wheel(folder: Path, name: str, version: str, requires: tuple[str, ...] = ()) -> Path:
    """A minimal valid pure-Python wheel: a stand-in for a PyPI wheel in an offline wheelhouse."""
    dist = f"{name.replace('-', '_')}-{version}"
    files = {
        f"{name.replace('-', '_')}_standin.py": b"",
        f"{dist}.dist-info/METADATA": "\n".join(
            ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
            + [f"Requires-Dist: {r}" for r in requires]
        ).encode()
        + b"\n",
        f"{dist}.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = [
        f"{path},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},{len(data)}"
        for path, data in files.items()
    ]
    files[f"{dist}.dist-info/RECORD"] = (
        "\n".join(record + [f"{dist}.dist-info/RECORD,,"]) + "\n"
    ).encode()
    path = folder / f"{dist}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for name_, data in files.items():
            zf.writestr(name_, data)
    return path


def offline_env(home: Path, **extra: str) -> dict:
    """This environment without credentials or pip settings, importing this checkout, with HOME and
    KAGGLE_CONFIG_DIR empty and a dead proxy, so an unexpected request fails instead of going out."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("KAGGLE_", "PIP_", "XDG_CONFIG"))
    }
    home.mkdir(parents=True, exist_ok=True)
    env.update(
        PYTHONPATH=str(ROOT),
        HOME=str(home),
        KAGGLE_CONFIG_DIR=str(home),
        HTTP_PROXY="http://127.0.0.1:9",
        HTTPS_PROXY="http://127.0.0.1:9",
        NO_PROXY="",
        PIP_NO_INDEX="1",
        **extra,
    )
    return env


def birdtpu_cli(args: list[str], env: dict, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "birdtpu.cli", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def code_dataset(tmp_path_factory) -> Path:
    """The code dataset folder of this checkout, built offline (no dependency wheels)."""
    return bk.build_code_dataset(
        tmp_path_factory.mktemp("code") / "birdtpu-code", "someone/birdtpu-code", src=ROOT
    )


# ---------------------------------------------------------------- the code dataset


def test_code_dataset_holds_the_wheel_recipes_and_valid_metadata(code_dataset):
    wheels = sorted(p.name for p in code_dataset.glob("*.whl"))
    assert wheels == [f"birdtpu-{__version__}-py3-none-any.whl"]
    with zipfile.ZipFile(code_dataset / wheels[0]) as zf:
        names = set(zf.namelist())
        entry_points = zf.read(f"birdtpu-{__version__}.dist-info/entry_points.txt").decode()
    assert {"birdtpu/cli.py", "birdtpu/kaggle/__init__.py", "birdtpu/commands/kaggle.py"} <= names
    assert "birdtpu = birdtpu.cli:main" in entry_points
    assert not any("__pycache__" in n or n.startswith(("tests/", "kernels/")) for n in names)
    recipes = sorted(p.name for p in (ROOT / "configs").glob("*.yaml"))
    assert sorted(p.name for p in code_dataset.glob("*.yaml")) == recipes
    meta = json.loads((code_dataset / bk.DATASET_METADATA).read_text())
    assert all(meta.get(field) for field in DATASET_REQUIRED)
    assert meta["id"] == "someone/birdtpu-code" and 6 <= len(meta["title"]) <= 50
    assert len(meta["licenses"]) == 1 and meta["licenses"][0]["name"] in bk.DATASET_LICENSES
    assert 20 <= len(meta["subtitle"]) <= 80
    assert bk.check_dataset_metadata(code_dataset) == meta


def test_code_dataset_with_deps_ships_what_kaggle_lacks_offline(tmp_path, code_dataset):
    wheel = next(code_dataset.glob("birdtpu-*.whl"))
    lacking = sorted(
        {bk.requirement_name(r) for r in bk.wheel_requirements(wheel)} - bk.KAGGLE_IMAGE_PACKAGES
    )
    assert "iterative-stratification" in lacking and "tensorflow" not in lacking
    assert "kapre" not in lacking  # the optional extra [kapre]
    house = tmp_path / "wheelhouse"
    house.mkdir()
    for name in lacking:  # the installed version meets birdtpu's range
        write_wheel(house, name, importlib.metadata.version(name))
    write_wheel(house, "tensorflow", "2.17.1")  # present, and must not be shipped
    out = bk.build_code_dataset(
        tmp_path / "code", "someone/birdtpu-code", src=ROOT, with_deps=True, find_links=str(house)
    )
    shipped = sorted(bk.requirement_name(p.name.split("-")[0]) for p in out.glob("*.whl"))
    assert shipped == sorted(["birdtpu", *lacking])


def test_code_dataset_ships_the_inference_extras_and_what_they_need(tmp_path, code_dataset):
    wheel = next(code_dataset.glob("birdtpu-*.whl"))
    base = {bk.requirement_name(r) for r in bk.wheel_requirements(wheel)}
    lacking = sorted(base - bk.KAGGLE_IMAGE_PACKAGES)
    extras = {bk.requirement_name(r) for r in bk.wheel_requirements(wheel, ("onnx", "openvino"))}
    assert extras - base == {"tf2onnx", "onnx", "onnxruntime", "openvino"}
    house = tmp_path / "wheelhouse"
    house.mkdir()
    for name in [*lacking, "tf2onnx", "onnx"]:
        write_wheel(house, name, importlib.metadata.version(name))
    # what the runtimes need in turn: the kernel installs it round by round from the dataset
    write_wheel(house, "onnxruntime", importlib.metadata.version("onnxruntime"), ("coloredlogs",))
    write_wheel(house, "coloredlogs", "15.0.1", ("humanfriendly>=9.1",))
    write_wheel(house, "humanfriendly", "10.0")
    write_wheel(house, "openvino", importlib.metadata.version("openvino"), ("numpy>=1.16",))
    write_wheel(house, "numpy", "2.0.0")  # the image has it: not shipped
    out = bk.build_code_dataset(
        tmp_path / "code",
        "someone/birdtpu-code",
        src=ROOT,
        with_deps=True,
        find_links=str(house),
        extras=("onnx", "openvino"),
    )
    shipped = sorted(bk.requirement_name(p.name.split("-")[0]) for p in out.glob("*.whl"))
    runtimes = ["tf2onnx", "onnx", "onnxruntime", "coloredlogs", "humanfriendly", "openvino"]
    assert shipped == sorted(["birdtpu", *lacking, *runtimes])


def test_code_dataset_rebuild_replaces_and_a_foreign_folder_is_refused(tmp_path):
    had_build = (ROOT / "build").exists()
    out = tmp_path / "code"
    bk.build_code_dataset(out, "someone/birdtpu-code", src=ROOT)
    assert (ROOT / "build").exists() == had_build  # the wheel is built from a copy of the sources
    (out / "birdtpu-0.0.1-py3-none-any.whl").write_bytes(b"stale")
    bk.build_code_dataset(out, "someone/birdtpu-code", src=ROOT)
    assert [p.name for p in out.glob("*.whl")] == [f"birdtpu-{__version__}-py3-none-any.whl"]
    assert [p.name for p in tmp_path.iterdir()] == ["code"]  # no temporary folder left behind
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(BirdtpuError, match="not a code dataset"):
        bk.build_code_dataset(tmp_path / "mine", "someone/birdtpu-code", src=ROOT)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"
    with pytest.raises(BirdtpuError, match="not a birdtpu checkout"):
        bk.build_code_dataset(tmp_path / "other", "someone/birdtpu-code", src=tmp_path)


@pytest.mark.parametrize(
    "change, field",
    [
        ({"id": "birdtpu-code"}, "id"),
        ({"id": "someone/code"}, "id"),
        ({"id": "someone/Birdtpu_Code"}, "id"),
        ({"title": "bird"}, "title"),
        ({"title": None}, "title"),
        ({"licenses": [{"name": "MIT"}]}, "licenses"),
        ({"licenses": [{"name": "CC0-1.0"}, {"name": "other"}]}, "licenses"),
        ({"licenses": None}, "licenses"),
        ({"subtitle": "too short"}, "subtitle"),
        ({"resources": [{"path": "absent.csv"}]}, "resources"),
    ],
)
def test_dataset_metadata_check_names_the_bad_field(tmp_path, change, field):
    meta = {**bk.code_dataset_metadata("someone/birdtpu-code"), **change}
    meta = {k: v for k, v in meta.items() if v is not None}
    (tmp_path / bk.DATASET_METADATA).write_text(json.dumps(meta))
    (tmp_path / "birdtpu-0.1.0-py3-none-any.whl").write_bytes(b"x")
    with pytest.raises(BirdtpuError, match=field):
        bk.check_dataset_metadata(tmp_path)


def test_dataset_metadata_check_wants_data_files(tmp_path):
    (tmp_path / bk.DATASET_METADATA).write_text(
        json.dumps(bk.code_dataset_metadata("someone/birdtpu-code"))
    )
    with pytest.raises(BirdtpuError, match="no data files"):
        bk.check_dataset_metadata(tmp_path)


# ---------------------------------------------------------------- requirements


def test_wheel_requirements_leave_out_extras(code_dataset):
    names = {
        bk.requirement_name(r) for r in bk.wheel_requirements(next(code_dataset.glob("*.whl")))
    }
    assert {"keras", "pandas"} <= names and "kapre" not in names
    assert (
        "tensorflow" not in names
    )  # the image's own (tensorflow or tensorflow-cpu), or the [tf] extra
    assert not names & {"pytest", "kaggle", "tensorflow-io"}


def test_missing_requirements_reads_installed_metadata(tmp_path, monkeypatch):
    dist = tmp_path / "standin_root-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: standin-root\nVersion: 1.0\n"
        "Requires-Dist: numpy>=1\nRequires-Dist: surely-not-installed-xyz>=2\n"
        'Requires-Dist: also-absent-abc; extra == "dev"\n'
        'Requires-Dist: absent-on-old-pythons; python_version < "3.0"\n'
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert bk.missing_requirements(["standin-root"]) == ["surely-not-installed-xyz>=2"]
    assert bk.missing_requirements() == []  # this environment has all of birdtpu's


def test_tensorflow_under_another_name_counts_as_installed(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "path", [str(tmp_path)])
    assert not _installed("tensorflow")
    (tmp_path / "tensorflow_tpu-2.17.0.dist-info").mkdir()
    (tmp_path / "tensorflow_tpu-2.17.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: tensorflow-tpu\nVersion: 2.17.0\n"
    )
    assert _installed("tensorflow") and not _installed("keras")


# ---------------------------------------------------------------- kernels and archives


def test_kernel_for_owner_moves_the_id_and_own_sources_only(tmp_path):
    moved = bk.kernel_for_owner(KERNELS / "pretrain-xc-tpu", "alice", tmp_path / "k")
    meta = bk.check_kernel_metadata(moved)
    assert meta["id"] == "alice/pretrain-xc-tpu"
    assert "alice/birdtpu-code" in meta["dataset_sources"]
    assert any(s.startswith("rohanrao/") for s in meta["dataset_sources"])
    infer = bk.check_kernel_metadata(
        bk.kernel_for_owner(KERNELS / "birdclef24-infer-cpu", "alice", tmp_path / "i")
    )
    assert infer["kernel_sources"] == ["alice/birdclef24-train-tpu"]
    assert (moved / meta["code_file"]).read_bytes() == (
        KERNELS / "pretrain-xc-tpu" / meta["code_file"]
    ).read_bytes()


def test_extract_zip_extracts_and_refuses_escaping_members(tmp_path):
    archive = tmp_path / "c.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("train_metadata.csv", "primary_label,filename\n")
        zf.writestr("train_audio/asbfly/XC1.ogg", b"ogg")
    assert bk.extract_zip(archive, tmp_path / "out") == 2
    assert (tmp_path / "out" / "train_audio" / "asbfly" / "XC1.ogg").read_bytes() == b"ogg"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../evil.txt", "x")
    with pytest.raises(BirdtpuError, match="outside"):
        bk.extract_zip(archive, tmp_path / "out2")
    assert not (tmp_path / "evil.txt").exists()


# ---------------------------------------------------------------- uploads, through the seam


class RecordingApi:
    """Stands in for kaggle's KaggleApi (unreachable from tests): records each call."""

    def __init__(self, exists=True):
        self.calls, self.exists = [], exists
        self.config_values = {"username": "alice", "key": SENTINEL}

    def get_config_value(self, name):
        return self.config_values.get(name)

    def dataset_status(self, ref):
        self.calls.append(("dataset_status", ref))
        if not self.exists:
            raise type("HTTPError", (Exception,), {"response": SimpleNamespace(status_code=404)})(
                "404"
            )
        return "ready"

    def dataset_create_version(self, folder, **kw):
        self.calls.append(("dataset_create_version", folder, kw))
        return SimpleNamespace(error=None, status="ok", url="https://kaggle/v")

    def dataset_create_new(self, folder, **kw):
        self.calls.append(("dataset_create_new", folder, kw))
        return SimpleNamespace(error=None, status="ok", url="https://kaggle/new")

    def kernels_push(self, folder, **kw):
        self.calls.append(
            ("kernels_push", json.loads((Path(folder) / bk.KERNEL_METADATA).read_text()), kw)
        )
        return SimpleNamespace(
            error=None, url="https://kaggle/k", invalid_dataset_sources=["alice/birdtpu-code"]
        )

    def competition_download_files(self, competition, path, **kw):
        self.calls.append(("competition_download_files", competition))
        with zipfile.ZipFile(Path(path) / f"{competition}.zip", "w") as zf:
            zf.writestr("sample_submission.csv", "row_id\n")

    def competition_submit(self, *args, **kw):
        self.calls.append(("competition_submit", args))
        return SimpleNamespace(message="Successfully submitted")

    def competition_submit_code(self, *args, **kw):
        self.calls.append(("competition_submit_code", args, kw))
        raise ValueError(f"bad key {SENTINEL}")


@pytest.mark.parametrize(
    "exists, call", [(True, "dataset_create_version"), (False, "dataset_create_new")]
)
def test_push_code_versions_an_existing_dataset_or_creates_it(code_dataset, exists, call):
    api = RecordingApi(exists)
    url = bk.push_code(code_dataset, notes="v1", connect=lambda: api)
    assert [c[0] for c in api.calls] == ["dataset_status", call]
    assert api.calls[1][1] == str(code_dataset) and url.startswith("https://kaggle/")


def test_push_kernel_pushes_a_copy_owned_by_the_account(capsys):
    api = RecordingApi()
    bk.push_kernel(
        KERNELS / "birdclef24-infer-cpu", accelerator="NvidiaTeslaT4", connect=lambda: api
    )
    ((_, meta, kw),) = api.calls
    assert meta["id"] == "alice/birdclef24-infer-cpu" and kw == {"acc": "NvidiaTeslaT4"}
    assert "rejected the dataset sources alice/birdtpu-code" in capsys.readouterr().err
    assert json.loads((KERNELS / "birdclef24-infer-cpu" / bk.KERNEL_METADATA).read_text())[
        "id"
    ].startswith("birdtpu/")


def test_download_extracts_and_refuses_a_full_folder(tmp_path):
    api = RecordingApi()
    assert bk.download("birdclef-2024", tmp_path / "d", connect=lambda: api) == 1
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["sample_submission.csv"]
    with pytest.raises(BirdtpuError, match="--force"):
        bk.download("birdclef-2024", tmp_path / "d", connect=lambda: pytest.fail("connected"))


def test_submit_a_file_or_a_kernel_output_and_mask_the_key(tmp_path):
    api = RecordingApi()
    (tmp_path / "submission.csv").write_text("row_id\n")
    assert (
        bk.submit(
            str(tmp_path / "submission.csv"), competition="c", message="m", connect=lambda: api
        )
        == "Successfully submitted"
    )
    with pytest.raises(BirdtpuError) as err:
        bk.submit(
            "submission.csv", competition="c", message="m", kernel="alice/k", connect=lambda: api
        )
    assert SENTINEL not in str(err.value) and "***" in str(err.value)
    assert api.calls[-1][1] == ("submission.csv", "m", "c")
    with pytest.raises(BirdtpuError, match="no such file"):
        bk.submit(
            str(tmp_path / "absent.csv"),
            competition="c",
            message="m",
            connect=lambda: pytest.fail("connected"),
        )


# ---------------------------------------------------------------- the CLI, without credentials


@pytest.mark.parametrize("verb", ["push-code", "push-kernel", "download", "submit"])
@pytest.mark.parametrize("key_only", [False, True])
def test_every_verb_without_credentials_fails_with_one_line(tmp_path, verb, key_only):
    (tmp_path / "submission.csv").write_text("row_id\n")
    args = {
        "push-code": [
            "--id",
            "someone/birdtpu-code",
            "--src",
            str(ROOT),
            "--out",
            str(tmp_path / "code"),
        ],
        "push-kernel": [str(KERNELS / "birdclef24-infer-cpu")],
        "download": ["birdclef-2024", "--path", str(tmp_path / "data")],
        "submit": [str(tmp_path / "submission.csv")],
    }[verb]
    env = offline_env(tmp_path / "home", **({"KAGGLE_KEY": SENTINEL} if key_only else {}))
    proc = birdtpu_cli(["kaggle", verb, *args], env, tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == f"birdtpu kaggle: error: {bk.NO_CREDENTIALS}\n"
    assert proc.stdout == ""
    assert not (tmp_path / "code").exists() and not (tmp_path / "data").exists()


@pytest.mark.parametrize("source", ["environment", "kaggle.json"])
def test_credentials_are_found_without_the_network_and_never_shown(tmp_path, source):
    home = tmp_path / "home"
    extra = {"KAGGLE_USERNAME": "alice", "KAGGLE_KEY": SENTINEL} if source == "environment" else {}
    env = offline_env(home, **extra)
    if source == "kaggle.json":
        (home / "kaggle.json").write_text(json.dumps({"username": "alice", "key": SENTINEL}))
        (home / "kaggle.json").chmod(0o644)  # readable by others: the client warns
    code = "from birdtpu.kaggle import kaggle_api; print(kaggle_api().get_config_value('username'))"
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0 and proc.stdout == "alice\n", proc.stderr
    assert SENTINEL not in proc.stdout + proc.stderr
    assert ("readable by other users" in proc.stderr) == (source == "kaggle.json")


@pytest.mark.parametrize(
    "args, message",
    [
        (["push-kernel", "KERNEL"], "title 'x': expected at least 5 characters"),
        (["submit", "absent.csv"], "absent.csv: no such file to submit"),
        (["push-code", "--build-only"], "--build-only needs --id"),
        (["push-code", "--id", "no-owner"], "expected OWNER/SLUG"),
    ],
)
def test_local_problems_are_reported_before_credentials(tmp_path, args, message):
    kernel = tmp_path / "kernel"
    bk.kernel_for_owner(KERNELS / "birdclef24-infer-cpu", "alice", kernel)
    meta = json.loads((kernel / bk.KERNEL_METADATA).read_text())
    (kernel / bk.KERNEL_METADATA).write_text(json.dumps({**meta, "title": "x"}))
    proc = birdtpu_cli(
        ["kaggle", *[str(kernel) if a == "KERNEL" else a for a in args]],
        offline_env(tmp_path / "home"),
        tmp_path,
    )
    assert proc.returncode == 2 and message in proc.stderr
    assert len(proc.stderr.splitlines()) == 1 and "Traceback" not in proc.stderr


def test_build_only_writes_no_credentials(tmp_path):
    env = offline_env(tmp_path / "home", KAGGLE_USERNAME="alice", KAGGLE_KEY=SENTINEL)
    proc = birdtpu_cli(
        [
            "kaggle",
            "push-code",
            "--build-only",
            "--id",
            "alice/birdtpu-code",
            "--src",
            str(ROOT),
            "--out",
            str(tmp_path / "code"),
        ],
        env,
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "birdtpu-code" in proc.stdout and SENTINEL not in proc.stdout + proc.stderr
    for path in (tmp_path / "code").iterdir():
        data = path.read_bytes()
        contents = (
            [zipfile.ZipFile(path).read(n) for n in zipfile.ZipFile(path).namelist()]
            if path.suffix == ".whl"
            else []
        )
        assert all(SENTINEL.encode() not in blob for blob in [data, *contents]), path


def test_command_module_imports_neither_kaggle_nor_tensorflow(tmp_path):
    code = (
        "import sys, birdtpu.commands.kaggle, birdtpu.kaggle; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('kaggle', 'kagglesdk', 'tensorflow')))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env=offline_env(tmp_path / "home"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stderr


# ---------------------------------------------------------------- the release workflow


def test_release_workflow_pushes_the_code_dataset_on_a_tag():
    flow = yaml.safe_load((ROOT / ".github" / "workflows" / "kaggle-release.yml").read_text())
    trigger = flow.get("on", flow.get(True))  # YAML 1.1 reads the key `on` as true
    assert list(trigger) == ["push"] and trigger["push"]["tags"] == ["v*"]
    (job,) = flow["jobs"].values()
    assert job["env"] == {
        "KAGGLE_USERNAME": "${{ secrets.KAGGLE_USERNAME }}",
        "KAGGLE_KEY": "${{ secrets.KAGGLE_KEY }}",
    }
    runs = "\n".join(step.get("run", "") for step in job["steps"])
    assert "KAGGLE_KEY" not in runs  # the key is read by the kaggle client, never echoed
    (line,) = [ln.strip() for ln in runs.splitlines() if ln.strip().startswith("birdtpu kaggle")]
    argv = shlex.split(
        line.replace("${KAGGLE_USERNAME}", "alice").replace("${GITHUB_REF_NAME}", "v1")
    )
    args = build_parser("kaggle").parse_args(argv[1:])
    assert args.kaggle_verb == "push-code" and args.with_deps and not args.build_only
    assert args.id == f"alice/{bk.CODE_DATASET_SLUG}"
