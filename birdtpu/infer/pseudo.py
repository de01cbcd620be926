"""Pseudo-labels (noisy student): unlabelled soundscapes predicted by trained runs, written as
TFRecord shards of their windows with soft targets and a manifest with their provenance.

Each soundscape is predicted as `birdtpu predict` does (`predict_recordings`: the same windows,
`infer.tta_shifts`, blend of the runs or `infer.stacker`, `infer.smooth`; one row per window),
its probabilities transformed (`transform`), and each window written as a record: its int16
PCM at `data.sample_rate` (cut by `windows.windows`, the last one zero-padded), `target` the soft
probabilities, `label` the top class, `id` the window's row id, `source` "pseudo", `fold` -1
(trained on in every fold, never validated), `positive` 1, `offset` the window's start second.

Shards `pseudo-<nnnnn>.tfrec` of `pseudo.files_per_shard` soundscapes each (sorted by name) go to
`<pseudo.output_dir or run dir/pseudo>/round-<k>/`. A shard is written under a temporary name and
renamed, then its sidecar (`.tfrec.json`) with the fingerprint of its inputs (soundscape names
and sizes, the models' bytes, the transform, the prediction and record settings); a rerun keeps
each shard whose sidecar matches and writes only the rest. Same inputs: byte-identical shards
and manifest. Soundscapes that cannot be decoded are skipped, named and counted.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os

import numpy as np

from birdtpu import fs, rowid
from birdtpu.data.audio import AUDIO_EXTENSIONS, AudioError
from birdtpu.data.shards.manifest import MANIFEST, SCHEMA_VERSION
from birdtpu.data.shards.records import serialize_example, to_pcm16
from birdtpu.data.shards.write import finished_entries, remove_temporaries, shard_writer
from birdtpu.errors import ConfigError, DataError
from birdtpu.fs import join
from birdtpu.infer import postprocess
from birdtpu.infer.files import model_format, read_meta
from birdtpu.infer.predict import model_paths, predict_recordings
from birdtpu.infer.recordings import decode, list_recordings
from birdtpu.infer.runners import open_model
from birdtpu.infer.windows import windows

SOURCE = "pseudo"
FOLD = -1
NO_SPACE = (
    "free space or choose another pseudo.output_dir; finished shards are kept, rerun to resume"
)


def transform(probs, power: float = 1.0, floor: float = 0.0, top_k: int = 0) -> np.ndarray:
    """Soft targets of (windows, classes) probabilities: p ** power, values below `floor` (after
    the power) set to 0, and with `top_k` > 0 only each row's k largest kept (ties: the lower
    class index). float32."""
    p = np.asarray(probs, np.float64) ** power
    p[p < floor] = 0.0
    if 0 < top_k < p.shape[1]:
        keep = np.argsort(-p, axis=1, kind="stable")[:, :top_k]
        mask = np.zeros(p.shape, bool)
        np.put_along_axis(mask, keep, True, axis=1)
        p = np.where(mask, p, 0.0)
    return p.astype(np.float32)


def round_dir(cfg, round_: int | None = None) -> str:
    """Where round `round_` (default pseudo.round) of this recipe's pseudo-labels go."""
    base = cfg.pseudo.output_dir or join(cfg.run_dir, "pseudo")
    return join(base, f"round-{cfg.pseudo.round if round_ is None else round_}")


def soundscape_folder(cfg) -> str:
    """pseudo.soundscapes (relative to data.root unless absolute or a URL), else data.soundscape_dir."""
    folder = cfg.pseudo.soundscapes or cfg.data.soundscape_dir
    return folder if fs.is_remote(folder) or os.path.isabs(folder) else join(cfg.data.root, folder)


def teacher_models(cfg) -> list[str]:
    """The models of pseudo.runs (a run folder means its model.keras), else of infer.model / the run."""
    if not cfg.pseudo.runs:
        return [m for m in model_paths(cfg) if read_meta(m)]
    out = []
    for run in cfg.pseudo.runs:
        model = run.rstrip("/")
        if not model.endswith((".keras", ".tflite", ".onnx", ".xml")) and not fs.exists(
            join(model, "saved_model.pb")
        ):
            model = join(model, "model.keras")
        if not fs.exists(model):
            raise ConfigError(f"pseudo.runs: {run}: no model there (expected {model})")
        model_format(model)
        read_meta(model)
        out.append(model)
    return out


def _model_digest(path: str) -> str:
    """sha256 of a model's bytes (SavedModel: saved_model.pb; OpenVINO: the .xml and its .bin)."""
    if fs.isdir(path):
        return fs.sha256(join(path, "saved_model.pb"))
    digest = fs.sha256(path)
    weights = path[: -len(".xml")] + ".bin"
    if path.endswith(".xml") and fs.exists(weights):
        digest = hashlib.sha256((digest + fs.sha256(weights)).encode()).hexdigest()
    return digest


def run_provenance(model: str) -> dict:
    """A teacher: its run folder, model file, the model's sha256, its run's config.yaml sha256 and
    best epoch (None where the folder has no config.yaml / metrics.json)."""
    run = os.path.dirname(model.rstrip("/")) or "."
    config, metrics = join(run, "config.yaml"), join(run, "metrics.json")
    return {
        "run": run,
        "model": model,
        "model_sha256": _model_digest(model),
        "config_sha256": fs.sha256(config) if fs.exists(config) else None,
        "best_epoch": fs.read_json(metrics).get("best_epoch") if fs.exists(metrics) else None,
    }


def _settings(cfg) -> dict:
    """Everything but the soundscapes and models that a shard's bytes depend on."""
    p, inf = cfg.pseudo, cfg.infer
    return {
        "schema_version": SCHEMA_VERSION,
        "sample_rate": cfg.data.sample_rate,
        "compression": cfg.shards.compression,
        "transform": {"power": p.power, "floor": p.floor, "top_k": p.top_k},
        "infer": {
            **{k: v for k, v in dataclasses.asdict(inf).items() if k not in _NOT_PREDICTION},
            "stacker_sha256": fs.sha256(inf.stacker) if inf.stacker else None,
        },
    }


# infer settings that do not change the probabilities (or that pseudo sets itself)
_NOT_PREDICTION = (
    "model",
    "stacker",
    "batch_size",
    "threads",
    "streams",
    "check_windows",
    "aggregate",
    "sample_submission",
    "submission",
)


def _plans(paths: list[str], per_shard: int, base: dict) -> list[dict]:
    """Shards of `per_shard` soundscapes in order: name, files and the fingerprint of their inputs."""
    plans = []
    for i in range(0, len(paths), per_shard):
        files = paths[i : i + per_shard]
        name = f"pseudo-{i // per_shard:05d}.tfrec"
        inputs = [[os.path.basename(f), fs.size(f)] for f in files]
        blob = json.dumps([name, inputs, base], sort_keys=True).encode()
        plans.append(
            {"name": name, "files": files, "fingerprint": hashlib.sha256(blob).hexdigest()}
        )
    return plans


def _write_shard(plan: dict, out_dir: str, runners, infer, cfg, blender, log) -> dict:
    """Predict, transform and write one shard (temporary name, fsynced, then renamed) and its
    sidecar."""
    result = predict_recordings(runners, plan["files"], infer, log, blender)
    table = result["table"]
    classes = list(table.columns[1:])
    p = cfg.pseudo
    targets = transform(table[classes].to_numpy(np.float32), p.power, p.floor, p.top_k)
    at = {r: i for i, r in enumerate(table["row_id"])}
    rate, window, hop = cfg.data.sample_rate, infer.window_seconds, infer.hop_seconds or None
    skipped = list(result["skipped"])
    bad = {s["file"] for s in skipped}
    per_class: dict[str, int] = {}
    examples, recordings, seconds, empty = 0, 0, 0.0, 0
    path = join(out_dir, plan["name"])
    with shard_writer(path, cfg.shards.compression, NO_SPACE) as writer:
        for file in plan["files"]:
            if file in bad:
                continue
            try:
                wave = decode(file, [rate])[rate]
            except AudioError as err:
                skipped.append({"file": file, "reason": err.reason})
                continue
            wave[~np.isfinite(wave)] = 0.0
            cut, ends = windows(wave, rate, window, hop)
            stem = os.path.splitext(os.path.basename(file))[0]
            duration = round(len(wave) / rate, 6)
            for pcm, end, rid in zip(cut, ends, rowid.row_ids(stem, ends)):
                if rid not in at:  # a window of a few samples that another rate dropped
                    continue
                target = targets[at[rid]]
                label = int(np.argmax(target))
                if target[label] > 0:
                    per_class[classes[label]] = per_class.get(classes[label], 0) + 1
                else:
                    empty += 1
                writer.write(
                    serialize_example(
                        to_pcm16(pcm),
                        rate,
                        target,
                        label,
                        FOLD,
                        rid,
                        SOURCE,
                        duration,
                        round(end - window, 6),
                    )
                )
                examples += 1
                seconds += window
            recordings += 1
    entry = {
        "file": plan["name"],
        "fold": FOLD,
        "examples": examples,
        "recordings": recordings,
        "seconds": round(seconds, 3),
        "bytes": writer.bytes,
        "sha256": writer.sha256,
        "per_class": dict(sorted(per_class.items())),
        "negatives": {},
        "empty_targets": empty,
        "skipped": skipped,
        "partial": result["partial"],
        "fingerprint": plan["fingerprint"],
    }
    fs.write_json(path + ".json", entry)
    return entry


def write_pseudo(cfg, log=print, round_: int | None = None) -> dict:
    """Pseudo-label the soundscapes of `cfg` (see the module docstring); returns the manifest
    (with `written`: the shards this call wrote)."""
    round_ = cfg.pseudo.round if round_ is None else round_
    folder, out = soundscape_folder(cfg), round_dir(cfg, round_)
    paths = list_recordings(folder)
    if not paths:
        raise DataError(f"{folder}: no recordings ({', '.join(AUDIO_EXTENSIONS)}) to pseudo-label")
    models = teacher_models(cfg)
    runs = [run_provenance(m) for m in models]
    base = {**_settings(cfg), "models": [r["model_sha256"] for r in runs]}
    plans = _plans(paths, cfg.pseudo.files_per_shard, base)
    fs.makedirs(out)
    remove_temporaries(out)
    entries = finished_entries(out, [(p["name"], p["fingerprint"]) for p in plans], "pseudo", log)
    todo = [p for p in plans if entries[p["name"]] is None]
    classes = list(read_meta(models[0])["classes"])  # the blend's columns: the first model's
    if todo:
        inf = cfg.infer
        runners = [open_model(m, inf.batch_size, inf.threads, inf.streams) for m in models]
        blender = postprocess.load_blender(inf.stacker) if inf.stacker else None
        infer = dataclasses.replace(inf, aggregate="none")
        for n, plan in enumerate(todo, 1):
            entry = _write_shard(plan, out, runners, infer, cfg, blender, log)
            entries[plan["name"]] = entry
            infer = dataclasses.replace(infer, check_windows=0)  # exports are checked once
            log(
                f"pseudo: [{n}/{len(todo)}] {entry['file']}: {entry['examples']} windows of "
                f"{entry['recordings']} soundscapes"
            )
    manifest = _manifest(
        [entries[p["name"]] for p in plans], classes, cfg, round_, folder, runs, len(paths)
    )
    fs.write_json(join(out, MANIFEST), manifest)
    for s in manifest["skipped"]:
        log(f"pseudo: skip {s['file']}: {s['reason']}")
    log(
        f"pseudo: round {round_}: {manifest['examples']} windows of {manifest['recordings']} "
        f"soundscapes in {len(plans)} shards ({len(todo)} written), "
        f"{len(manifest['skipped'])} skipped -> {out}"
    )
    return {**manifest, "written": [p["name"] for p in todo]}


def _manifest(entries, classes, cfg, round_, folder, runs, inputs) -> dict:
    """The manifest: the keys of a `birdtpu shard` set (read_manifest, shard_paths, check_shards
    read it) plus `pseudo`, the provenance."""
    per_class = {c: 0 for c in classes}
    for e in entries:
        for label, n in e["per_class"].items():
            per_class[label] += n
    skipped = [s for e in entries for s in e["skipped"]]
    examples = sum(e["examples"] for e in entries)
    settings = _settings(cfg)
    return {
        "schema_version": SCHEMA_VERSION,
        "sample_rate": cfg.data.sample_rate,
        "compression": cfg.shards.compression,
        "classes": classes,
        "inputs": inputs,
        "recordings": sum(e["recordings"] for e in entries),
        "examples": examples,
        "total_seconds": round(sum(e["seconds"] for e in entries), 3),
        "per_class": per_class,
        "negatives": {},
        "per_fold": {str(FOLD): examples},
        "shards": entries,
        "skipped": skipped,
        "build": {
            "sample_rate": cfg.data.sample_rate,
            "files_per_shard": cfg.pseudo.files_per_shard,
        },
        "config": {},
        "pseudo": {
            "round": round_,
            "soundscapes": folder,
            "runs": runs,
            "transform": settings["transform"],
            "infer": settings["infer"],
            "files": inputs - len(skipped),
            "windows": examples,
            "empty_targets": sum(e["empty_targets"] for e in entries),
            "skipped": skipped,
            "partial": [s for e in entries for s in e["partial"]],
        },
    }
