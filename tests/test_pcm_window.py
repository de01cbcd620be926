"""`parse_header` + `pcm_window` read exactly the samples `parse_example` decodes, at every size."""

import numpy as np
import pytest
import tensorflow as tf

from birdtpu.data.shards import parse_example, parse_header, pcm_window, serialize_example

CLASSES = 3


def record(samples: int, clip_id: str = "a/b.ogg") -> tuple[bytes, np.ndarray]:
    pcm = np.random.default_rng(samples).integers(-32768, 32767, samples, dtype=np.int16)
    return serialize_example(
        pcm, 16000, np.eye(CLASSES)[1], 1, 0, clip_id, "test", samples / 16000
    ), pcm


# byte lengths on both sides of each varint width (1, 2, 3 and 4 bytes), and an empty record
@pytest.mark.parametrize("samples", [0, 1, 63, 64, 8191, 8192, 1048575, 1048576, 1500000])
def test_windows_equal_the_full_parse(samples):
    raw, pcm = record(samples)
    header = parse_header(tf.constant(raw), CLASSES)
    assert int(header["pcm_at"]) > 0
    full = parse_example(tf.constant(raw), CLASSES)
    np.testing.assert_array_equal(np.round(full["audio"].numpy() * 32767).astype(np.int16), pcm)
    for start, length in [
        (0, 10),
        (samples // 3, 1000),
        (max(samples - 5, 0), 10),
        (samples + 3, 4),
    ]:
        window = pcm_window(header, start, length).numpy()
        np.testing.assert_array_equal(window, pcm[start : start + length])
    assert int(header["num_samples"]) == samples and header["id"].numpy() == b"a/b.ogg"


def test_id_length_moves_the_outer_prefix_not_the_window():
    for clip_id in ["x", "y" * 200, "z" * 20000]:
        raw, pcm = record(5000, clip_id)
        np.testing.assert_array_equal(
            pcm_window(parse_header(tf.constant(raw), CLASSES), 100, 50).numpy(), pcm[100:150]
        )


def test_a_record_laid_out_otherwise_is_parsed_in_full():
    """A writer that puts another feature before `audio` (here `aaa`): no offset, same samples."""
    raw, pcm = record(3000)
    example = tf.train.Example.FromString(raw)
    example.features.feature["aaa"].int64_list.value.append(7)
    other = example.SerializeToString(deterministic=True)
    header = parse_header(tf.constant(other), CLASSES)
    assert int(header["pcm_at"]) == -1
    np.testing.assert_array_equal(pcm_window(header, 2990, 20).numpy(), pcm[2990:])


def test_windows_inside_a_dataset_map():
    raws = [record(n)[0] for n in (100, 20000, 0)]
    pcms = [record(n)[1] for n in (100, 20000, 0)]
    ds = tf.data.Dataset.from_tensor_slices(raws).map(
        lambda r: pcm_window(parse_header(r, None), 50, 64)
    )
    for got, pcm in zip(ds, pcms):
        np.testing.assert_array_equal(got.numpy(), pcm[50:114])
