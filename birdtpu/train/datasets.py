"""The datasets of one training run: training batches (with the class balance), validation with
ids for the out-of-fold predictions, and the validation Keras scores each epoch."""

from __future__ import annotations

from birdtpu.data import balance
from birdtpu.data.shards import read_manifest, shard_paths
from birdtpu.errors import DataError


def _keras_validation(val, n_val: int, global_batch: int, run, log):
    """The (wave, target) validation batches Keras scores each epoch, of known length.

    Under N replicas a last batch of fewer than N clips would leave a replica an empty batch,
    which Keras' convolutions refuse, and under JAX every batch must split evenly over the
    devices: such a remainder is left out of the per-epoch metrics (the out-of-fold scores after
    training use every clip).
    """
    import tensorflow as tf

    val = val.map(lambda w, t, _, *mask: (w, t, *mask))
    batches, rest = divmod(n_val, global_batch)
    uneven = rest % run.replicas if run.backend == "jax" else 0 < rest < run.replicas
    if rest and uneven:
        if not batches:
            raise DataError(
                f"validation fold has {n_val} clip(s), fewer than one batch of {global_batch} "
                f"over {run.replicas} replicas"
            )
        log(
            f"fit: per-epoch validation leaves out the last {rest} clip(s) (they do not split over "
            f"{run.replicas} replicas); the out-of-fold scores use all of them"
        )
        val = val.take(batches)
    else:
        batches += bool(rest)
    # a known length also spares Keras' "input ran out of data" warning at each epoch
    return val.apply(tf.data.experimental.assert_cardinality(batches))


def pseudo_paths(cfg, classes: list[str]) -> tuple[list[str], int]:
    """(shard paths, windows) of the pseudo-label sets `train.pseudo_shards`, all folds; DataError
    where a set's classes or sample rate (or compression) are not the run's."""
    paths, windows = [], 0
    for folder in cfg.train.pseudo_shards:
        manifest = read_manifest(folder)
        theirs = list(manifest["classes"])
        if theirs != list(classes):
            where = next(
                (
                    f"class {i}: {x!r}, not {y!r}"
                    for i, (x, y) in enumerate(zip(theirs, classes))
                    if x != y
                ),
                "one list ends early",
            )
            raise DataError(
                f"{folder}: pseudo-labels of {len(theirs)} classes are not the run's "
                f"{len(classes)} ({where}); use a teacher of these classes"
            )
        for setting in ("data.sample_rate", "shards.compression"):
            section, key = setting.split(".")
            want = getattr(getattr(cfg, section), key)
            if manifest.get(key) != want:
                raise DataError(
                    f"{folder}: pseudo-labels have {key} {manifest.get(key)!r}, the run's "
                    f"{setting} is {want!r}"
                )
        paths += shard_paths(folder, manifest)
        windows += sum(e["examples"] for e in manifest["shards"])
    if not paths:
        raise DataError(
            f"train.pseudo_shards: no pseudo-labelled windows in {cfg.train.pseudo_shards}"
        )
    return paths, windows


def target_masks(cfg, manifest: dict, log, pseudo: bool) -> bool:
    """Whether the run's clips carry target masks (birdtpu.data.crops.target_mask): when its
    shards hold negative records (Rainforest false-positive boxes: one species known absent, the
    others unknown), or pseudo-labelled windows weigh `train.pseudo_weight` other than 1."""
    negatives = sum(sum(e.get("negatives", {}).values()) for e in manifest["shards"])
    weighted = pseudo and cfg.train.pseudo_weight != 1
    if negatives:
        log(
            f"fit: {negatives} negative record(s) (false-positive boxes) count for their own "
            "species only: per-class target masks on"
        )
    return bool(negatives or weighted)


def run_datasets(cfg, manifest: dict, global_batch: int, run, log, augment):
    """(training batches, validation batches with ids, validation for Keras, training clips);
    `augment`: the AugmentConfig the training pipeline applies.

    With `train.pseudo_ratio` r > 0, training clips are drawn from the pseudo-label sets
    `train.pseudo_shards` at ratio r (`pseudo_paths`, `build_dataset`'s `mix_paths`); the epoch
    keeps one pass over the labelled clips, so the training clips per epoch are the labelled
    ones / (1 - r) (the class balance applies to the labelled ones only).

    A multi-worker run gives tf.distribute one pipeline per worker (`distribute_datasets_from_function`):
    each worker reads its own training shard files, in batches of the per-replica size. The ids'
    validation (out-of-fold predictions, on the chief) reads every clip in one process.
    """
    from birdtpu.data.pipeline import build_dataset

    classes = manifest["classes"]
    samples = int(round(cfg.frontend.clip_seconds * cfg.data.sample_rate))
    train_paths = shard_paths(cfg.shard_dir, manifest, exclude=[cfg.data.fold])
    val_paths = shard_paths(cfg.shard_dir, manifest, folds=[cfg.data.fold])
    if not train_paths or not val_paths:
        raise DataError(
            f"{cfg.shard_dir}: fold {cfg.data.fold} leaves no training or no validation shards"
        )
    common = dict(
        num_classes=len(classes),
        clip_samples=samples,
        compression=cfg.shards.compression,
        seed=cfg.runtime.seed,
        deterministic=cfg.runtime.deterministic,
        sample_rate=cfg.data.sample_rate,
        clip_trim_db=cfg.augment.trim_db if cfg.model.global_features else None,
        log=log,
    )
    n_train = sum(e["examples"] for e in manifest["shards"] if e["fold"] != cfg.data.fold)
    n_val = sum(e["examples"] for e in manifest["shards"] if e["fold"] == cfg.data.fold)
    copies = None
    if cfg.data.min_per_class or cfg.data.max_per_class:
        counts = balance.class_counts(manifest, cfg.data.fold)
        copies = balance.copy_rates(counts, classes, cfg.data.min_per_class, cfg.data.max_per_class)
        before, n_train = n_train, balance.expected_clips(n_train, counts, classes, copies)
        log(
            f"fit: class balance of the training split (min {cfg.data.min_per_class}, max "
            f"{cfg.data.max_per_class} per class): {before} clips -> {n_train} per epoch expected"
        )
    teacher = embeddings = None
    if cfg.train.teacher_predictions or cfg.train.teacher_embeddings:
        from birdtpu.data.prepare import load_catalog

        df, _ = load_catalog(cfg, log=lambda *_: None)
        ids = df.loc[df["fold"] != cfg.data.fold, "filename"].astype(str).tolist()
    if cfg.train.teacher_predictions:
        from birdtpu.train.teacher_targets import teacher_targets

        teacher = teacher_targets(cfg, classes, ids, log)
    if cfg.train.teacher_embeddings:
        from birdtpu.train.teacher_embeddings import training_embeddings

        embeddings = training_embeddings(cfg.train.teacher_embeddings, ids, log)
    ratio, pair = cfg.train.pseudo_ratio, augment.pseudo_mixup_prob if augment else 0.0
    if pair > 0 and not cfg.train.pseudo_shards:  # a recipe's teacher round: nothing to pair with
        log("fit: augment.pseudo_mixup_prob is off: no train.pseudo_shards to pair clips with")
        pair = 0.0
    pseudo = ratio > 0 or pair > 0
    masks = target_masks(cfg, manifest, log, pseudo)
    common["masks"] = masks
    mix = {}
    if pseudo:
        paths, windows = pseudo_paths(cfg, classes)
        log(
            f"fit: {windows} pseudo-labelled windows from {len(cfg.train.pseudo_shards)} set(s): "
            f"sampled in at ratio {ratio}, MixUp'd into labelled clips with probability {pair}"
        )
        mix = dict(
            mix_paths=paths,
            mix_ratio=ratio,
            pair_prob=pair,
            pair_lambda=augment.pseudo_mixup_lambda,
            mix_weight=cfg.train.pseudo_weight if masks else 1.0,
        )
        n_train = int(round(n_train / (1 - ratio)))
    val = build_dataset(
        val_paths,
        batch_size=global_batch,
        training=False,
        with_ids=True,
        trim_db=cfg.augment.trim_db,
        **common,
    )
    if run.workers == 1 or run.backend == "jax":  # JAX: Keras shards the batches per host
        train = build_dataset(
            train_paths,
            batch_size=global_batch,
            training=True,
            augment=augment,
            shuffle_buffer=cfg.train.shuffle_buffer,
            copies=copies,
            teacher=teacher,
            embeddings=embeddings,
            **mix,
            **common,
        )
        return train, val, _keras_validation(val, n_val, global_batch, run, log), n_train

    def train_fn(ctx):
        mine = len(train_paths[ctx.input_pipeline_id :: ctx.num_input_pipelines])
        log(
            f"fit: input pipeline {ctx.input_pipeline_id} of {ctx.num_input_pipelines} reads {mine} of "
            f"{len(train_paths)} training shard files"
        )
        return build_dataset(
            train_paths,
            batch_size=ctx.get_per_replica_batch_size(global_batch),
            training=True,
            augment=augment,
            shuffle_buffer=cfg.train.shuffle_buffer,
            copies=copies,
            teacher=teacher,
            embeddings=embeddings,
            **mix,
            input_context=ctx,
            **common,
        )

    steps = n_val // global_batch
    if not steps:
        raise DataError(
            f"validation fold has {n_val} clip(s), fewer than one global batch of {global_batch}"
        )
    if n_val % global_batch:
        log(
            f"fit: per-epoch validation uses {steps * global_batch} of {n_val} clips (whole global batches on "
            f"{run.workers} workers); the out-of-fold scores use all of them"
        )

    def val_fn(ctx):  # every worker the same number of whole batches: batch j to worker j % workers
        local = ctx.num_replicas_in_sync // ctx.num_input_pipelines
        batches = build_dataset(
            val_paths,
            batch_size=ctx.get_per_replica_batch_size(global_batch),
            training=False,
            trim_db=cfg.augment.trim_db,
            drop_remainder=True,
            **common,
        )
        return batches.shard(ctx.num_input_pipelines, ctx.input_pipeline_id).take(steps * local)

    strategy = run.strategy
    return (
        strategy.distribute_datasets_from_function(train_fn),
        val,
        (strategy.distribute_datasets_from_function(val_fn), steps),
        n_train,
    )
