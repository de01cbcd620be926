"""The Freesound 2019 global features over the whole clip: the winners' numbers, computed once per
recording in tf.data, mixed with the waveforms, and given to a model beside its crops."""

import numpy as np
import pytest
import tensorflow as tf
from test_pipeline import shards  # noqa: F401 (fixture)

from birdtpu.config import AugmentConfig
from birdtpu.data.clip_features import PERCENTILES, STATISTICS, clip_features, clip_inputs
from birdtpu.data.crops import trimmed
from birdtpu.data.pipeline import build_dataset
from birdtpu.data.shards import parse_example
from birdtpu.layers.mix_ops import cutmix, mixup


def get_global_feat(x, num_steps):
    """The winners' function (github.com/qrfaction/1st-Freesound-Audio-Tagging-2019), as written."""
    stride = len(x) / num_steps
    ts = []
    for s in range(num_steps):
        i = s * stride
        wl = max(0, int(i - stride / 2))
        wr = int(i + 1.5 * stride)
        local_x = x[wl:wr]
        percent_feat = np.percentile(local_x, [0, 1, 25, 30, 50, 60, 75, 99, 100]).tolist()
        range_feat = local_x.max() - local_x.min()
        ts.append([np.mean(local_x), np.std(local_x), range_feat] + percent_feat)
    ts = np.array(ts)
    assert ts.shape == (128, 12), (len(x), ts.shape)
    return ts


@pytest.mark.parametrize("n", [128, 1001, 13_231, 44_100 * 5 + 17, 44_100 * 30])
def test_features_equal_the_winners_function(n):
    rng = np.random.default_rng(n)
    x = (rng.standard_normal(n) * rng.uniform(0.01, 0.5)).astype(np.float32)
    x[: n // 3] *= 0.01  # a quiet start: windows differ
    out = clip_features(x).numpy()
    assert out.shape == (128, len(STATISTICS)) and len(PERCENTILES) == 9
    np.testing.assert_allclose(out, get_global_feat(x, 128), rtol=0, atol=1e-6)


def test_a_clip_shorter_than_the_windows_is_padded():
    x = np.linspace(-1, 1, 50, dtype=np.float32)
    padded = np.concatenate([x, np.zeros(78, np.float32)])
    np.testing.assert_allclose(clip_features(x).numpy(), get_global_feat(padded, 128), atol=1e-6)
    one = clip_inputs(tf.constant(x), 16000)
    assert one["clip_seconds"].numpy().tolist() == [pytest.approx(50 / 16000)]


@pytest.mark.slow
def test_pipeline_gives_every_crop_its_whole_recordings_features(shards):  # noqa: F811
    """Training crops and evaluation clips carry the features of the whole trimmed recording, the
    same for every crop of it, not of the crop."""
    _, paths = shards
    want = {}
    for ex in tf.data.TFRecordDataset(paths).map(lambda r: parse_example(r, 3)):
        whole = trimmed(ex["audio"], 40.0)
        want[ex["id"].numpy().decode()] = {
            k: v.numpy() for k, v in clip_inputs(whole, ex["sample_rate"]).items()
        }
    quiet = AugmentConfig(noise_prob=0.0, mixup_prob=0.0)
    for training in (True, False):
        ds = build_dataset(
            paths, 3, 8000, 4, training, quiet, seed=1, with_ids=True, clip_trim_db=40.0
        )
        seen = 0
        for x, _, ids in ds.take(4):
            assert set(x) == {"waveform", "clip_features", "clip_seconds"}
            for j, clip_id in enumerate(ids.numpy()):
                ref = want[clip_id.decode()]
                np.testing.assert_allclose(x["clip_features"][j], ref["clip_features"], atol=1e-6)
                np.testing.assert_allclose(x["clip_seconds"][j], ref["clip_seconds"], atol=1e-6)
                assert ref["clip_seconds"][0] > 8000 / 16000  # the recording, not the 0.5-s crop
                seen += 1
        assert seen >= 4


@pytest.mark.backends
@pytest.mark.parametrize("mix", [mixup, cutmix])
def test_clip_inputs_mix_with_the_waveforms(mix):
    """MixUp/CutMix mix the clip inputs by the share of each part the waveform got."""
    import keras

    rng = np.random.default_rng(0)
    wave = keras.ops.convert_to_tensor(rng.standard_normal((8, 400)).astype("float32"))
    # a clip input holding its own example's index: mixed, it tells each part's share
    index = np.arange(8, dtype="float32")
    feats = np.repeat(index[:, None, None], 12, axis=2).repeat(3, axis=1)
    x = {
        "waveform": wave,
        "clip_features": keras.ops.convert_to_tensor(feats),
        "clip_seconds": keras.ops.convert_to_tensor(index[:, None]),
    }
    y = keras.ops.convert_to_tensor(np.eye(8, dtype="float32"))
    seed = keras.ops.cast(keras.ops.convert_to_tensor([3, 4]), "int32")
    out, target = mix(x, y, seed, 1.0, 1.0)
    target = keras.ops.convert_to_numpy(target)
    mixed_index = target @ index  # the targets' share of each example, times its index
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(out["clip_seconds"])[:, 0], mixed_index, atol=1e-5
    )
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(out["clip_features"]),
        np.broadcast_to(mixed_index[:, None, None], (8, 3, 12)),
        atol=1e-5,
    )
    assert not np.allclose(mixed_index, index)  # something was mixed


@pytest.mark.slow
def test_a_global_feature_run_fits_predicts_and_exports(tmp_path):
    """`birdtpu fit` of a fat2019 model with the clip inputs, `predict` with it and with its
    TFLite, ONNX and OpenVINO exports (mel front end on the host) in fresh processes: the same
    submission; a runner fed no clip inputs says what it needs."""
    import pandas as pd
    from conftest import NO_RANDOM_LAYERS, run_cli, tiny_overrides

    from birdtpu import fs
    from birdtpu.errors import DataError
    from birdtpu.infer.runners import open_model

    sets = [
        *NO_RANDOM_LAYERS,
        "model.global_features=true",
        "augment.trim_db=60",
        "augment.mixup_prob=1.0",
        "train.steps_per_epoch=1",
    ]
    args = [a for o in tiny_overrides(tmp_path, *sets) for a in ("--set", o)]
    fit = run_cli("fit", *args)
    assert fit.returncode == 0, fit.stderr[-2000:]
    run = tmp_path / "runs" / "tiny"
    assert fs.read_json(str(run / "model.json"))["clip_trim_db"] == 60
    with pytest.raises(DataError, match="takes the clip inputs"):
        open_model(str(run / "model.keras"))(np.zeros((1, 32000), np.float32))

    def predict(model: str, name: str) -> pd.DataFrame:
        out = tmp_path / f"{name}.csv"
        sets = ("--set", f"infer.model={model}", "--set", f"infer.submission={out}")
        done = run_cli("predict", *args, *sets)
        assert done.returncode == 0, done.stderr[-2000:]
        return pd.read_csv(out)

    want = predict(str(run / "model.keras"), "keras")
    assert len(want) > 0
    # every export in this process, against the Keras model on a soundscape's windows with its
    # clip inputs; then the ONNX one through `birdtpu predict` in a fresh process
    from birdtpu.data.audio import load_audio
    from birdtpu.infer.clip_inputs import recording_clip_inputs
    from birdtpu.infer.export import export_model
    from birdtpu.infer.windows import windows

    keras_runner = open_model(str(run / "model.keras"))
    scape = sorted((tmp_path / "data" / "soundscapes").glob("*.ogg"))[0]
    wave, _ = load_audio(str(scape), 16000)
    batch, _ = windows(wave, 16000, 2.0)
    clip = recording_clip_inputs(keras_runner, wave)
    expected = keras_runner(batch, clip)
    exports = {}
    for fmt in ("tflite", "onnx", "openvino"):
        exports[fmt] = export_model(str(run / "model.keras"), fmt, log=lambda *_: None)["path"]
        np.testing.assert_allclose(open_model(exports[fmt])(batch, clip), expected, atol=1e-4)
    got = predict(exports["onnx"], "onnx")
    assert got.row_id.tolist() == want.row_id.tolist()
    np.testing.assert_allclose(got.iloc[:, 1:], want.iloc[:, 1:], atol=1e-4)
