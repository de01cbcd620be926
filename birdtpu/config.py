"""One config tree of dataclasses, loaded from YAML (safe_load only) with `--set a.b=v` overrides.

YAML keys are field names. An unknown key, a wrong type or a value out of range raises
`ConfigError` with the dotted key and, for unknown keys, the nearest valid one.
Field metadata may give `choices`, `min` and `max`; a field's comment is its documentation.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import typing
from dataclasses import dataclass, field

import yaml

from birdtpu.errors import ConfigError
from birdtpu.fs import join


def _opt(default, *, choices=None, lo=None, hi=None, **kw):
    meta = {"choices": choices, "min": lo, "max": hi}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta, **kw)
    return field(default=default, metadata=meta, **kw)


@dataclass
class DataConfig:
    root: str = "demo_data"  # dataset root in BirdCLEF layout
    metadata: str = "train_metadata.csv"  # relative to root
    audio_dir: str = "train_audio"  # relative to root; filenames in metadata are relative to it
    soundscape_dir: str = "soundscapes"  # relative to root; recordings `predict` cuts into windows
    synthesize: bool = False  # write the synthetic dataset with `synth` when root has no metadata
    sample_rate: int = _opt(32000, lo=8000, hi=192000)  # every recording is resampled to this
    num_folds: int = _opt(5, lo=2)
    fold: int = _opt(0, lo=0)  # the validation fold of a single run
    secondary_weight: float = _opt(1.0, lo=0.0, hi=1.0)  # target value of secondary labels
    format: str = "birdclef"  # metadata format of root (birdtpu.data.catalog.FORMATS); birdclef uses metadata/audio_dir
    table: str = (
        ""  # a table from `birdtpu catalog --out` (merged sources); replaces root's metadata
    )
    fold_method: str = _opt("stratified", choices=("stratified", "multilabel"))
    group_by: str = "filepath"  # rows sharing this column share a fold (filepath: recording; author); empty: none
    cv_min: int = _opt(0, lo=0)  # classes with fewer rows are trained on, never validated (0: off)
    max_per_class: int = _opt(
        0, lo=0
    )  # training split only: at most this many clips per class per epoch, expected (0: off)
    min_per_class: int = _opt(
        0, lo=0
    )  # training split only: at least this many clips per class per epoch, by copies (0: off)
    # taxon specialist: only the classes of these taxonomy.csv class_name values (e.g. [Amphibia,
    # Insecta]); rows of other primary labels dropped, other secondary labels ignored; empty: all
    taxa: list[str] = _opt([])


@dataclass
class SynthConfig:
    num_species: int = _opt(6, lo=1, hi=64)
    clips_per_species: int = _opt(30, lo=1)
    min_seconds: float = _opt(3.0, lo=0.5)
    max_seconds: float = _opt(12.0, lo=0.5)
    sample_rates: list[int] = _opt([22050, 32000, 44100])  # each clip picks one
    snr_db: list[float] = _opt([3.0, 25.0])  # [low, high] call-to-background ratio
    secondary_prob: float = _opt(0.2, lo=0.0, hi=1.0)  # chance a clip has a second species
    num_soundscapes: int = _opt(3, lo=0)
    soundscape_seconds: float = _opt(60.0, lo=5.0)
    seed: int = 7
    # BirdCLEF+ layout (0: none written): taxonomy.csv, train.csv (2026 columns), this many
    # train_soundscapes/*.ogg with every window's truth in train_soundscapes_truth.csv
    plus_soundscapes: int = _opt(0, lo=0)
    plus_labelled: int = _opt(0, lo=0)  # the first n of them get train_soundscapes_labels.csv rows


@dataclass
class ShardConfig:
    dir: str = ""  # output folder (local or gs://); empty: the shared cache, <output_dir>/shard-cache/<format>-<key>
    target_mb: float = _opt(150.0, lo=0.01)  # close a shard when its PCM reaches this size
    compression: str = _opt(
        "", choices=("", "GZIP")
    )  # GZIP: smaller files, slower to write and read
    workers: int = _opt(0, lo=0)  # decoding processes; 0: one per core
    max_seconds: float = _opt(60.0, lo=0.5)  # window length of the crops below
    crop: str = _opt(
        "first", choices=("first", "whole", "random", "boxes")
    )  # first max_seconds | whole file | `windows` random windows | a window around each t_min/t_max box
    windows: int = _opt(1, lo=1)  # random windows per recording (crop: random)
    channel: int = _opt(
        -1, lo=-1
    )  # -1 averages the channels; k keeps channel k (files with fewer are skipped)
    decoder: str = _opt(
        "auto", choices=("auto", "soundfile", "tfio")
    )  # auto: soundfile; tensorflow-io for formats libsndfile lacks
    max_skipped: float = _opt(
        0.5, lo=0.0, hi=1.0
    )  # share of recordings that may be skipped as unusable; more is an error (shard, fit)


@dataclass
class FrontendConfig:
    clip_seconds: float = _opt(5.0, lo=0.1)  # training crop and inference window
    n_fft: int = _opt(2048, lo=16)
    win_length: int = _opt(0, lo=0)  # 0: n_fft
    frames: int = _opt(384, lo=8)  # image width; hop = samples // (frames - 1)
    n_mels: int = _opt(128, lo=8)
    fmin: float = _opt(20.0, lo=0.0)
    fmax: float = _opt(16000.0, lo=100.0)
    mel_scale: str = _opt("slaney", choices=("slaney", "htk"))
    power: float = _opt(
        2.0, choices=(1.0, 2.0)
    )  # mel of |STFT|^power: 2 power (10 log10 dB), 1 magnitude (20 log10)
    top_db: float = _opt(80.0, lo=1.0)  # per-example dB floor below the clip's maximum
    normalize: str = _opt(
        "zscore_minmax", choices=("zscore_minmax", "zscore", "minmax", "none")
    )  # per example
    channels: int = _opt(3, choices=(1, 3))  # 3 for ImageNet backbones
    impl: str = _opt("keras", choices=("keras", "kapre"))  # kapre: TF backend, the [kapre] extra


@dataclass
class AugmentConfig:
    # where noise, gain, shift (in the model) and MixUp/CutMix (in the train step) run: auto = on
    # a TPU/GPU, in tf.data on a CPU (birdtpu.train.placement); stretch, pitch, background: tf.data
    in_model: str = _opt("auto", choices=("auto", "true", "false"))
    crop: str = _opt(
        "random", choices=("random", "start", "box")
    )  # training window: random, the first clip_seconds, or around the record's t_min/t_max box
    pad: str = _opt(
        "random", choices=("random", "constant", "repeat")
    )  # short clips in training: zeros at a random offset, zeros after, or tiled
    trim_db: float = _opt(
        0.0, lo=0.0
    )  # training: trim leading/trailing audio this many dB below the loudest frame; 0 off
    noise_prob: float = _opt(0.35, lo=0.0, hi=1.0)  # Gaussian noise at a random SNR
    noise_snr_db: list[float] = _opt([10.0, 40.0])
    gauss_prob: float = _opt(0.0, lo=0.0, hi=1.0)  # Gaussian noise at a fixed level (absolute std)
    gauss_std: list[float] = _opt(
        [0.001, 0.015]
    )  # [low, high] noise standard deviation (full scale 1)
    pink_prob: float = _opt(0.0, lo=0.0, hi=1.0)  # pink (1/f) noise at a random SNR
    pink_snr_db: list[float] = _opt([10.0, 40.0])
    shift_prob: float = _opt(0.0, lo=0.0, hi=1.0)  # time shift by up to shift_max of the clip
    shift_max: float = _opt(0.5, lo=0.0, hi=1.0)
    shift_mode: str = _opt(
        "roll", choices=("roll", "pad")
    )  # roll wraps around; pad fills with zeros
    gain_prob: float = _opt(0.0, lo=0.0, hi=1.0)  # volume change
    gain_db: list[float] = _opt([-6.0, 6.0])
    stretch_prob: float = _opt(
        0.0, lo=0.0, hi=1.0
    )  # time stretch (phase vocoder, pitch kept, clip length kept)
    stretch_rate: list[float] = _opt([0.8, 1.25])  # [low, high] speed factor; > 1 is faster
    pitch_prob: float = _opt(
        0.0, lo=0.0, hi=1.0
    )  # pitch shift (phase vocoder + resampling, length kept)
    pitch_semitones: list[float] = _opt([-2.0, 2.0])
    background_prob: float = _opt(0.0, lo=0.0, hi=1.0)  # mix in a no-call clip from `background`
    background_snr_db: list[float] = _opt([3.0, 30.0])  # [low, high] clip-to-background power ratio
    background: str = (
        ""  # folder or glob of no-call audio: TFRecord shards (*.tfrec) or audio files
    )
    mixup_prob: float = _opt(
        0.65, lo=0.0, hi=1.0
    )  # per example: mix with another clip of the batch
    mixup_alpha: float = _opt(0.5, lo=0.0)  # lambda ~ Beta(alpha, alpha), one per example
    cutmix_prob: float = _opt(
        0.0, lo=0.0, hi=1.0
    )  # per example: paste a time segment of another clip
    cutmix_alpha: float = _opt(2.5, lo=0.0)
    box_band: bool = (
        False  # training: a labelled box's crop keeps only its f_min..f_max band (Rainforest)
    )
    pseudo_mixup_prob: float = _opt(
        0.0, lo=0.0, hi=1.0
    )  # per labelled clip: MixUp with a pseudo-labelled window of train.pseudo_shards
    pseudo_mixup_lambda: float = _opt(
        0.5, lo=0.0, hi=1.0
    )  # the labelled clip's share of that mix (the rest is the window)
    mix_labels: str = _opt(
        "weight", choices=("weight", "max")
    )  # mixed targets: lambda-weighted, or the max of both (BirdCLEF 2024 winners)
    freq_mask_prob: float = _opt(0.5, lo=0.0, hi=1.0)
    freq_masks: int = _opt(1, lo=0)
    freq_mask_width: int = _opt(10, lo=0)
    time_mask_prob: float = _opt(0.5, lo=0.0, hi=1.0)
    time_masks: int = _opt(2, lo=0)
    time_mask_width: int = _opt(25, lo=0)


@dataclass
class ModelConfig:
    name: str = "efficientnet_b0"  # see birdtpu.models.registry.MODELS
    pretrained: str = "imagenet"  # imagenet | none | path to a weights file (local or gs://)
    head: str = _opt(
        "clip", choices=("clip", "sed")
    )  # clip: the architecture's pooling head; sed: attention SED head
    neck: int = _opt(0, lo=0)  # units of a Dense + ReLU neck before the classifier; 0: none
    dropout: float = _opt(0.2, lo=0.0, hi=0.95)  # before the classifier (and inside the SED head)
    backbone_dropout: float = _opt(
        0.2, lo=0.0, hi=0.95
    )  # EfficientNet drop-connect; cnn14/fat2019 dropout between blocks
    activation: str = _opt("softmax", choices=("softmax", "sigmoid"))
    sed_clip_weight: float = _opt(
        0.5, lo=0.0, hi=1.0
    )  # sed: output = w x clipwise + (1 - w) x max over frames
    width: float = _opt(
        1.0, lo=0.05, hi=4.0
    )  # channel multiplier of cnn14 and fat2019 (1: published widths)
    # fat2019: the Freesound 2019 global features (128 windows x 12 statistics) and the clip
    # length, over each whole recording trimmed at augment.trim_db: two more model inputs
    global_features: bool = False
    bn_momentum: float = _opt(
        0.0, lo=0.0, hi=0.9999
    )  # 0 keeps the backbone's (0.99); 0.9 for short runs from scratch
    sync_bn: bool = (
        False  # BatchNorm statistics over the global batch (all replicas) instead of per replica
    )
    init_from: str = ""  # fine-tune: a pretrained .keras or .weights.h5 loaded by layer name, mismatched layers skipped


@dataclass
class TrainConfig:
    epochs: int = _opt(25, lo=1)
    batch_size: int = _opt(32, lo=1)  # per replica; the global batch is this x replicas
    steps_per_epoch: int = _opt(0, lo=0)  # 0: one pass over the training shards
    lr: float = _opt(
        1e-3, lo=0.0
    )  # peak learning rate (lr_scale global_batch: per sample of the global batch)
    lr_scale: str = _opt(
        "none", choices=("none", "global_batch")
    )  # global_batch: peak = lr x global batch (awsaf49)
    schedule: str = _opt(
        "cosine", choices=("cosine", "step", "exponential", "constant")
    )  # after the warm-up
    warmup_epochs: int = _opt(5, lo=0)  # linear ramp from min_lr_ratio x peak to the peak
    min_lr_ratio: float = _opt(
        0.01, lo=0.0, hi=1.0
    )  # warm-up start and decay floor, as a fraction of the peak
    lr_decay: float = _opt(
        0.5, lo=0.0, hi=1.0
    )  # step: factor every lr_step_epochs; exponential: factor per epoch
    lr_step_epochs: int = _opt(5, lo=1)  # step schedule: epochs between drops
    loss: str = _opt("cce", choices=("cce", "bce", "focal_bce", "focal_cce"))
    label_smoothing: float = _opt(0.05, lo=0.0, hi=0.5)
    focal_gamma: float = _opt(
        2.0, lo=0.0
    )  # focal losses: the focusing exponent (0: plain cross-entropy)
    optimizer: str = _opt("adam", choices=("adam", "adamw"))
    weight_decay: float = _opt(1e-4, lo=0.0)  # adamw only
    shuffle_buffer: int = _opt(1024, lo=1)
    jit_compile: str = _opt("auto", choices=("auto", "true", "false"))  # auto: on for TPU/GPU
    steps_per_execution: int = _opt(1, lo=1)  # raise on TPU (e.g. 32)
    monitor: str = _opt(
        "val_auc", choices=("val_auc", "val_pr_auc", "val_loss", "val_soundscape_auc")
    )  # best checkpoint, early stopping (val_soundscape_auc needs soundscape_val)
    early_stopping: int = _opt(0, lo=0)  # patience in epochs without a better monitor value; 0: off
    backup_steps: int = _opt(
        0, lo=0
    )  # also back up every N steps to resume mid-epoch; 0: at epoch ends only
    min_val_clips: int = _opt(
        2, lo=1
    )  # fit warns when the validation fold has fewer clips than this for some class
    # noisy student: `birdtpu pseudo` sets (round folders with manifest.json, e.g.
    # runs/teacher/pseudo/round-1) mixed into training at pseudo_ratio
    pseudo_shards: list[str] = _opt([])
    pseudo_ratio: float = _opt(
        0.0, lo=0.0, hi=1.0
    )  # share of training clips drawn from pseudo_shards, below 1; 0: off
    pseudo_weight: float = _opt(
        1.0, lo=0.0
    )  # loss weight of pseudo-labelled windows' soft targets (their share of a paired MixUp)
    # distillation: prediction CSVs of a teacher (row_id = clip id, one column per class), e.g.
    # another run's oof_fold<k>.csv; targets become alpha * labels + (1 - alpha) * teacher
    teacher_predictions: list[str] = _opt([])
    distill_alpha: float = _opt(0.5, lo=0.0, hi=1.0)  # the labels' share of the blended target
    distill_temperature: float = _opt(
        1.0, lo=0.0
    )  # teacher softened per class: sigmoid(logit(q) / T); must be above 0
    # embedding distillation: `birdtpu embed` folders of this catalog; each training clip's target
    # embedding is its recording's mean window embedding (L2-normalised), and the loss gains
    # embedding_weight x (1 - cos) of a Dense projection of layer embedding_layer (pooled
    # features) and that embedding (birdtpu.train.projection); empty: off
    teacher_embeddings: list[str] = _opt([])
    embedding_weight: float = _opt(1.0, lo=0.0)
    embedding_layer: str = "pool"  # clip heads: pool (pool_with_global with global features)
    # labelled soundscapes scored every epoch as val_soundscape_auc (birdtpu.train.soundscape_val):
    # a train_soundscapes_labels.csv, relative to data.root, audio in train_soundscapes/ beside it
    soundscape_val: str = ""


@dataclass
class RuntimeConfig:
    # Keras backend: auto = KERAS_BACKEND if set, else JAX where a TPU and jax+libtpu are there,
    # else TensorFlow (birdtpu.backend)
    backend: str = _opt("auto", choices=("auto", "tensorflow", "jax"))
    device: str = _opt("auto", choices=("auto", "tpu", "gpu", "cpu"))
    cpu_replicas: int = _opt(
        1, lo=1
    )  # >1 splits the CPU into logical devices: a real N-replica run
    precision: str = _opt("auto", choices=("auto", "float32", "mixed_float16", "mixed_bfloat16"))
    seed: int = 42
    deterministic: bool = False  # op determinism and ordered tf.data (slower)


@dataclass
class InferConfig:
    # empty: the run's model.keras; .keras, SavedModel, .tflite, .onnx or OpenVINO .xml; several, comma-separated, blend
    model: str = ""
    window_seconds: float = _opt(
        5.0, lo=0.1
    )  # one row per window; a model with a longer clip gets context from the neighbours
    hop_seconds: float = _opt(0.0, lo=0.0)  # step between windows; 0: window_seconds (no overlap)
    batch_size: int = _opt(64, lo=1)
    tta_shifts: list[float] = _opt(
        []
    )  # each window is also scored shifted by these seconds, then averaged ([-1, 1]: 3TTA)
    smooth: list[float] = _opt(
        []
    )  # weights over a window and its neighbours, odd length (e.g. [0.25, 0.5, 0.25]); empty: none
    postprocess: list[dict] = _opt(
        []
    )  # steps per recording after infer.smooth, in order, e.g. [{smooth: [1, 2, 1]}, {file_confidence: 0.5}]
    aggregate: str = _opt(
        "none", choices=("none", "max", "mean")
    )  # max/mean: one row per recording instead of per window
    stacker: str = (
        ""  # a stacker from `birdtpu stack` blends the models (in order); empty: their mean
    )
    # column order; empty: <data.root>/sample_submission.csv where it exists; none: the model's
    sample_submission: str = ""
    threads: int = _opt(
        0, lo=0
    )  # CPU threads of an export (TFLite: 1-thread interpreters; ONNX Runtime, OpenVINO: in all); 0: every core
    streams: int = _opt(
        0, lo=0
    )  # ONNX Runtime / OpenVINO: slices of each batch run at once, threads split among them; 0: threads // 2
    check_windows: int = _opt(
        4, lo=0
    )  # windows on which an export is checked against its Keras model; 0: no check
    submission: str = ""  # empty: <run dir>/submission.csv
    # taxon specialists blended into the main model's columns of their classes, after the models'
    # blend and before smoothing: [{run: runs/frogs, weight: 1.0}] (1 replaces; w: w*spec + (1-w)*main)
    specialists: list[dict] = _opt([])


@dataclass
class TrackingConfig:
    wandb: str = _opt(
        "disabled", choices=("disabled", "offline", "online")
    )  # offline: a local run folder to sync later
    project: str = "birdtpu"
    entity: str = ""  # W&B team or user; empty: the key's default (the key comes from WANDB_API_KEY, never the recipe)
    log_model: bool = True  # upload the best model.keras as a W&B artifact when the run ends


@dataclass
class PseudoConfig:
    # unlabelled soundscapes `birdtpu pseudo` predicts, relative to data.root (or absolute, gs://);
    # empty: data.soundscape_dir
    soundscapes: str = ""
    # teacher runs (folders with model.keras) or model files, blended; empty: infer.model, else this run's
    runs: list[str] = _opt([])
    round: int = _opt(1, lo=0)  # noisy-student round: shards go to <output_dir>/round-<round>
    power: float = _opt(
        1.0, lo=0.0
    )  # soft targets are p ** power (sharper above 1), then floor, top_k
    floor: float = _opt(0.0, lo=0.0, hi=1.0)  # targets below this (after power) become 0
    top_k: int = _opt(0, lo=0)  # keep only each window's top_k targets; 0: all
    files_per_shard: int = _opt(32, lo=1)  # soundscapes per shard (a shard is the unit of resuming)
    output_dir: str = ""  # empty: <run dir>/pseudo
    ratio: float = _opt(0.3, lo=0.0, hi=1.0)  # fit --rounds: pseudo-labelled share of a student

    def __post_init__(self):
        if self.power <= 0:
            raise ConfigError(f"pseudo.power: must be above 0, got {self.power!r}")


@dataclass
class EmbedConfig:
    # `birdtpu embed` and the embedding_head model: birdnet | perch:PATH | a model path (docs/teachers.md)
    teacher: str = "birdnet"
    source: str = _opt(
        "catalog", choices=("catalog", "soundscapes")
    )  # catalog: every recording of the run's catalog; soundscapes: data.soundscape_dir
    output_dir: str = ""  # empty: <output_dir>/embeddings/<teacher>-<source>
    window_seconds: float = _opt(
        0.0, lo=0.0
    )  # 0: the teacher's window; longer: the mean embedding (max logit) of teacher windows across it
    hop_seconds: float = _opt(0.0, lo=0.0)  # step between windows; 0: window_seconds
    max_seconds: float = _opt(0.0, lo=0.0)  # of each recording; 0: the whole recording
    files_per_shard: int = _opt(64, lo=1)  # recordings per shard (the unit of resuming)
    batch_size: int = _opt(16, lo=1)  # teacher windows per call (BirdNET: about 40 MB each)
    logits: bool = True  # keep the teacher's logits in the shards (distillation targets)
    threads: int = _opt(0, lo=0)  # TFLite threads; 0: every core


@dataclass
class Config:
    name: str = "run"  # run name: outputs go to <output_dir>/<name>
    output_dir: str = "runs"
    data: DataConfig = field(default_factory=DataConfig)
    synth: SynthConfig = field(default_factory=SynthConfig)
    shards: ShardConfig = field(default_factory=ShardConfig)
    frontend: FrontendConfig = field(default_factory=FrontendConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    infer: InferConfig = field(default_factory=InferConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    pseudo: PseudoConfig = field(default_factory=PseudoConfig)
    embed: EmbedConfig = field(default_factory=EmbedConfig)

    @property
    def run_dir(self) -> str:
        """Where this run's outputs go."""
        return join(self.output_dir, self.name)

    @property
    def shard_dir(self) -> str:
        """Where this run's shards are (built if missing): `shards.dir`, or the cache's set for
        this run's data and shard settings (`birdtpu.data.shardcache`)."""
        from birdtpu.data.shardcache import default_dir

        return self.shards.dir or default_dir(self)


def _check_value(value, tp, key: str, meta: dict):
    """`value` converted to type `tp`, or ConfigError naming `key`."""
    origin = typing.get_origin(tp)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        (item,) = typing.get_args(tp)
        return [_check_value(v, item, f"{key}[{i}]", {}) for i, v in enumerate(value)]
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
    elif tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
    elif tp is float:
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        value = float(value)
        if not math.isfinite(value):
            raise ConfigError(f"{key}: expected a finite number, got {value!r}")
    elif tp is str:
        if value is None:
            value = ""
        if isinstance(value, bool) and "true" in (meta.get("choices") or ()):
            value = "true" if value else "false"  # YAML reads an unquoted true/false as a bool
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
    if meta.get("choices") is not None and value not in meta["choices"]:
        raise ConfigError(f"{key}: {value!r} is not one of {', '.join(map(repr, meta['choices']))}")
    if meta.get("min") is not None and value < meta["min"]:
        raise ConfigError(f"{key}: {value!r} is below the minimum {meta['min']}")
    if meta.get("max") is not None and value > meta["max"]:
        raise ConfigError(f"{key}: {value!r} is above the maximum {meta['max']}")
    return value


def _build(cls, data, prefix: str):
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{prefix.rstrip('.') or 'config'}: expected a mapping of keys, got {data!r}"
        )
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if key not in fields:
            near = difflib.get_close_matches(str(key), list(fields), n=1, cutoff=0.5)
            hint = f"; did you mean {prefix}{near[0]}?" if near else f"; valid: {', '.join(fields)}"
            raise ConfigError(f"unknown key {dotted!r}{hint}")
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            kwargs[key] = _build(tp, value, dotted + ".")
        else:
            kwargs[key] = _check_value(value, tp, dotted, fields[key].metadata)
    return cls(**kwargs)


def _field_meta(cls, name: str) -> dict:
    return next(f.metadata for f in dataclasses.fields(cls) if f.name == name)


def _validate(cfg: Config) -> None:
    """Checks that span fields."""
    model = cfg.model
    own_cnn = model.name.startswith(("cnn14", "fat2019"))
    if model.width != 1.0 and not own_cnn:
        raise ConfigError(
            f"model.width: applies to cnn14 and fat2019 models only, not {model.name}"
        )
    if model.global_features and (not model.name.startswith("fat2019") or model.head != "clip"):
        raise ConfigError("model.global_features: needs a fat2019 model with model.head: clip")
    if model.global_features and cfg.train.soundscape_val:
        raise ConfigError(
            "train.soundscape_val: a soundscape window has no clip of its own for "
            "model.global_features (the Freesound 2019 clip inputs); leave one of them out"
        )
    if model.pretrained == "imagenet" and own_cnn:
        raise ConfigError(
            f"model.pretrained: there are no ImageNet weights for {model.name}; use none or a weights file"
        )
    if model.pretrained == "imagenet" and cfg.frontend.channels != 3 and not model.init_from:
        raise ConfigError("model.pretrained: ImageNet weights need frontend.channels: 3")
    if cfg.data.fold >= cfg.data.num_folds:
        raise ConfigError(
            f"data.fold: {cfg.data.fold} must be below data.num_folds ({cfg.data.num_folds})"
        )
    lo, hi = (_field_meta(DataConfig, "sample_rate")[k] for k in ("min", "max"))
    if not cfg.synth.sample_rates or not all(lo <= r <= hi for r in cfg.synth.sample_rates):
        raise ConfigError(
            f"synth.sample_rates: expected one or more rates from {lo} to {hi} Hz, "
            f"got {cfg.synth.sample_rates}"
        )
    if cfg.synth.min_seconds > cfg.synth.max_seconds:
        raise ConfigError("synth.min_seconds: must not exceed synth.max_seconds")
    if cfg.frontend.clip_seconds > cfg.shards.max_seconds:
        raise ConfigError(
            f"frontend.clip_seconds: {cfg.frontend.clip_seconds} is longer than the "
            f"shard window shards.max_seconds ({cfg.shards.max_seconds})"
        )
    if cfg.frontend.fmax > cfg.data.sample_rate / 2:
        raise ConfigError(
            f"frontend.fmax: {cfg.frontend.fmax} is above the Nyquist frequency "
            f"{cfg.data.sample_rate / 2} of data.sample_rate"
        )
    for key in ("synth.snr_db", "augment.noise_snr_db"):
        section, name = key.split(".")
        pair = getattr(getattr(cfg, section), name)
        if len(pair) != 2 or pair[0] > pair[1]:
            raise ConfigError(f"{key}: expected [low, high], got {pair}")
    inf = cfg.infer
    if inf.hop_seconds > inf.window_seconds:
        raise ConfigError(
            f"infer.hop_seconds: {inf.hop_seconds} leaves gaps between windows of "
            f"infer.window_seconds ({inf.window_seconds})"
        )
    if any(abs(s) >= inf.window_seconds for s in inf.tta_shifts):
        raise ConfigError(
            f"infer.tta_shifts: each shift must be shorter than infer.window_seconds, got {inf.tta_shifts}"
        )
    if inf.smooth and (len(inf.smooth) % 2 == 0 or min(inf.smooth) < 0 or sum(inf.smooth) <= 0):
        raise ConfigError(
            f"infer.smooth: expected an odd number of weights >= 0 with a positive sum, got {inf.smooth}"
        )
    train = cfg.train
    if train.pseudo_ratio >= 1:
        raise ConfigError(f"train.pseudo_ratio: must be below 1, got {train.pseudo_ratio}")
    if train.distill_temperature <= 0:
        raise ConfigError(
            f"train.distill_temperature: must be above 0, got {train.distill_temperature}"
        )
    if train.pseudo_ratio > 0 and not train.pseudo_shards:
        raise ConfigError(
            "train.pseudo_shards: set the pseudo-label folders for train.pseudo_ratio"
        )
    aug = cfg.augment
    for name in (
        "gauss_std",
        "pink_snr_db",
        "gain_db",
        "stretch_rate",
        "pitch_semitones",
        "background_snr_db",
    ):
        pair = getattr(aug, name)
        if len(pair) != 2 or pair[0] > pair[1]:
            raise ConfigError(f"augment.{name}: expected [low, high], got {pair}")
    if aug.gauss_std[0] < 0:
        raise ConfigError(f"augment.gauss_std: must not be negative, got {aug.gauss_std}")
    if aug.stretch_rate[0] <= 0:
        raise ConfigError(f"augment.stretch_rate: must be above 0, got {aug.stretch_rate}")
    for name in ("mixup", "cutmix"):
        if getattr(aug, f"{name}_prob") > 0 and getattr(aug, f"{name}_alpha") <= 0:
            raise ConfigError(
                f"augment.{name}_alpha: must be above 0 when augment.{name}_prob is set"
            )
    if inf.specialists:
        from birdtpu.infer.specialists import check_entries

        check_entries(inf.specialists)
    if aug.background_prob > 0 and not aug.background:
        raise ConfigError(
            "augment.background: set a folder or glob of no-call audio for augment.background_prob"
        )


def parse_override(text: str) -> tuple[list[str], object]:
    """`a.b=value` as (['a', 'b'], value), the value parsed as YAML (so 3 is an int, true a bool)."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. train.epochs=3")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip().split("."), value


def _check_unique_keys(node) -> None:
    """ConfigError on a key given twice in one mapping of a composed YAML `node` (node tree only,
    nothing constructed; PyYAML would keep the last value silently)."""
    if isinstance(node, yaml.MappingNode):
        seen = set()
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                if key.value in seen:
                    raise ConfigError(
                        f"line {key.start_mark.line + 1}: key {key.value!r} appears twice in one section"
                    )
                seen.add(key.value)
            _check_unique_keys(value)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _check_unique_keys(item)


def _read_yaml(path: str) -> dict:
    """The top-level mapping of the YAML file at `path`; ConfigError names the file (and line)."""
    if not os.path.exists(path):
        raise ConfigError(f"{path}: config file not found")
    if os.path.isdir(path):
        raise ConfigError(f"{path}: is a folder, not a YAML recipe")
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
        data = yaml.safe_load(text) or {}
        _check_unique_keys(yaml.compose(text, Loader=yaml.SafeLoader))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file (expected a UTF-8 YAML recipe)") from None
    except ConfigError as err:
        raise ConfigError(f"{path} {err}") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}{where}: invalid YAML ({getattr(err, 'problem', err)})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    return data


def _apply(data: dict, text: str) -> None:
    """Apply the override `text` (`a.b=value`) to the nested dict `data`."""
    keys, value = parse_override(text)
    node = data
    for k in keys[:-1]:
        node = node.setdefault(k, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {text!r}: {k} is not a section")
    node[keys[-1]] = value


def load_config(path: str | None = None, overrides: list[str] = ()) -> Config:
    """The config from a YAML file (or the defaults) with `a.b=v` overrides applied, validated.

    Errors name where the bad value came from: the file, or the `--set` override.
    """
    data: dict = _read_yaml(path) if path else {}
    if path:
        try:
            _build(Config, data, "")
        except ConfigError as err:
            raise ConfigError(f"{path}: {err}") from None
    for text in overrides:
        _apply(data, text)
        try:
            _build(Config, data, "")
        except ConfigError as err:
            raise ConfigError(f"--set {text.strip()!r}: {err}") from None
    cfg = _build(Config, data, "")
    try:
        _validate(cfg)
    except ConfigError as err:
        where = " and ".join(([path] if path else []) + (["--set"] if overrides else []))
        raise ConfigError(f"{where}: {err}" if where else str(err)) from None
    return cfg


def to_dict(cfg: Config) -> dict:
    """The config as plain data (what `save_config` writes)."""
    return dataclasses.asdict(cfg)


def save_config(cfg: Config, path: str) -> None:
    """Write the resolved config as YAML (atomically; local or gs://)."""
    from birdtpu.fs import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(to_dict(cfg), sort_keys=False))


def config_from_dict(data: dict) -> Config:
    """A Config from plain data (a saved resolved config), validated."""
    cfg = _build(Config, data, "")
    _validate(cfg)
    return cfg
