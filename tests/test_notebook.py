"""`birdtpu.notebook.display_audio`: the player holds the row's audio, the picture its spectrogram."""

import io
import os

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from PIL import Image

from birdtpu.data.audio import load_audio
from birdtpu.data.catalog import read_birdclef, read_table, write_table

pytest.importorskip("IPython")  # every notebook has it; setup.cfg's dev extra should list it

from birdtpu.notebook import display_audio  # noqa: E402

CLIP = os.path.join(os.path.dirname(__file__), "data", "catalog", "audio", "2021-B32-0415_05-3.wav")


def catalog_row(tmp_path, secondary="['eurbla']"):
    """A row of a real catalog table (written and read back) for the real great tit clip."""
    audio = tmp_path / "train_audio" / "gretit1"
    audio.mkdir(parents=True)
    (audio / "song.wav").write_bytes(open(CLIP, "rb").read())
    (tmp_path / "train_metadata.csv").write_text(
        f'primary_label,secondary_labels,filename\ngretit1,"{secondary}",gretit1/song.wav\n'
    )
    write_table(read_birdclef(str(tmp_path)), str(tmp_path / "table.csv"))
    return read_table(str(tmp_path / "table.csv")).iloc[0]


def test_display_audio_returns_what_it_shows(tmp_path, capsys):
    row = catalog_row(tmp_path)
    shown = display_audio(row, sample_rate=16000)
    assert shown.labels == ["gretit1", "eurbla"] and shown.sample_rate == 16000
    printed = capsys.readouterr().out  # outside a notebook, IPython prints the objects' reprs
    assert "Audio object" in printed and "Image object" in printed

    wave, rate = load_audio(row["filepath"], 16000, max_seconds=30.0)
    np.testing.assert_array_equal(shown.wave, wave)
    played, played_rate = sf.read(io.BytesIO(shown.audio.data), dtype="float32")
    assert played_rate == rate and len(played) == len(wave)
    np.testing.assert_allclose(
        played, wave / np.abs(wave).max(), atol=2 / 32767
    )  # normalised for listening

    with Image.open(io.BytesIO(shown.image.data)) as img:
        assert img.format == "PNG" and img.size == (1000, 450)
        assert (
            len(img.convert("RGB").getcolors(1 << 20) or range(300)) > 256
        )  # a spectrogram, not a blank


def test_display_audio_labels_and_limits(tmp_path, capsys):
    row = catalog_row(tmp_path, secondary="[]").to_dict()
    shown = display_audio(row, sample_rate=8000, max_seconds=1.0, show=False)
    assert shown.labels == ["gretit1"] and len(shown.wave) == 8000
    assert capsys.readouterr().out == ""
    text_row = pd.Series(
        {"filepath": row["filepath"], "label": "gretit1", "labels": "['gretit1', 'blutit']"}
    )
    assert display_audio(text_row, 8000, 0.5, show=False).labels == ["gretit1", "blutit"]
