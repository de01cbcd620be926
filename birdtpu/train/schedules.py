"""Learning-rate schedules per optimizer step: a linear warm-up, then cosine, step, exponential
or constant, floored at `min_lr_ratio` of the peak.

The peak is `train.lr`, or with `train.lr_scale: global_batch` the awsaf49 rule
`lr x global batch` (BirdCLEF notebooks: 1.4e-6 x global batch). The schedule is a serializable
`LearningRateSchedule` of Keras ops, so it runs inside the compiled (XLA, TPU) train step and
follows `optimizer.iterations`, which a restored backup brings back.
"""

from __future__ import annotations

import math

import keras
from keras import ops

from birdtpu.saving import register

KINDS = ("cosine", "step", "exponential", "constant")


@register
class WarmupDecay(keras.optimizers.schedules.LearningRateSchedule):
    """lr(step): from `floor * peak` linearly up to `peak` over `warmup_steps`, then by `kind`:

    - cosine: `floor + (peak - floor) * (1 + cos(pi * t / (total_steps - warmup_steps))) / 2`
    - step: `peak * decay ** floor(t / decay_steps)`
    - exponential: `peak * decay ** (t / decay_steps)`
    - constant: `peak`

    where t = step - warmup_steps and the floor `min_ratio * peak` bounds every kind from below.
    """

    def __init__(
        self,
        peak: float,
        total_steps: int,
        warmup_steps: int = 0,
        kind: str = "cosine",
        min_ratio: float = 0.01,
        decay: float = 0.5,
        decay_steps: int = 1,
    ):
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
        self.peak, self.total_steps, self.warmup_steps = (
            float(peak),
            int(total_steps),
            int(warmup_steps),
        )
        self.kind, self.min_ratio, self.decay, self.decay_steps = (
            kind,
            float(min_ratio),
            float(decay),
            int(decay_steps),
        )

    def __call__(self, step):
        step = ops.cast(step, "float32")
        low = self.peak * self.min_ratio
        warm = low + (self.peak - low) * step / max(self.warmup_steps, 1)
        t = ops.maximum(step - self.warmup_steps, 0.0)
        if self.kind == "cosine":
            frac = ops.minimum(t / max(self.total_steps - self.warmup_steps, 1), 1.0)
            after = low + (self.peak - low) * 0.5 * (1.0 + ops.cos(math.pi * frac))
        elif self.kind == "step":
            after = self.peak * ops.power(self.decay, ops.floor(t / self.decay_steps))
        elif self.kind == "exponential":
            after = self.peak * ops.power(self.decay, t / self.decay_steps)
        else:
            after = ops.ones_like(t) * self.peak
        return ops.where(step < self.warmup_steps, warm, ops.maximum(after, low))

    def get_config(self):
        return {
            "peak": self.peak,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "kind": self.kind,
            "min_ratio": self.min_ratio,
            "decay": self.decay,
            "decay_steps": self.decay_steps,
        }


def peak_lr(train_cfg, global_batch: int) -> float:
    """`train.lr`, times the global batch under `train.lr_scale: global_batch`."""
    return train_cfg.lr * global_batch if train_cfg.lr_scale == "global_batch" else train_cfg.lr


def make_schedule(train_cfg, steps_per_epoch: int, global_batch: int, log=None) -> WarmupDecay:
    """The schedule of a TrainConfig for `steps_per_epoch` steps of `global_batch` clips."""
    total = max(1, train_cfg.epochs * steps_per_epoch)
    warmup = train_cfg.warmup_epochs * steps_per_epoch
    if warmup >= total:
        warmup = total - 1
        if log:
            log(
                f"fit: train.warmup_epochs {train_cfg.warmup_epochs} is not below train.epochs "
                f"{train_cfg.epochs}: warm-up shortened to {warmup} steps"
            )
    decay_steps = steps_per_epoch * (
        train_cfg.lr_step_epochs if train_cfg.schedule == "step" else 1
    )
    return WarmupDecay(
        peak_lr(train_cfg, global_batch),
        total,
        warmup,
        train_cfg.schedule,
        train_cfg.min_lr_ratio,
        train_cfg.lr_decay,
        max(1, decay_steps),
    )
