"""Callbacks of `birdtpu fit`: backup and resume, best checkpoint, early stopping, history
(CSV and PNG, through birdtpu.tracking.Tracker, which also logs to W&B). Every file is written
atomically (temporary name, then rename).

Resuming: `Backup` writes the weights with the optimizer state (so `optimizer.iterations` and the
learning-rate schedule come back) to `ckpt-<global step>.keras`, then `state.json` with the
epoch, the step within it and the state of the callbacks that keep one (`BestCheckpoint`,
`EarlyStop`). `state.json` is the commit point: a kill at any moment leaves the previous backup
whole. It saves at each epoch end and, with `every_steps`, within epochs.

A full disk stops the run with one line (fs.NoSpaceError, naming the file): the temporary file is
removed, the previous checkpoint and backup stay whole, and a rerun resumes from that backup.
"""

from __future__ import annotations

import contextlib
import math
import os
import uuid

import keras

from birdtpu import fs
from birdtpu.errors import BirdtpuError
from birdtpu.fs import join

STATE = "state.json"
NO_SPACE = "free space or choose another output_dir; the last backup is kept, rerun to resume"


@contextlib.contextmanager
def _no_space_hint():
    """Re-raise a NoSpaceError with what a run's user can do about it."""
    try:
        yield
    except fs.NoSpaceError as err:
        raise fs.NoSpaceError(err.path, NO_SPACE) from None


def student_of(model):
    """The model to keep as model.keras: an embedding distiller's student, else `model`."""
    return getattr(model, "student", model)


def save_model_atomic(model, path: str) -> None:
    """`model.save` (a .keras file, with the optimizer state) to a temporary sibling, then rename over
    `path`; on a failure the temporary file is removed (NoSpaceError where the disk is full)."""
    head, tail = os.path.split(path)
    tmp = join(head, f".tmp-{uuid.uuid4().hex[:8]}-{tail}")
    try:
        model.save(tmp)
        fs.rename(tmp, path)
    except BaseException as err:
        fs.discard(tmp)
        if fs.out_of_space(err):
            raise fs.NoSpaceError(path, NO_SPACE) from None
        raise


class Backup(keras.callbacks.Callback):
    """Back up the training state into `backup_dir` at each epoch end and every `every_steps` steps.

    `trackers` maps a name to a callback with `get_state()` / `set_state(dict)`; their states are
    saved with each backup. `resume_at` is the (epoch, step) the run restarted from, so steps are
    counted from there.
    """

    def __init__(
        self,
        backup_dir: str,
        steps_per_epoch: int,
        every_steps: int = 0,
        trackers: dict | None = None,
    ):
        super().__init__()
        self.backup_dir, self.steps_per_epoch, self.every_steps = (
            backup_dir,
            int(steps_per_epoch),
            int(every_steps),
        )
        self.trackers = trackers or {}
        self.resume_at = (0, 0)
        self._epoch_base = 0
        self._last_saved = 0

    def read_state(self, folder: str | None = None) -> dict | None:
        """The last committed backup state (in `folder`, default this run's), or None."""
        path = join(folder or self.backup_dir, STATE)
        return fs.read_json(path) if fs.exists(path) else None

    def restore(self, model, folder: str | None = None) -> dict | None:
        """Load the last backup (in `folder`, default this run's) into `model` (weights and optimizer)
        and the trackers; its state or None."""
        folder = folder or self.backup_dir
        state = self.read_state(folder)
        if state is None:
            return None
        if state["steps_per_epoch"] != self.steps_per_epoch:
            raise BirdtpuError(
                f"{folder}: the backup was made at {state['steps_per_epoch']} steps per epoch, "
                f"this run has {self.steps_per_epoch} (another batch size or replica count); "
                "restore those settings, or delete the folder to start over"
            )
        if model.optimizer is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        model.load_weights(join(folder, state["weights"]))
        for name, tracker in self.trackers.items():
            if name in state.get("trackers", {}):
                tracker.set_state(state["trackers"][name])
        self.resume_at = (state["epoch"], state["step"])
        self._last_saved = state["global_step"]
        return state

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_base = epoch * self.steps_per_epoch + (
            self.resume_at[1] if epoch == self.resume_at[0] else 0
        )

    def on_train_batch_end(self, batch, logs=None):
        step = self._epoch_base + batch + 1
        if (
            self.every_steps
            and step - self._last_saved >= self.every_steps
            and step % self.steps_per_epoch
        ):
            self.save(step)

    def on_epoch_end(self, epoch, logs=None):
        self.save((epoch + 1) * self.steps_per_epoch)

    def save(self, global_step: int) -> None:
        """Write the weights, then commit `state.json`, then drop older checkpoints."""
        fs.makedirs(self.backup_dir)
        # a .keras file (its weights and optimizer state are what .weights.h5 holds): Keras builds it in
        # memory and writes it as one file object, where h5py writing to a full disk leaves a file
        # it cannot close (noise, then a crash at exit)
        name = f"ckpt-{global_step:09d}.keras"
        with _no_space_hint():
            try:
                save_model_atomic(self.model, join(self.backup_dir, name))
                fs.write_json(
                    join(self.backup_dir, STATE),
                    {
                        "epoch": global_step // self.steps_per_epoch,
                        "step": global_step % self.steps_per_epoch,
                        "global_step": global_step,
                        "steps_per_epoch": self.steps_per_epoch,
                        "weights": name,
                        "trackers": {k: t.get_state() for k, t in self.trackers.items()},
                    },
                )
            except (
                fs.NoSpaceError
            ):  # state.json still names the previous checkpoint: drop the new one
                if name != (self.read_state() or {}).get("weights"):
                    fs.discard(join(self.backup_dir, name))
                raise
        for old in fs.listdir(self.backup_dir):
            if old != name and (old.startswith("ckpt-") or old.startswith(".tmp-")):
                fs.remove(join(self.backup_dir, old))
        self._last_saved = global_step

    def clear(self) -> None:
        """Delete the backup (the run has finished)."""
        if fs.exists(self.backup_dir):
            fs.rmtree(self.backup_dir)


def _better(mode: str, value, best) -> bool:
    if value is None or math.isnan(value):
        return False
    return best is None or (value < best if mode == "min" else value > best)


def monitor_mode(monitor: str) -> str:
    """'min' for losses, 'max' for scores."""
    return "min" if monitor.endswith("loss") else "max"


def _value(logs, monitor: str):
    if monitor not in (logs or {}):
        raise BirdtpuError(
            f"train.monitor: {monitor!r} is not among the logged metrics "
            f"({', '.join(sorted(logs or {}))})"
        )
    return float(logs[monitor])


class BestCheckpoint(keras.callbacks.Callback):
    """Save the model (`.keras`; a distiller's student) whenever `monitor` improves, or equals the best with a lower
    `val_loss` (a tie, as a constant or perfect AUC gives, goes to the lower loss, not the first
    epoch); `best_epoch`, `best` and `best_loss` follow."""

    TIE_BREAK = "val_loss"

    def __init__(self, path: str, monitor: str = "val_auc"):
        super().__init__()
        self.path, self.monitor, self.mode = path, monitor, monitor_mode(monitor)
        self.best, self.best_epoch, self.best_loss = None, None, None

    def on_epoch_end(self, epoch, logs=None):
        value = _value(logs, self.monitor)
        loss = (logs or {}).get(self.TIE_BREAK)
        loss = None if loss is None else float(loss)
        tie = value == self.best and _better("min", loss, self.best_loss)
        if _better(self.mode, value, self.best) or tie:
            save_model_atomic(student_of(self.model), self.path)
            self.best, self.best_epoch, self.best_loss = value, epoch, loss

    def get_state(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch, "best_loss": self.best_loss}

    def set_state(self, state: dict) -> None:
        self.best, self.best_epoch = state["best"], state["best_epoch"]
        self.best_loss = state.get("best_loss")  # absent from backups made before the tie rule


class EarlyStop(keras.callbacks.Callback):
    """Stop when `monitor` has not improved for `patience` epochs (its state survives a resume)."""

    def __init__(self, monitor: str = "val_auc", patience: int = 5):
        super().__init__()
        self.monitor, self.mode, self.patience = monitor, monitor_mode(monitor), int(patience)
        self.best, self.wait, self.stopped_epoch = None, 0, None

    def on_epoch_end(self, epoch, logs=None):
        value = _value(logs, self.monitor)
        if _better(self.mode, value, self.best):
            self.best, self.wait = value, 0
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def get_state(self) -> dict:
        return {"best": self.best, "wait": self.wait, "stopped_epoch": self.stopped_epoch}

    def set_state(self, state: dict) -> None:
        self.best, self.wait, self.stopped_epoch = (
            state["best"],
            state["wait"],
            state["stopped_epoch"],
        )


def current_lr(model) -> float:
    """The optimizer's learning rate at its current step."""
    return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))


class HistoryWriter(keras.callbacks.Callback):
    """Each epoch's lr and logged metrics to the run's Tracker (history.csv, and W&B where on), then
    history.png. A resumed run rewrites the rows from its first epoch on (Tracker.log_metrics)."""

    def __init__(self, tracker, png_path: str | None = None):
        super().__init__()
        self.tracker, self.png_path = tracker, png_path

    def on_epoch_end(self, epoch, logs=None):
        with _no_space_hint():
            self.tracker.log_metrics(
                {
                    "epoch": epoch,
                    "lr": current_lr(self.model),
                    **{k: float(v) for k, v in (logs or {}).items()},
                }
            )
            if self.png_path:
                from birdtpu.plots import history_figure, save_png

                save_png(history_figure(self.tracker.rows), self.png_path)


def make_callbacks(cfg, run_dir: str, steps_per_epoch: int, tracker) -> dict:
    """The callbacks of a run by role: backup, best, early (or None), history (to `tracker`)."""
    monitor = cfg.train.monitor
    best = BestCheckpoint(join(run_dir, "model.keras"), monitor)
    early = EarlyStop(monitor, cfg.train.early_stopping) if cfg.train.early_stopping else None
    trackers = {"best": best, **({"early": early} if early else {})}
    backup = Backup(join(run_dir, "backup"), steps_per_epoch, cfg.train.backup_steps, trackers)
    return {
        "best": best,
        "early": early,
        "backup": backup,
        "history": HistoryWriter(tracker, join(run_dir, "history.png")),
    }


def ordered(callbacks: dict) -> list:
    """The callbacks in the order they must run at an epoch end: the soundscape validation
    first (it adds to the logs the others read), the backup last, after every file and state it
    records is written."""
    order = ("soundscape", "best", "early", "history", "backup")
    return [callbacks[k] for k in order if callbacks.get(k) is not None]
