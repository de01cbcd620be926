"""Synthetic birdsong in BirdCLEF layout: the embedded demo dataset and the source of scale tests.

Each species has a call shape (frequency-modulated whistle, trill, harmonic stack or buzz) and a
frequency band of its own; every call jitters around the species' template. Clips mix calls into
pink background noise at a random SNR, at several sample rates, some with a secondary species.
Soundscapes place calls of several species at known times and come with per-window truth.
With `plus_soundscapes` the set also carries the BirdCLEF+ 2025/2026 layout (`write_plus`).
Everything is drawn from `numpy.random.default_rng([seed, kind, index])`, so output depends on the
seed alone, not on the order or parallelism of the writes.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np
import pandas as pd

from birdtpu.data.audio import write_audio
from birdtpu.errors import ConfigError, DataError

SHAPES = ("whistle", "trill", "harmonic", "buzz")
METADATA, AUDIO_DIR = "train_metadata.csv", "train_audio"  # the names `write_dataset` writes
MARKER = ".birdtpu-synthetic.json"  # marks a folder as a synthetic set: rewriting it loses nothing
SOUNDSCAPE_RATE = 32000
_CLIP, _SPECIES, _SCAPE, _PLUS_SCAPE = 1, 2, 3, 4
PLUS_DIR, PLUS_LABELS = "train_soundscapes", "train_soundscapes_labels.csv"
PLUS_TRUTH = "train_soundscapes_truth.csv"  # for scoring pseudo-labels; no trainer reads it
PLUS_TRAIN = [  # train.csv of BirdCLEF+ 2026, in its column order
    "primary_label",
    "secondary_labels",
    "type",
    "latitude",
    "longitude",
    "scientific_name",
    "common_name",
    "class_name",
    "inat_taxon_id",
    "author",
    "license",
    "rating",
    "url",
    "filename",
    "collection",
]


@dataclass(frozen=True)
class Species:
    """A species' call template: shape, band (Hz), call length (s), and shape parameters."""

    code: str
    shape: str
    f_low: float
    f_high: float
    call_seconds: float
    rate_hz: float  # trill note rate, buzz modulation rate, whistle vibrato rate
    n_harmonics: int


def make_species(num_species: int, seed: int) -> list[Species]:
    """`num_species` templates: shapes cycle, bands spread over 1.5-7.5 kHz so species differ."""
    out = []
    centres = np.linspace(1800, 6500, num_species) if num_species > 1 else np.array([4000.0])
    for i in range(num_species):
        rng = np.random.default_rng([seed, _SPECIES, i])
        shape = SHAPES[i % len(SHAPES)]
        centre = centres[(i * 5) % num_species]  # interleave so neighbours in band differ in shape
        width = rng.uniform(0.15, 0.35) * centre
        out.append(
            Species(
                code=f"syn{i:02d}{shape[:2]}",
                shape=shape,
                f_low=float(centre - width / 2),
                f_high=float(centre + width / 2),
                call_seconds=float(rng.uniform(0.3, 0.9)),
                rate_hz=float(rng.uniform(8, 25) if shape == "trill" else rng.uniform(40, 90)),
                n_harmonics=int(rng.integers(3, 6)),
            )
        )
    return out


def _envelope(n: int, attack: float = 0.1) -> np.ndarray:
    a = max(1, int(n * attack))
    env = np.ones(n, np.float32)
    ramp = np.sin(np.linspace(0, np.pi / 2, a)) ** 2
    env[:a] = ramp
    env[-a:] = ramp[::-1]
    return env


def _tone(freq: np.ndarray, sr: int) -> np.ndarray:
    return np.sin(2 * np.pi * np.cumsum(freq) / sr).astype(np.float32)


def render_call(sp: Species, sr: int, rng: np.random.Generator) -> np.ndarray:
    """One call of species `sp` at rate `sr`, peak amplitude 1."""
    jitter = rng.uniform(0.93, 1.07)
    n = int(sp.call_seconds * rng.uniform(0.85, 1.15) * sr)
    t = np.arange(n) / sr
    lo, hi = sp.f_low * jitter, min(sp.f_high * jitter, 0.45 * sr)
    if sp.shape == "whistle":  # up-sweep with a slow vibrato
        freq = lo + (hi - lo) * t / t[-1] + 0.05 * (hi - lo) * np.sin(2 * np.pi * 6 * t)
        wave = _tone(freq, sr)
    elif sp.shape == "trill":  # fast repeated down-sweeping notes
        phase = (t * sp.rate_hz) % 1.0
        wave = _tone(hi - (hi - lo) * phase, sr) * (np.sin(np.pi * phase) ** 2)
    elif sp.shape == "harmonic":  # a stack over a low fundamental, amplitudes falling
        f0 = lo / 2 * (1 + 0.03 * np.sin(2 * np.pi * 5 * t))
        wave = sum(
            _tone(f0 * k, sr) / k for k in range(1, sp.n_harmonics + 1) if f0[0] * k < 0.45 * sr
        )
    else:  # buzz: band-limited noise, amplitude-modulated
        spec = np.fft.rfft(rng.standard_normal(n))
        f = np.fft.rfftfreq(n, 1 / sr)
        spec[(f < lo) | (f > hi)] = 0
        wave = np.fft.irfft(spec, n) * (0.6 + 0.4 * np.sin(2 * np.pi * sp.rate_hz * t))
    wave = np.asarray(wave, np.float32) * _envelope(n)
    return wave / (np.abs(wave).max() + 1e-9)


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS 1/f noise."""
    spec = np.fft.rfft(rng.standard_normal(n))
    spec /= np.sqrt(np.maximum(np.arange(len(spec)), 1))
    noise = np.fft.irfft(spec, n)
    return (noise / (np.sqrt(np.mean(noise**2)) + 1e-12)).astype(np.float32)


def _place_calls(
    wave: np.ndarray,
    sp: Species,
    sr: int,
    start: float,
    end: float,
    gain: float,
    rng: np.random.Generator,
    gap: tuple[float, float],
) -> list[tuple[float, float]]:
    """Add calls of `sp` between `start` and `end` seconds; returns their (start, end) times."""
    events = []
    t = start + rng.uniform(0, gap[0])
    while t < end:
        call = render_call(sp, sr, rng) * gain
        i = int(t * sr)
        seg = call[: max(0, len(wave) - i)]
        wave[i : i + len(seg)] += seg
        events.append((t, t + len(seg) / sr))
        t += len(call) / sr + rng.uniform(*gap)
    return events


def _mix(signal: np.ndarray, rng: np.random.Generator, snr_db: float) -> np.ndarray:
    """`signal` plus pink noise at `snr_db` (by RMS of the calls), scaled to a peak of 0.8."""
    power = np.mean(signal[np.abs(signal) > 1e-4] ** 2) if np.any(np.abs(signal) > 1e-4) else 1e-4
    noise = pink_noise(len(signal), rng) * np.sqrt(power / 10 ** (snr_db / 10))
    out = signal + noise
    return (0.8 * out / (np.abs(out).max() + 1e-9)).astype(np.float32)


def synth_clip(
    species: list[Species],
    primary: int,
    secondary: list[int],
    seconds: float,
    sr: int,
    snr_db: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """A training clip: calls of `primary` throughout, quieter calls of `secondary`, in noise."""
    wave = np.zeros(int(seconds * sr), np.float32)
    _place_calls(wave, species[primary], sr, 0.0, seconds - 0.2, 1.0, rng, gap=(0.2, 1.2))
    for s in secondary:
        _place_calls(wave, species[s], sr, 0.0, seconds - 0.2, 0.5, rng, gap=(1.0, 3.0))
    return _mix(wave, rng, snr_db)


def write_dataset(root: str, cfg, log=print) -> pd.DataFrame:
    """Write the dataset described by `cfg` (a SynthConfig) under `root`; returns the metadata.

    Layout: `train_metadata.csv`, `train_audio/<code>/<code>_<n>.ogg`, `soundscapes/*.ogg`,
    `soundscape_labels.csv` (row_id and a 0/1 column per species, one row per 5-s window),
    `soundscape_events.csv` (each call's species and times) and `sample_submission.csv`, and
    MARKER; with `cfg.plus_soundscapes`, the BirdCLEF+ files of `write_plus` too. `root` must be
    empty, missing or an earlier synthetic set: DataError otherwise, before anything is written.
    """
    if cfg.plus_labelled > cfg.plus_soundscapes:
        raise ConfigError(
            f"synth.plus_labelled: {cfg.plus_labelled} is more than synth.plus_soundscapes "
            f"({cfg.plus_soundscapes})"
        )
    check_target(root)
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, MARKER), "w") as fh:
        json.dump({"written_by": "birdtpu synth", "seed": cfg.seed}, fh)
    species = make_species(cfg.num_species, cfg.seed)
    rows = []
    for i, sp in enumerate(species):
        os.makedirs(os.path.join(root, AUDIO_DIR, sp.code), exist_ok=True)
        for n in range(cfg.clips_per_species):
            rng = np.random.default_rng([cfg.seed, _CLIP, i, n])
            sr = int(rng.choice(cfg.sample_rates))
            seconds = float(rng.uniform(cfg.min_seconds, cfg.max_seconds))
            others = [j for j in range(len(species)) if j != i]
            secondary = (
                [int(rng.choice(others))] if others and rng.random() < cfg.secondary_prob else []
            )
            wave = synth_clip(
                species, i, secondary, seconds, sr, float(rng.uniform(*cfg.snr_db)), rng
            )
            filename = f"{sp.code}/{sp.code}_{n:04d}.ogg"
            write_audio(os.path.join(root, AUDIO_DIR, filename), wave, sr)
            rows.append(
                {
                    "primary_label": sp.code,
                    "secondary_labels": str([species[j].code for j in secondary]),
                    "type": "['call']",
                    "latitude": round(float(rng.uniform(-40, 60)), 4),
                    "longitude": round(float(rng.uniform(-120, 140)), 4),
                    "scientific_name": f"Avis synthetica {sp.shape} {i}",
                    "common_name": f"Synthetic {sp.shape.title()} {i}",
                    "author": f"synth-recordist-{int(rng.integers(0, 8))}",
                    "license": "CC0 (synthetic)",
                    "rating": float(rng.integers(1, 11)) / 2,
                    "url": f"https://example.org/synthetic/XC{900000 + i * 10000 + n}",
                    "filename": filename,
                }
            )
    meta = pd.DataFrame(rows)
    meta.to_csv(os.path.join(root, METADATA), index=False)
    _write_soundscapes(root, species, cfg)
    plus = ""
    if cfg.plus_soundscapes:
        write_plus(root, species, meta, cfg)
        plus = f" (+{cfg.plus_soundscapes} BirdCLEF+ soundscapes, {cfg.plus_labelled} labelled)"
    log(
        f"synth: {len(meta)} clips of {len(species)} species and {cfg.num_soundscapes} soundscapes{plus} in {root}"
    )
    return meta


def check_target(root: str) -> None:
    """DataError where `root` holds files and no MARKER: the synthetic set never overwrites data."""
    names = sorted(os.listdir(root)) if os.path.isdir(root) else []
    if os.path.exists(root) and not os.path.isdir(root):
        raise DataError(f"{root}: not a folder; the synthetic dataset needs an empty folder")
    if names and MARKER not in names:
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        raise DataError(
            f"{root}: holds files the synthetic dataset did not write ({shown}); it writes only "
            "into an empty folder or an earlier synthetic set (check data.root)"
        )


def _render_soundscape(
    species: list[Species], cfg, rng: np.random.Generator, window: float
) -> tuple[np.ndarray, np.ndarray, list[tuple[int, float, float]]]:
    """A soundscape of `cfg.soundscape_seconds` at SOUNDSCAPE_RATE: its mixed wave, the 0/1
    (windows, species) presence and each call as (species index, start, end)."""
    n_windows = int(np.ceil(cfg.soundscape_seconds / window))
    wave = np.zeros(int(cfg.soundscape_seconds * SOUNDSCAPE_RATE), np.float32)
    present = np.zeros((n_windows, len(species)), np.int64)
    events = []
    for w in range(n_windows):  # each window: silence or one or two species
        for j in rng.choice(len(species), size=int(rng.integers(0, 3)), replace=False):
            start, end = w * window + 0.3, min((w + 1) * window, cfg.soundscape_seconds) - 0.5
            for t0, t1 in _place_calls(
                wave, species[j], SOUNDSCAPE_RATE, start, end, 1.0, rng, (0.3, 1.0)
            ):
                events.append((int(j), t0, t1))
                for ww in range(int(t0 // window), min(n_windows, int(np.ceil(t1 / window)))):
                    present[ww, j] = 1
    return _mix(wave, rng, float(rng.uniform(*cfg.snr_db))), present, events


def _window_ends(cfg, n_windows: int, window: float) -> list[int]:
    return [int(min((w + 1) * window, np.ceil(cfg.soundscape_seconds))) for w in range(n_windows)]


def _write_soundscapes(root: str, species: list[Species], cfg, window: float = 5.0) -> None:
    codes = [sp.code for sp in species]
    scape_dir = os.path.join(root, "soundscapes")
    os.makedirs(scape_dir, exist_ok=True)
    truth, events = [], []
    for k in range(cfg.num_soundscapes):
        rng = np.random.default_rng([cfg.seed, _SCAPE, k])
        name = f"soundscape_{k:03d}"
        wave, present, calls = _render_soundscape(species, cfg, rng, window)
        events += [
            {"soundscape": name, "species": codes[j], "start": round(t0, 3), "end": round(t1, 3)}
            for j, t0, t1 in calls
        ]
        write_audio(os.path.join(scape_dir, f"{name}.ogg"), wave, SOUNDSCAPE_RATE)
        for w, end_s in enumerate(_window_ends(cfg, len(present), window)):
            truth.append({"row_id": f"{name}_{end_s}", **dict(zip(codes, present[w]))})
    truth_df = pd.DataFrame(truth, columns=["row_id", *codes])
    truth_df.to_csv(os.path.join(root, "soundscape_labels.csv"), index=False)
    pd.DataFrame(events, columns=["soundscape", "species", "start", "end"]).to_csv(
        os.path.join(root, "soundscape_events.csv"), index=False
    )
    sample = truth_df.copy()
    sample[codes] = 1.0 / len(codes)
    sample.to_csv(os.path.join(root, "sample_submission.csv"), index=False)


def species_taxa(n: int) -> list[str]:
    """The taxon (BirdCLEF+ class_name) of each of `n` synthetic species: Aves, except the last
    one Amphibia (from 3 species), the one before Insecta (from 4), the one before Mammalia (8)."""
    taxa = ["Aves"] * n
    for size, k, taxon in ((3, 1, "Amphibia"), (4, 2, "Insecta"), (8, 3, "Mammalia")):
        if n >= size:
            taxa[n - k] = taxon
    return taxa


def _hms(seconds: int) -> str:
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def write_plus(
    root: str, species: list[Species], meta: pd.DataFrame, cfg, window: float = 5.0
) -> None:
    """The BirdCLEF+ files: `taxonomy.csv` (taxa by `species_taxa`, iNat ids 800000 + index),
    `train.csv` (the clips of `meta` in the 2026 columns), `cfg.plus_soundscapes` soundscapes
    `train_soundscapes/SYN_Train_<k>.ogg` (drawn from `[seed, 4, k]`), every window's 0/1
    truth in PLUS_TRUTH (row_id and a column per species), and for the first
    `cfg.plus_labelled` the 2026 `train_soundscapes_labels.csv` (filename, start, end as
    HH:MM:SS, primary_label joined by ';'; a row per window with a call, as the real file).
    """
    codes = [sp.code for sp in species]
    taxa = dict(zip(codes, species_taxa(len(species))))
    ids = {c: 800000 + i for i, c in enumerate(codes)}
    names = meta.drop_duplicates("primary_label").set_index("primary_label")
    pd.DataFrame(
        {
            "primary_label": codes,
            "inat_taxon_id": [ids[c] for c in codes],
            "scientific_name": [names.scientific_name.get(c, c) for c in codes],
            "common_name": [names.common_name.get(c, c) for c in codes],
            "class_name": [taxa[c] for c in codes],
        }
    ).to_csv(os.path.join(root, "taxonomy.csv"), index=False)
    train = meta.assign(
        class_name=meta.primary_label.map(taxa),
        inat_taxon_id=meta.primary_label.map(ids),
        collection="XC",
    )
    train[PLUS_TRAIN].to_csv(os.path.join(root, "train.csv"), index=False)
    os.makedirs(os.path.join(root, PLUS_DIR), exist_ok=True)
    truth, labels = [], []
    for k in range(cfg.plus_soundscapes):
        rng = np.random.default_rng([cfg.seed, _PLUS_SCAPE, k])
        name = f"SYN_Train_{k:04d}"
        wave, present, _ = _render_soundscape(species, cfg, rng, window)
        write_audio(os.path.join(root, PLUS_DIR, f"{name}.ogg"), wave, SOUNDSCAPE_RATE)
        for w, end_s in enumerate(_window_ends(cfg, len(present), window)):
            truth.append({"row_id": f"{name}_{end_s}", **dict(zip(codes, present[w]))})
            heard = [codes[j] for j in np.flatnonzero(present[w])]
            if k < cfg.plus_labelled and heard:
                labels.append(
                    {
                        "filename": f"{name}.ogg",
                        "start": _hms(int(w * window)),
                        "end": _hms(end_s),
                        "primary_label": ";".join(heard),
                    }
                )
    pd.DataFrame(truth, columns=["row_id", *codes]).to_csv(
        os.path.join(root, PLUS_TRUTH), index=False
    )
    pd.DataFrame(labels, columns=["filename", "start", "end", "primary_label"]).to_csv(
        os.path.join(root, PLUS_LABELS), index=False
    )
