"""The Markdown model card of a run: data, recipe, metrics, versions, how to load."""

from __future__ import annotations

import platform
from datetime import datetime, timezone

from birdtpu import __version__, fs, package_version
from birdtpu.data.catalog import read_table
from birdtpu.fs import join


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
