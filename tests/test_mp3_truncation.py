"""An MP3 whose header only estimates its length (an ID3v2 tag, no Xing frame) is whole when it
decodes whole; one cut inside its last frame is truncated (issue 22, item 2)."""

import numpy as np
import soundfile as sf
from test_shards import catalog

from birdtpu.config import ShardConfig
from birdtpu.data.audio import check_audio, container_problem, load_audio
from birdtpu.data.mp3 import counts_frames
from birdtpu.data.shards import build_shards

RATE = 44100
KBPS = (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)  # MPEG-1 layer III


def _id3v2(size: int) -> bytes:
    """An ID3v2.3 tag of about `size` bytes: one TXXX frame (a long comment)."""
    body = b"\x00comment\x00" + b"x" * (size - 31)
    frame = b"TXXX" + len(body).to_bytes(4, "big") + b"\x00\x00" + body
    n = len(frame)
    syncsafe = bytes([(n >> 21) & 127, (n >> 14) & 127, (n >> 7) & 127, n & 127])
    return b"ID3\x03\x00\x00" + syncsafe + frame


def tagged_mp3(path, seconds: float = 2.35) -> str:
    """A constant-bitrate MP3 from libsndfile's LAME encoder, its Xing frame removed (as many
    encoders write none) and a 2 kB ID3v2 tag in front, as cameras and tag editors leave."""
    wave = 0.3 * np.random.default_rng(0).standard_normal(int(RATE * seconds))
    raw = str(path) + ".raw.mp3"
    with sf.SoundFile(
        raw,
        "w",
        RATE,
        1,
        format="MP3",
        subtype="MPEG_LAYER_III",
        bitrate_mode="CONSTANT",
        compression_level=0.5,
    ) as fh:
        for i in range(0, len(wave), RATE):
            fh.write(wave[i : i + RATE].astype(np.float32))
    data = open(raw, "rb").read()
    assert b"Xing" in data[:200] or b"Info" in data[:200]
    head = int.from_bytes(data[:4], "big")
    first = 144000 * KBPS[(head >> 12) & 15] // RATE + ((head >> 9) & 1)  # the Xing frame
    open(path, "wb").write(_id3v2(2048) + data[first:])
    return str(path)


def test_a_whole_tagged_mp3_without_xing_is_not_truncated(tmp_path):
    path = tagged_mp3(tmp_path / "tagged.mp3")
    header = sf.info(path).frames
    decoded = len(sf.read(path)[0])
    assert decoded < header * 0.98  # the case of the issue: the estimate is over 2% too long
    assert not counts_frames(path) and container_problem(path) is None
    assert check_audio(path) is None
    wave, rate = load_audio(path)
    assert rate == RATE and abs(len(wave) / RATE - 2.35) < 0.05


def test_a_tagged_mp3_cut_inside_its_last_frame_is_truncated(tmp_path):
    data = open(tagged_mp3(tmp_path / "whole.mp3"), "rb").read()
    for cut in (len(data) - 100, len(data) // 2):
        path = tmp_path / f"cut{cut}.mp3"
        path.write_bytes(data[:cut])
        assert check_audio(str(path)).startswith("truncated (last MPEG frame ends at byte ")


def test_an_mp3_with_a_frame_count_is_still_checked_by_decoded_length(tmp_path):
    path = tmp_path / "xing.mp3"
    with sf.SoundFile(str(path), "w", 16000, 1, format="MP3", subtype="MPEG_LAYER_III") as fh:
        fh.write(0.3 * np.random.default_rng(1).standard_normal(32000).astype(np.float32))
    assert counts_frames(str(path)) and check_audio(str(path)) is None
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert check_audio(str(path)).startswith("truncated (decoded ")


def test_shard_keeps_the_tagged_mp3(tmp_path):
    paths = [tagged_mp3(tmp_path / f"{i}.mp3", 1.5 + i) for i in range(2)]
    lines = []
    manifest = build_shards(
        catalog(paths, ["a", "b"], [0, 1]),
        ["a", "b"],
        str(tmp_path / "shards"),
        32000,
        ShardConfig(workers=1),
        log=lines.append,
    )
    assert manifest["skipped"] == [] and manifest["recordings"] == 2, lines
