"""Per-class target masks: a Rainforest false-positive box is a negative for its own species only,
pseudo-labelled windows weigh train.pseudo_weight, and a labelled clip MixUp'd with a pseudo
window (augment.pseudo_mixup_prob) mixes targets and masks by their shares."""

import os
import types

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from test_pseudo_mix import CLASSES, QUIET, RATE, SOFT, config, is_pseudo, sets  # noqa: F401
from test_shards import catalog, noise_wav

from birdtpu.config import AugmentConfig, ShardConfig, load_config
from birdtpu.data.pipeline import build_dataset
from birdtpu.data.shards import build_shards, shard_paths
from birdtpu.layers.mix_ops import cutmix, mixup
from birdtpu.train.datasets import pseudo_paths, run_datasets, target_masks
from birdtpu.train.losses import PerClassBinaryLoss


@pytest.fixture(scope="module")
def fp_shards(tmp_path_factory):
    """Shards of 8 clips, folds 0/1: clips 2 and 5 are false-positive boxes of species b and c."""
    root = tmp_path_factory.mktemp("fp")
    wavs = [noise_wav(root / f"{i}.wav", 1.0, RATE, seed=i) for i in range(8)]
    labels = [CLASSES[i % 3] for i in range(8)]
    df = catalog(
        wavs, labels, [i % 2 for i in range(8)], positive=[i not in (2, 5) for i in range(8)]
    )
    out = str(root / "shards")
    manifest = build_shards(df, CLASSES, out, RATE, ShardConfig(workers=1), log=lambda *_: None)
    return out, manifest


def eval_batches(shards, masks=True):
    out, manifest = shards
    ds = build_dataset(shard_paths(out, manifest), 3, RATE, 8, False, with_ids=True, masks=masks)
    return [tuple(x.numpy() for x in batch) for batch in ds]


def test_a_false_positive_box_knows_only_its_own_species(fp_shards):
    rows = {}
    for _, targets, ids, masks in eval_batches(fp_shards):
        rows.update({i.decode(): (t, m) for i, t, m in zip(ids, targets, masks)})
    for name, (target, mask) in rows.items():
        i = int(name.rsplit("/", 1)[-1].split(".")[0])  # the clip's wav, <i>.wav
        if i in (2, 5):  # absent: its own species known (target 0), the others unknown
            assert target.tolist() == [0, 0, 0]
            assert mask.tolist() == np.eye(3)[i % 3].tolist()
        else:
            assert target.tolist() == np.eye(3)[i % 3].tolist() and mask.tolist() == [1, 1, 1]
    assert len(rows) == 8
    # without masks the elements are as before: (wave, target, id)
    assert all(len(b) == 3 for b in eval_batches(fp_shards, masks=False))


def test_masks_switch_on_for_negatives_and_for_weighted_pseudo_labels(fp_shards, sets):  # noqa: F811
    lines = []
    cfg = load_config(None, [])
    assert target_masks(cfg, fp_shards[1], lines.append, pseudo=False)
    assert "2 negative record(s)" in lines[0]
    assert not target_masks(cfg, sets[1], lines.append, pseudo=True)
    weighted = load_config(None, ["train.pseudo_weight=0.5"])
    assert target_masks(weighted, sets[1], lines.append, pseudo=True)
    assert not target_masks(weighted, sets[1], lines.append, pseudo=False)


@pytest.mark.backends
@pytest.mark.parametrize("gamma", [0.0, 2.0])
def test_a_masked_class_adds_nothing_to_the_loss_or_its_gradient(gamma):
    y = np.array([[0, 0, 0], [1, 0, 0]], np.float32)  # row 0: a false-positive box of class 1
    w = np.array([[0, 1, 0], [1, 1, 1]], np.float32)
    p = keras.Variable(np.array([[0.9, 0.3, 0.8], [0.6, 0.2, 0.1]], np.float32))
    loss = PerClassBinaryLoss(gamma=gamma)
    # Keras' formulas, hand-written: bce = -(y log p + (1 - y) log(1 - p)); focal (1 - p_t)^gamma
    pv = p.numpy()
    p_t = y * pv + (1 - y) * (1 - pv)
    terms = (1 - p_t) ** gamma * -(y * np.log(pv) + (1 - y) * np.log(1 - pv))
    assert float(loss(y, p, sample_weight=w)) == pytest.approx((terms * w).sum() / 6, rel=1e-5)
    assert float(loss(y, p)) == pytest.approx(terms.mean(), rel=1e-5)
    if keras.backend.backend() == "tensorflow":
        with tf.GradientTape() as tape:
            value = loss(y, p.value, sample_weight=w)
        grad = tape.gradient(value, p.value).numpy()
    else:
        import jax

        grad = np.asarray(jax.grad(lambda q: loss(y, q, sample_weight=w))(p.value))
    assert (grad[w == 0] == 0).all() and (grad[w > 0] != 0).all()


@pytest.mark.backends
def test_the_masked_loss_trains_through_fit_with_class_weights_per_clip():
    """Keras fit takes (wave, target, mask) batches: the loss it reports is the masked mean."""
    x = np.random.default_rng(0).normal(size=(4, 5)).astype(np.float32)
    y = np.array([[1, 0], [0, 0], [0, 1], [1, 1]], np.float32)
    w = np.array([[1, 1], [0, 1], [1, 1], [1, 0]], np.float32)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(2, activation="sigmoid")])
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss=PerClassBinaryLoss())
    p = model.predict(x, verbose=0)
    expected = (-(y * np.log(p) + (1 - y) * np.log(1 - p)) * w).sum() / y.size
    history = model.fit(x, y, sample_weight=w, batch_size=4, epochs=1, verbose=0)
    assert history.history["loss"][0] == pytest.approx(expected, rel=1e-5)


@pytest.mark.backends
@pytest.mark.parametrize("mix", [mixup, cutmix])
def test_masks_mix_as_weighted_targets_do(mix):
    """The masks of a mixed batch are mixed with the same partners and shares as the targets."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(8, 64)).astype(np.float32)
    y = (rng.random((8, 3)) > 0.5).astype(np.float32)
    w = (rng.random((8, 3)) > 0.3).astype(np.float32)
    seed = np.array([3, 4], np.int32)
    _, y_mixed, w_mixed = mix(x, y, seed, 1.0, 0.4, "weight", w=w)
    _, w_as_targets = mix(x, w, seed, 1.0, 0.4, "weight")
    np.testing.assert_allclose(np.asarray(w_mixed), np.asarray(w_as_targets), atol=1e-6)
    assert not np.allclose(np.asarray(w_mixed), w)  # something was mixed
    np.testing.assert_allclose(np.asarray(mix(x, y, seed, 1.0, 0.4, "weight")[1]), y_mixed)


def paired(sets, n, prob, lam, augment=QUIET, **kw):  # noqa: F811
    labelled, manifest, _ = sets
    mix, _ = pseudo_paths(config(sets), CLASSES)
    ds = build_dataset(
        shard_paths(labelled, manifest),
        3,
        RATE,
        64,
        True,
        augment,
        seed=5,
        deterministic=True,
        mix_paths=mix,
        pair_prob=prob,
        pair_lambda=lam,
        **kw,
    )
    return [tuple(x.numpy() for x in batch) for batch in ds.take(n)]


def test_each_labelled_clip_is_mixed_with_a_pseudo_window(sets):  # noqa: F811
    batches = paired(sets, 2, 1.0, 0.75, masks=True, mix_weight=0.5)
    targets = np.concatenate([b[1] for b in batches])
    masks = np.concatenate([b[2] for b in batches])
    labelled = (targets > 0.7).argmax(1)  # 0.75 of the one-hot label plus 0.25 of a soft target
    for t, k in zip(targets, labelled):
        assert any(np.allclose(t, 0.75 * np.eye(3)[k] + 0.25 * s) for s in SOFT)
    np.testing.assert_allclose(masks, 0.75 + 0.25 * 0.5)  # 1 for the clip, 0.5 for the window
    waves = np.concatenate([b[0] for b in batches])
    assert waves.dtype == np.float32 and np.abs(waves).max() <= 1.0


@pytest.mark.slow
def test_the_paired_share_is_the_probability_and_max_labels_apply(sets):  # noqa: F811
    targets = np.concatenate([b[1] for b in paired(sets, 16, 0.3, 0.5)])
    assert abs(is_pseudo(targets).mean() - 0.3) < 0.04
    max_mode = AugmentConfig(noise_prob=0.0, mixup_prob=0.0, mix_labels="max")
    targets = np.concatenate([b[1] for b in paired(sets, 2, 1.0, 0.5, augment=max_mode)])
    assert (targets.max(1) == 1.0).all()  # the labelled class keeps 1 under max


def test_pairing_without_pseudo_shards_is_off_and_weights_need_masks(sets):  # noqa: F811
    cfg = config(sets, "train.batch_size=4")
    cfg.train.pseudo_shards = []  # a recipe's teacher (round 0): pairing is off, and says so
    run = types.SimpleNamespace(workers=1, backend="tensorflow", replicas=1)
    lines = []
    paired_quiet = AugmentConfig(noise_prob=0.0, mixup_prob=0.0, pseudo_mixup_prob=0.5)
    train, *_ = run_datasets(cfg, sets[1], 4, run, lines.append, paired_quiet)
    assert (
        "fit: augment.pseudo_mixup_prob is off: no train.pseudo_shards to pair clips with" in lines
    )
    assert set(next(iter(train))[1].numpy().sum(1)) == {1.0}  # labelled one-hot targets only
    with pytest.raises(ValueError, match="mix_weight other than 1 needs masks=True"):
        paired(sets, 1, 1.0, 0.5, mix_weight=0.5)


def write_rainforest(root, rate=16000):
    """A Rainforest layout: 6 recordings of 8 s, tp boxes of species 1-3, and fp boxes (verified
    absences) in 3 of them."""
    from birdtpu.data.audio import write_audio

    (root / "train").mkdir(parents=True)
    rng = np.random.default_rng(0)
    tp, fp = [], []
    for i in range(6):
        rid = f"rec{i:03d}"
        write_audio(str(root / "train" / f"{rid}.flac"), rng.uniform(-0.3, 0.3, 8 * rate), rate)
        tp.append(f"{rid},{i % 3 + 1},1,1.0,500.0,3.0,4000.0")
        if i % 2:
            fp.append(f"{rid},{(i + 1) % 3 + 1},1,4.5,800.0,6.0,5000.0")
    header = "recording_id,species_id,songtype_id,t_min,f_min,t_max,f_max\n"
    (root / "train_tp.csv").write_text(header + "\n".join(tp) + "\n")
    (root / "train_fp.csv").write_text(header + "\n".join(fp) + "\n")


@pytest.mark.slow
def test_fit_on_tp_and_fp_boxes_with_masks(tmp_path):
    """tp and fp boxes of the same recordings in one table: fit trains and validates with the
    masks and writes the out-of-fold tables."""
    from conftest import tiny_overrides

    from birdtpu.cli import main
    from birdtpu.train.fit import fit

    write_rainforest(tmp_path / "rfcx")
    table = str(tmp_path / "table.csv")
    sources = [f"rfcx-tp={tmp_path / 'rfcx'}", f"rfcx-fp={tmp_path / 'rfcx'}"]
    args = ["catalog", "--source", sources[0], "--source", sources[1], "--folds", "2"]
    assert main([*args, "--group-by", "recording", "--out", table]) == 0
    overrides = tiny_overrides(tmp_path, f"data.table={table}", "data.num_folds=2")
    overrides += ["data.synthesize=false", "shards.crop=boxes", "shards.max_seconds=4"]
    overrides += ["train.loss=bce", "model.activation=sigmoid", "augment.mixup_prob=1.0"]
    cfg = load_config(None, [*overrides, "model.name=fat2019", "model.width=0.125"])
    lines = []
    fit(cfg, log=lines.append)
    assert any("3 negative record(s)" in line and "masks on" in line for line in lines), lines
    history = pd.read_csv(os.path.join(cfg.run_dir, "history.csv"))
    assert np.isfinite(history[["loss", "val_loss", "val_auc"]].to_numpy()).all()
    oof = pd.read_csv(os.path.join(cfg.run_dir, "oof_fold0.csv"))
    assert list(oof.columns[1:]) == ["1", "2", "3"] and len(oof) > 0


def test_band_limit_keeps_only_the_box_band():
    from birdtpu.data.crops import band_limit

    t = np.arange(RATE) / RATE
    wave = (0.3 * np.sin(2 * np.pi * 500 * t) + 0.3 * np.sin(2 * np.pi * 3000 * t)).astype("f4")
    out = band_limit(tf.constant(wave), 1000.0, 4000.0, RATE).numpy()
    np.testing.assert_allclose(out, 0.3 * np.sin(2 * np.pi * 3000 * t), atol=1e-4)


def test_box_band_limits_box_crops_in_training_only(tmp_path):
    """augment.box_band: a clip of a record with a box keeps only f_min..f_max; one without a
    box, and every validation clip, keeps its whole spectrum."""
    from birdtpu.data.audio import write_audio

    t = np.arange(2 * RATE) / RATE
    wave = 0.2 * np.sin(2 * np.pi * 500 * t) + 0.2 * np.sin(2 * np.pi * 3000 * t)
    paths = []
    for i in range(2):
        paths.append(str(tmp_path / f"{i}.wav"))
        write_audio(paths[-1], wave.astype("f4"), RATE)
    boxed = dict(
        t_min=[0.2, np.nan], t_max=[1.8, np.nan], f_min=[2000.0, np.nan], f_max=[4000.0, np.nan]
    )
    df = catalog(paths, ["a", "b"], [0, 0], **boxed)
    out = str(tmp_path / "shards")
    manifest = build_shards(df, CLASSES, out, RATE, ShardConfig(workers=1), log=lambda *_: None)
    shards = shard_paths(out, manifest)
    band = AugmentConfig(
        noise_prob=0.0, mixup_prob=0.0, box_band=True, crop="start", pad="constant"
    )

    def low_energy(training):
        ds = build_dataset(
            shards, 3, RATE, 2, training, band, seed=0, deterministic=True, with_ids=True
        )
        waves, _, ids = next(iter(ds))
        spectrum = np.abs(np.fft.rfft(waves.numpy(), axis=1))
        low = spectrum[:, :1000].sum(1) / spectrum.sum(1)  # 1-s clips: bin k is k Hz
        return dict(zip([i.decode().split("/")[-1] for i in ids.numpy()], low))

    trained = low_energy(True)
    assert trained["0.wav"] < 1e-3 and trained["1.wav"] > 0.3
    assert min(low_energy(False).values()) > 0.3
