"""`Tracker`: a run's metrics, plots and tables to the local run folder and (unless disabled) W&B;
the W&B API key."""

from __future__ import annotations

import io
import netrc
import os
import uuid
from urllib.parse import urlparse

import numpy as np
import pandas as pd
from PIL import Image

from birdtpu import fs
from birdtpu.config import to_dict
from birdtpu.errors import BirdtpuError
from birdtpu.fs import join
from birdtpu.tracking.card import write_model_card
from birdtpu.tracking.cells import save_cell, wandb_cell
from birdtpu.tracking.clips import worst_clips_table

KEY_NAME = "WANDB_API_KEY"


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

            self.run.log({name: wandb.Image(Image.open(io.BytesIO(data)), caption=name)})
        return local

    def log_table(self, name: str, df) -> str:
        """A DataFrame whose cells may be `AudioClip`s and `Picture`s: `tables/<name>.csv` (media
        as files in `tables/<name>/`, named by the CSV) and a W&B table."""
        folder = join(self.run_dir, "tables", name)
        out = df.copy()
        for column in df.columns:
            out[column] = [
                save_cell(v, folder, f"{i:04d}-{column}") for i, v in enumerate(df[column])
            ]
        path = join(self.run_dir, "tables", f"{name}.csv")
        fs.atomic_write_text(path, out.to_csv(index=False))
        if self.run is not None:
            import wandb

            rows = [[wandb_cell(v, wandb) for v in row] for row in df.itertuples(index=False)]
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
    return pd.read_csv(io.StringIO(fs.read_text(path)))
