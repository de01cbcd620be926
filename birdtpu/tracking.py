"""Experiment tracking: one interface over W&B (online, offline, disabled) and the local run folder.

`Tracker(cfg, run_dir)` is the only place in birdtpu that talks to wandb:

| call                      | local run folder                                  | W&B (online / offline)          |
|---------------------------|---------------------------------------------------|---------------------------------|
| `log_metrics(row)`        | a row of `history.csv` (a row at an epoch or step | `run.log(row)`                  |
|                           | replaces that one and the ones after it: resume)  |                                 |
| `log_image(name, png)`    | `plots/<name>.png`                                | `wandb.Image`                   |
| `log_table(name, df)`     | `tables/<name>.csv`, audio as WAV and images as   | `wandb.Table` with `wandb.Audio`|
|                           | PNG in `tables/<name>/`                           | and `wandb.Image` cells         |
| `finish(scores, model)`   | `model_card.md`                                   | summary, model artifact, finish |

With `tracking.wandb: disabled` wandb is never imported and nothing but the local files above
is written. Offline runs go to `<run_dir>/wandb/` (`wandb sync` uploads them later); the run id
is kept in `<run_dir>/wandb_id.txt` so a resumed online run continues the same W&B run. The
API key comes from `WANDB_API_KEY`, a Kaggle secret of that name, or `wandb login`; it is
passed to wandb in memory only, and never logged or written by birdtpu (nor is it in the
logged config).
"""

from __future__ import annotations

import io
import netrc
import os
import platform
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from urllib.parse import urlparse

import numpy as np

from birdtpu import __version__, fs, package_version
from birdtpu.config import to_dict
from birdtpu.errors import BirdtpuError
from birdtpu.fs import join

KEY_NAME = "WANDB_API_KEY"


@dataclass(frozen=True)
class AudioClip:
    """A table cell that plays: mono float samples in [-1, 1] at `sample_rate`."""

    data: np.ndarray
    sample_rate: int
    caption: str = ""


@dataclass(frozen=True)
class Picture:
    """A table cell that shows an image: (h, w) or (h, w, 3) array (uint8, or float in [0, 1])."""

    data: np.ndarray
    caption: str = ""


# ------------------------------------------------------------------ the key


def wandb_key() -> str | None:
    """The W&B API key from the environment, else from Kaggle secrets (only where
    `kaggle_secrets` imports, i.e. in a Kaggle kernel), else None (wandb may still find a
    `wandb login`)."""
    key = os.environ.get(KEY_NAME, "").strip()
    if key:
        return key
    try:
        from kaggle_secrets import UserSecretsClient
    except ImportError:
        return None
    try:
        return (UserSecretsClient().get_secret(KEY_NAME) or "").strip() or None
    except Exception:  # no such secret, or secrets not attached to the kernel
        return None


def _netrc_has_key() -> bool:
    """Whether a `wandb login` left a key in ~/.netrc (or $NETRC) for the W&B host."""
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    path = os.environ.get("NETRC", os.path.expanduser("~/.netrc"))
    try:
        entry = netrc.netrc(path).authenticators(host) if os.path.exists(path) else None
    except (netrc.NetrcParseError, OSError):
        return False
    return bool(entry and entry[2])


# ------------------------------------------------------------------ the tracker


class Tracker:
    """Metrics, plots and tables of one run, to the local run folder and (unless disabled) W&B.

    `history` names the CSV that `log_metrics` keeps in the run folder.
    """

    def __init__(self, cfg, run_dir: str, log=print, history: str = "history.csv"):
        self.cfg, self.run_dir, self.log = cfg, run_dir, log
        self.mode = cfg.tracking.wandb
        self.history_path = join(run_dir, history)
        self.rows: list[dict] | None = None  # read on the first log_metrics
        self.run = None if self.mode == "disabled" else self._start()

    def _start(self):
        import wandb

        key = wandb_key()
        if self.mode == "online" and not key and not _netrc_has_key():
            raise BirdtpuError(
                f"tracking.wandb online: no W&B API key; set {KEY_NAME} (or a Kaggle secret of "
                "that name), run `wandb login`, or use tracking.wandb: offline"
            )
        fs.makedirs(self.run_dir)
        id_path = join(self.run_dir, "wandb_id.txt")
        run_id = fs.read_text(id_path).strip() if fs.exists(id_path) else uuid.uuid4().hex[:8]
        fs.atomic_write_text(id_path, run_id + "\n")
        tracking = self.cfg.tracking
        settings = wandb.Settings(silent=True, **({"api_key": key} if key else {}))
        try:
            run = wandb.init(
                project=tracking.project,
                entity=tracking.entity or None,
                name=self.cfg.name,
                id=run_id,
                resume="allow" if self.mode == "online" else None,
                dir=self.run_dir,
                mode=self.mode,
                config=to_dict(self.cfg),
                settings=settings,
            )
        except Exception as err:  # no network, a bad key: one line, never the key
            text = str(err).splitlines()[0][:160] if str(err) else ""
            text = text.replace(key, "<redacted>") if key else text
            raise BirdtpuError(
                f"tracking.wandb: could not start a W&B {self.mode} run ({type(err).__name__}: "
                f"{text}); check {KEY_NAME} or use tracking.wandb: offline"
            ) from None
        self.log(
            f"tracking: W&B {self.mode} run {run_id}"
            + (f" in {run.dir}" if self.mode == "offline" else "")
        )
        return run

    # -------------------------------------------------------------- logging

    def log_metrics(self, metrics: dict) -> None:
        """One row (an `epoch` or `step` with its metrics) to history.csv and W&B."""
        import pandas as pd

        row = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in metrics.items()}
        if self.rows is None:
            self.rows = (
                _read_csv(self.history_path).to_dict("records")
                if fs.exists(self.history_path)
                else []
            )
        key = next((k for k in ("epoch", "step") if k in row), None)
        if key is not None:
            self.rows = [r for r in self.rows if not r.get(key, float("-inf")) >= row[key]]
        self.rows.append(row)
        fs.atomic_write_text(self.history_path, pd.DataFrame(self.rows).to_csv(index=False))
        if self.run is not None:
            self.run.log(row)

    @property
    def uses_wandb(self) -> bool:
        """Whether a W&B run (online or offline) receives what is logged."""
        return self.run is not None

    def log_image(self, name: str, png_path: str) -> str:
        """A PNG as `plots/<name>.png` in the run folder (copied unless it is that file) and to W&B."""
        local = join(self.run_dir, "plots", f"{name}.png")
        data = fs.read_bytes(png_path)
        if png_path != local:
            fs.atomic_write_bytes(local, data)
        if self.run is not None:
            import wandb
            from PIL import Image

            self.run.log({name: wandb.Image(Image.open(io.BytesIO(data)), caption=name)})
        return local

    def log_table(self, name: str, df) -> str:
        """A DataFrame whose cells may be `AudioClip`s and `Picture`s: `tables/<name>.csv` (media
        as files in `tables/<name>/`, named by the CSV) and a W&B table."""
        folder = join(self.run_dir, "tables", name)
        out = df.copy()
        for column in df.columns:
            out[column] = [
                _save_cell(v, folder, f"{i:04d}-{column}") for i, v in enumerate(df[column])
            ]
        path = join(self.run_dir, "tables", f"{name}.csv")
        fs.atomic_write_text(path, out.to_csv(index=False))
        if self.run is not None:
            import wandb

            rows = [[_wandb_cell(v, wandb) for v in row] for row in df.itertuples(index=False)]
            self.run.log({name: wandb.Table(columns=[str(c) for c in df.columns], data=rows)})
        return path

    def log_worst_clips(self, oof, truth, audio, k: int = 16, name: str = "worst_clips") -> str:
        """`worst_clips_table` of the validation predictions, logged with `log_table`."""
        return self.log_table(name, worst_clips_table(oof, truth, audio, k))

    def finish(self, scores: dict | None = None, model_path: str | None = None) -> str:
        """Write `model_card.md`; on W&B set the summary, upload `model_path` as an artifact (where
        `tracking.log_model`) and close the run. Returns the model card's path."""
        card = write_model_card(self.cfg, self.run_dir, scores)
        if self.run is not None:
            import wandb

            if scores:
                self.run.summary.update(scores)
            if model_path and self.cfg.tracking.log_model:
                artifact = wandb.Artifact(
                    f"{self.run.id}-model", type="model", metadata=scores or {}
                )
                artifact.add_file(model_path)
                artifact.add_file(card)
                self.run.log_artifact(artifact)
            self.run.finish()
            self.run = None
        return card


def _read_csv(path: str):
    import pandas as pd

    return pd.read_csv(io.StringIO(fs.read_text(path)))


def _save_cell(value, folder: str, stem: str):
    """A table cell as the local CSV holds it: media written as files, named by their path."""
    if isinstance(value, AudioClip):
        import soundfile as sf

        buf = io.BytesIO()
        sf.write(
            buf,
            np.clip(np.asarray(value.data, np.float32), -1, 1),
            value.sample_rate,
            format="WAV",
            subtype="PCM_16",
        )
        path = join(folder, f"{stem}.wav")
        fs.atomic_write_bytes(path, buf.getvalue())
        return path if fs.is_remote(path) else os.path.relpath(path, os.path.dirname(folder))
    if isinstance(value, Picture):
        from matplotlib.image import imsave

        buf = io.BytesIO()
        imsave(buf, np.asarray(value.data), format="png", cmap="magma", origin="upper")
        path = join(folder, f"{stem}.png")
        fs.atomic_write_bytes(path, buf.getvalue())
        return path if fs.is_remote(path) else os.path.relpath(path, os.path.dirname(folder))
    return value


def _wandb_cell(value, wandb):
    if isinstance(value, AudioClip):
        return wandb.Audio(
            np.asarray(value.data, np.float32),
            sample_rate=value.sample_rate,
            caption=value.caption or None,
        )
    if isinstance(value, Picture):
        return wandb.Image(np.asarray(value.data), caption=value.caption or None)
    return value


# ------------------------------------------------------------------ worst clips


def worst_clips_table(
    oof,
    truth,
    audio: Mapping | Callable | None,
    k: int = 16,
    top: int = 3,
    spectrogram: Callable | None = None,
):
    """The `k` validation clips with the highest binary cross-entropy (mean over classes), worst first.

    `oof` and `truth` are tables of `row_id` + one column per class (fit's oof_fold<k>.csv and
    truth_fold<k>.csv). `audio` gives a clip's (wave, sample_rate) by row id: a mapping, a
    callable, or None. Columns: row_id, bce, truth (true classes), top_predictions (`top` best,
    with scores), true_score (mean score of the true classes), audio (`AudioClip`) and
    spectrogram (`Picture`, default `birdtpu.plots.spectrogram_rgb`); None where a clip's audio
    is not at hand.
    """
    import pandas as pd

    from birdtpu.metrics import align_tables
    from birdtpu.plots import spectrogram_rgb

    y, p, classes = align_tables(truth, oof, ("truth", "oof"))
    ids = truth["row_id"].astype(str).to_numpy()
    q = np.clip(p, 1e-7, 1 - 1e-7)
    bce = -(y * np.log(q) + (1 - y) * np.log(1 - q)).mean(axis=1)
    true_score = np.where(y.sum(1) > 0, (p * y).sum(1) / np.maximum(y.sum(1), 1), np.nan)
    rows = []
    for i in np.argsort(-bce, kind="stable")[:k]:
        found = (
            audio.get(ids[i]) if isinstance(audio, Mapping) else audio(ids[i]) if audio else None
        )
        best = np.argsort(-p[i], kind="stable")[:top]
        truth_names = [classes[j] for j in np.flatnonzero(y[i])]
        clip = image = None
        if found is not None:
            wave, rate = found
            clip = AudioClip(np.asarray(wave, np.float32), int(rate), ids[i])
            image = Picture((spectrogram or spectrogram_rgb)(wave, rate), ids[i])
        rows.append(
            {
                "row_id": ids[i],
                "bce": float(bce[i]),
                "truth": " ".join(truth_names),
                "top_predictions": ", ".join(f"{classes[j]} {p[i, j]:.3f}" for j in best),
                "true_score": float(true_score[i]),
                "audio": clip,
                "spectrogram": image,
            }
        )
    return pd.DataFrame(
        rows,
        columns=["row_id", "bce", "truth", "top_predictions", "true_score", "audio", "spectrogram"],
    )


def shard_audio(paths: list[str], ids, compression: str = "") -> dict[str, tuple[np.ndarray, int]]:
    """{id: (wave, sample_rate)} of the records of shard `paths` whose id is in `ids` (the audio
    the model scored, e.g. the validation fold's shards)."""
    import tensorflow as tf

    wanted = set(map(str, ids))
    spec = {
        "audio": tf.io.FixedLenFeature([], tf.string),
        "id": tf.io.FixedLenFeature([], tf.string),
        "sample_rate": tf.io.FixedLenFeature([], tf.int64),
    }
    found = {}
    for record in tf.data.TFRecordDataset(list(paths), compression or None):
        ex = tf.io.parse_single_example(record, spec)
        clip_id = ex["id"].numpy().decode()
        if clip_id in wanted and clip_id not in found:
            wave = np.frombuffer(ex["audio"].numpy(), "<i2").astype(np.float32) / 32767.0
            found[clip_id] = (wave, int(ex["sample_rate"]))
            if len(found) == len(wanted):
                break
    return found


# ------------------------------------------------------------------ model card


def _table(rows) -> list[str]:
    return ["| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)]


def _data_lines(cfg) -> list[str]:
    d = cfg.data
    own = f" (`{d.metadata}`)" if d.format == "birdclef" else ""
    lines = [
        f"- source: table `{d.table}`"
        if d.table
        else f"- source: `{d.format}` metadata at `{d.root}`{own}"
    ]
    if d.table and fs.exists(d.table):
        from birdtpu.data.catalog import read_table

        per_source = read_table(d.table)["source"].value_counts()
        lines.append("- rows per source: " + ", ".join(f"{s} {n}" for s, n in per_source.items()))
    manifest_path = join(cfg.shard_dir, "manifest.json")
    if not fs.exists(manifest_path):
        return lines + [f"- shards: `{cfg.shard_dir}` (no manifest)"]
    m = fs.read_json(manifest_path)
    classes = m["classes"]
    lines += [
        f"- classes: {len(classes)} ({', '.join(classes[:12])}{', ...' if len(classes) > 12 else ''}; "
        "all in model.json)",
        f"- shards: `{cfg.shard_dir}`: {m['examples']} clips of {m['recordings']} recordings in "
        f"{len(m['shards'])} shards, {m['total_seconds'] / 3600:.2f} h of audio at {m['sample_rate']} Hz, "
        f"{len(m['skipped'])} recordings skipped",
        "",
        "| fold | clips | |",
        "|---|---|---|",
    ]
    for fold, n in sorted(m["per_fold"].items(), key=lambda kv: int(kv[0])):
        role = (
            "validation" if int(fold) == d.fold else "train-only" if int(fold) < 0 else "training"
        )
        lines.append(f"| {fold} | {n} | {role} |")
    return lines


def _recipe_rows(cfg) -> list[tuple[str, object]]:
    f, a, m, t = cfg.frontend, cfg.augment, cfg.model, cfg.train
    return [
        ("model", f"{m.name}, {m.head} head, {m.activation}, pretrained {m.pretrained}"),
        ("audio", f"{cfg.data.sample_rate} Hz, {f.clip_seconds} s clips"),
        (
            "frontend",
            f"{f.n_mels} mels x {f.frames} frames, n_fft {f.n_fft}, {f.fmin:g}-{f.fmax:g} Hz, "
            f"{f.normalize}",
        ),
        (
            "augment",
            f"mixup {a.mixup_prob}, cutmix {a.cutmix_prob}, noise {a.noise_prob}, "
            f"masks freq {a.freq_mask_prob} / time {a.time_mask_prob}",
        ),
        (
            "training",
            f"{t.epochs} epochs, batch {t.batch_size} per replica, lr {t.lr:g} {t.schedule} "
            f"({t.warmup_epochs} warm-up), {t.optimizer}, loss {t.loss}",
        ),
        ("validation fold", f"{cfg.data.fold} of {cfg.data.num_folds} ({cfg.data.fold_method})"),
        (
            "runtime",
            f"{cfg.runtime.device}, precision {cfg.runtime.precision}, seed {cfg.runtime.seed}",
        ),
    ]


def model_card(cfg, run_dir: str, scores: dict | None = None) -> str:
    """The Markdown model card of a run: data, recipe, metrics, versions, how to load."""
    metrics_path = join(run_dir, "metrics.json")
    metrics = scores or (fs.read_json(metrics_path) if fs.exists(metrics_path) else {})
    model = join(run_dir, "model.keras")
    lines = [
        f"# {cfg.name}",
        "",
        f"A bird-call classifier trained with birdtpu {__version__} "
        f"({datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}). "
        "The resolved recipe is `config.yaml` beside this card.",
        "",
        "## Data",
        "",
        *_data_lines(cfg),
        "",
        "## Recipe",
        "",
        *_table(_recipe_rows(cfg)),
        "",
        "## Metrics",
        "",
    ]
    if metrics:
        lines += _table((k, f"{v:.4f}" if isinstance(v, float) else v) for k, v in metrics.items())
    else:
        lines.append("(no metrics.json yet)")
    lines += [
        "",
        "## Versions",
        "",
        *_table(
            [
                ("birdtpu", __version__),
                ("tensorflow", package_version("tensorflow")),
                ("keras", package_version("keras")),
                ("kapre", package_version("kapre")),
                ("python", platform.python_version()),
            ]
        ),
        "",
        "## How to load",
        "",
        "```python",
        "from birdtpu.infer.runners import load_model",
        "",
        f"model, meta = load_model({model!r})  # meta: classes, sample_rate, clip_seconds",
        "# waves: float32 (batch, clip_seconds * sample_rate) in [-1, 1] -> (batch, classes)",
        "probabilities = model(waves, training=False)",
        "```",
        "",
        f"Or predict soundscapes: `birdtpu predict --cfg {join(run_dir, 'config.yaml')}`.",
        "",
    ]
    return "\n".join(lines)


def write_model_card(cfg, run_dir: str, scores: dict | None = None) -> str:
    """`model_card.md` in `run_dir` (atomically); returns its path."""
    path = join(run_dir, "model_card.md")
    fs.atomic_write_text(path, model_card(cfg, run_dir, scores))
    return path
