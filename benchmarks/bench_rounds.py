"""Noisy-student rounds on synthetic data: soundscape macro AUC of round 0 (the teacher) and the
students of rounds 1-2, side by side in one run.

    .venv/bin/python benchmarks/bench_rounds.py [--rounds 2] [--epochs 30] [--out DIR]

`birdtpu.train.rounds.fit_rounds` on a synthetic set with BirdCLEF+ soundscapes (`synth`
with `plus_soundscapes`/`plus_labelled`): every round is a fit from scratch in
`<out>/runs/bench/round-<k>/`, rounds 1-2 trained with the previous round's pseudo-labels of
the unlabelled `train_soundscapes/` mixed in. Each round's best model is then scored on the
5-s windows of (a) the pseudo-labelled train soundscapes against their known truth
(`train_soundscapes_truth.csv`), (b) the labelled ones (`train_soundscapes_labels.csv`, the
rounds table's column, also validated every epoch as val_soundscape_auc), and (c) held-out
soundscapes no round trains on (`soundscapes/`, `soundscape_labels.csv`): window macro ROC-AUC
over classes with a positive and a negative window. Seeds: `synth.seed` draws the data,
`runtime.seed` the initial weights and the pipeline; both are printed with the table.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def overrides(out: str, epochs: int, synth_seed: int, seed: int) -> list[str]:
    """A small recipe: 5 species, 2-s clips at 16 kHz, the Freesound 2019 CNN at 1/4 width."""
    return [
        f"data.root={out}/data",
        f"output_dir={out}/runs",
        "name=bench",
        "data.synthesize=true",
        "data.sample_rate=16000",
        "data.num_folds=3",
        f"synth.seed={synth_seed}",
        "synth.num_species=5",
        "synth.clips_per_species=12",
        "synth.min_seconds=2",
        "synth.max_seconds=5",
        "synth.num_soundscapes=6",
        "synth.soundscape_seconds=30",
        "synth.plus_soundscapes=16",
        "synth.plus_labelled=4",
        "shards.workers=1",
        "frontend.clip_seconds=2",
        "frontend.n_fft=512",
        "frontend.frames=64",
        "frontend.n_mels=64",
        "frontend.fmax=8000",
        "model.name=fat2019",
        "model.width=0.25",
        "model.pretrained=none",
        "model.bn_momentum=0.9",
        f"runtime.seed={seed}",
        f"train.epochs={epochs}",
        "train.batch_size=16",
        "train.steps_per_epoch=8",
        "train.warmup_epochs=0",
        "train.loss=bce",
        "train.soundscape_val=train_soundscapes_labels.csv",
        "infer.window_seconds=2",
        "pseudo.soundscapes=train_soundscapes",
        "pseudo.power=1.5",
        "pseudo.ratio=0.3",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--synth-seed", type=int, default=7)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", default="", help="work folder (default: a new temporary one)")
    args = parser.parse_args()

    from birdtpu import fs, saving
    from birdtpu.config import load_config
    from birdtpu.train import soundscape_val
    from birdtpu.train.rounds import fit_rounds, round_config

    out = args.out or tempfile.mkdtemp(prefix="bench-rounds-")
    cfg = load_config(None, overrides(out, args.epochs, args.synth_seed, args.seed))
    started = time.time()
    table = fit_rounds(cfg, args.rounds, lambda m: print(m, file=sys.stderr, flush=True))
    root = cfg.data.root
    classes = fs.read_json(os.path.join(cfg.run_dir, "model.json"))["classes"]
    train_set = soundscape_val.from_truth(
        cfg, f"{root}/train_soundscapes_truth.csv", f"{root}/train_soundscapes", classes
    )
    held_out = soundscape_val.from_truth(
        cfg, f"{root}/soundscape_labels.csv", f"{root}/soundscapes", classes
    )
    rows = []
    for r in table.itertuples(index=False):
        model_dir = round_config(cfg, r.round).run_dir
        model = saving.load_model(os.path.join(model_dir, "model.keras"))
        rows.append(
            (
                r.round,
                r.val_macro_auc,
                soundscape_val.score(model, train_set)["window_macro_auc"],
                r.soundscape_macro_auc,
                soundscape_val.score(model, held_out)["window_macro_auc"],
                r.pseudo_windows,
                r.seconds,
            )
        )
    print(
        f"\nnoisy-student rounds on synthetic data (synth.seed {args.synth_seed}, runtime.seed "
        f"{args.seed}, {args.epochs} epochs x 8 steps of 16 per round; {time.time() - started:.0f} s)"
    )
    print(
        "| round | clip val AUC | train soundscapes (truth) | labelled soundscapes "
        "| held-out soundscapes | pseudo windows | seconds |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for k, clip, train, labelled, held, windows, seconds in rows:
        print(
            f"| {k} | {clip:.4f} | {train:.4f} | {labelled:.4f} | {held:.4f} | {windows} "
            f"| {seconds:.0f} |"
        )
    print(f"(work folder: {out})")


if __name__ == "__main__":
    main()
