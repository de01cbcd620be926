"""Batch mixing as batched ops: MixUp and CutMix with one lambda per example, and their targets.

Written once against `birdtpu.layers.xp`, as the waveform functions (`birdtpu.layers.wave_ops`):
they run in a `tf.data` map under any Keras backend and in a model under XLA; x is a batch of
waveforms (batch, samples) or spectrograms (batch, mels, frames, channels), or a dict of a
"waveform" batch and clip-level inputs (the Freesound 2019 global features), which mix as the
targets do, by each part's share.
"""

from __future__ import annotations

from birdtpu.layers.xp import batch_size, beta, coin, column, namespace, partners

LABEL_MODES = ("weight", "max")


def time_axis(x) -> int:
    """The time axis of a batch: 1 for waveforms (batch, samples), 2 for (batch, mels, frames, ch)."""
    return 1 if len(x.shape) == 2 else 2


def mix_targets(y, y_other, lam, on, labels: str = "weight"):
    """Targets of mixed examples: `weight` lam * y + (1 - lam) * y_other, `max` their maximum."""
    xp = namespace(y)
    if labels == "max":
        return xp.where(xp.expand_dims(on, -1), xp.maximum(y, y_other), y)
    lam = column(xp, lam, y)
    return lam * y + (1.0 - lam) * y_other


def mix_weights(w, w_other, lam):
    """Sample weights of mixed examples, per clip (batch,) or per class (batch, classes, the target
    masks): lam * w + (1 - lam) * w_other, so a class weighs what it weighed in each part by that
    part's share (unmixed examples keep theirs)."""
    lam = column(namespace(w), lam, w)
    return lam * w + (1.0 - lam) * w_other


def _with_inputs(inputs, wave, other, lam):
    """`wave` back in the input dict `inputs` (if one), its other entries mixed with those of
    the `other` examples by `lam` (`mix_weights`)."""
    if not isinstance(inputs, dict):
        return wave
    xp = namespace(wave)
    mixed = {k: mix_weights(v, xp.take(v, other, axis=0), lam) for k, v in inputs.items()}
    return {**mixed, "waveform": wave}


def mixup(x, y, seed, prob: float, alpha: float, labels: str = "weight", w=None):
    """MixUp with one lambda per example: with probability `prob`, an example becomes
    lam * itself + (1 - lam) * a random partner, lam ~ Beta(alpha, alpha) folded to >= 0.5.

    With target masks `w` (batch, classes) returns (x, y, w), the masks mixed by `mix_weights`."""
    inputs, x = x, x["waveform"] if isinstance(x, dict) else x
    xp = namespace(x)
    s, b = xp.split(seed, 3), batch_size(xp, x)
    lam = beta(s[0], [b], alpha, xp)
    on = coin(xp, s[1], b, prob)
    lam = xp.where(on, xp.maximum(lam, 1.0 - lam), 1.0)
    other = partners(s[2], b, xp)
    share = column(xp, lam, x)
    x = _with_inputs(inputs, share * x + (1.0 - share) * xp.take(x, other, axis=0), other, lam)
    y = mix_targets(y, xp.take(y, other, axis=0), lam, on, labels)
    return (x, y) if w is None else (x, y, mix_weights(w, xp.take(w, other, axis=0), lam))


def cutmix(
    x, y, seed, prob: float, alpha: float, labels: str = "weight", axis: int | None = None, w=None
):
    """CutMix along time, one lambda per example: with probability `prob`, a segment of
    (1 - lam) of the clip, lam ~ Beta(alpha, alpha), comes from a random partner (same span).

    `axis` defaults to the time axis (`time_axis`); targets (and target masks `w`, as in `mixup`)
    mix by the share actually pasted, as do clip inputs.
    """
    inputs, x = x, x["waveform"] if isinstance(x, dict) else x
    xp = namespace(x)
    axis = time_axis(x) if axis is None else axis
    n = x.shape[axis]
    s, b = xp.split(seed, 4), batch_size(xp, x)
    width = xp.round((1.0 - beta(s[0], [b], alpha, xp)) * n)
    start = xp.floor(xp.uniform(s[1], [b]) * (n - width + 1.0))
    on = coin(xp, s[2], b, prob) & (width > 0)
    pos = xp.expand_dims(xp.arange(n, dtype="float32"), 0)
    end = xp.expand_dims(start + width, -1)
    inside = (pos >= xp.expand_dims(start, -1)) & (pos < end) & xp.expand_dims(on, -1)
    kept = 1.0 - xp.mean(xp.cast(inside, "float32"), axis=1)
    shape = [-1] + [1] * (len(x.shape) - 1)
    shape[axis] = n
    other = partners(s[3], b, xp)
    x = xp.where(xp.reshape(inside, shape), xp.take(x, other, axis=0), x)
    x = _with_inputs(inputs, x, other, kept)
    y = mix_targets(y, xp.take(y, other, axis=0), kept, on, labels)
    return (x, y) if w is None else (x, y, mix_weights(w, xp.take(w, other, axis=0), kept))
