"""Writing one shard: its recordings decoded, its records written under a temporary name, fsynced,
renamed, then its sidecar; whether a shard is finished; the temporaries a killed write left. No
TensorFlow: the local workers and Beam's run this."""

from __future__ import annotations

import contextlib
import re

import numpy as np

from birdtpu import fs
from birdtpu.data.audio import AudioError, load_audio
from birdtpu.data.shards.plan import ShardPlan, WriteOptions
from birdtpu.data.shards.records import serialize_example, to_pcm16
from birdtpu.data.shards.tfrecord import RecordWriter
from birdtpu.fs import join

_TEMPORARY = re.compile(r"^\..+\.tmp-[0-9a-f]{8}$")  # names from fs.temp_name
NO_SPACE = "free space or choose another shards.dir; finished shards are kept, rerun to resume"


@contextlib.contextmanager
def shard_writer(path: str, compression: str = "", no_space: str = NO_SPACE):
    """A RecordWriter on a temporary name beside `path`, fsynced and renamed to `path` when the
    block ends, removed on any error (a kill leaves it to `remove_temporaries`); a full disk is a
    NoSpaceError with `no_space` as its advice. Its bytes and sha256 are read after the block."""
    tmp = fs.temp_name(path)
    try:
        with RecordWriter(tmp, compression or "") as writer:
            yield writer
        fs.rename(tmp, path)
    except BaseException as err:
        fs.discard(tmp)
        if fs.out_of_space(err):
            raise fs.NoSpaceError(path, no_space) from None
        raise


def write_shard(plan: ShardPlan, out_dir: str, options: WriteOptions, tick=None) -> dict:
    """Decode and write one shard (temporary name, fsynced, then renamed) and its sidecar; returns
    its entry. Its checksum is computed as it is written.

    `tick(recordings, seconds)` is called after each row. Rows of one recording in a row decode it once.
    """
    path = join(out_dir, plan.name)
    rate = options.sample_rate
    per_class: dict[str, int] = {}
    negatives: dict[str, int] = {}
    skipped: list[dict] = []
    examples, recordings, seconds = 0, 0, 0.0
    current, wave, error = None, None, None
    with shard_writer(path, options.compression) as writer:
        for row in plan.rows:
            if row["filepath"] != current:
                current = row["filepath"]
                try:
                    wave, error = (
                        load_audio(
                            current,
                            rate,
                            None if options.channel < 0 else options.channel,
                            options.read_seconds,
                            decoder=options.decoder,
                        )[0],
                        None,
                    )
                except AudioError as err:
                    wave, error = None, err.reason
            written = 0.0
            if error:
                skipped.append({"file": current, "reason": error})
            else:
                for start, end in row["windows"]:
                    pcm = to_pcm16(wave[int(round(start * rate)) : int(round(end * rate))])
                    if not len(pcm):
                        skipped.append(
                            {
                                "file": current,
                                "reason": f"window {start}-{end} s starts after the "
                                f"decoded end ({len(wave) / rate:.2f} s)",
                            }
                        )
                        continue
                    writer.write(_record(row, pcm, rate, plan.fold, start))
                    counts = per_class if row["positive"] else negatives
                    counts[row["label"]] = counts.get(row["label"], 0) + 1
                    examples += 1
                    written += len(pcm) / rate
                recordings += 1
            seconds += written
            if tick:
                tick(1, written)
    entry = {
        "file": plan.name,
        "fold": plan.fold,
        "examples": examples,
        "recordings": recordings,
        "seconds": round(seconds, 3),
        "bytes": writer.bytes,
        "sha256": writer.sha256,
        "per_class": per_class,
        "negatives": negatives,
        "skipped": skipped,
        "fingerprint": plan.fingerprint,
    }
    fs.write_json(path + ".json", entry)
    return entry


def _record(row: dict, pcm: np.ndarray, rate: int, fold: int, start: float) -> bytes:
    box = None
    if row["box"] is not None:  # times from the start of this record
        box = (round(row["box"][0] - start, 4), round(row["box"][1] - start, 4), *row["box"][2:])
    return serialize_example(
        pcm,
        rate,
        row["target"],
        row["label_index"],
        fold,
        row["filename"],
        row["source"],
        row["seconds"],
        start,
        box,
        row["positive"],
    )


def finished_entries(
    out_dir: str, keys: list[tuple[str, str]], verb: str, log, verify: bool = False
) -> dict[str, dict | None]:
    """{name: its finished entry, or None where it must be (re)written} for the (name,
    fingerprint) `keys` of a plan (`finished_entry`); logs how many are already written."""
    entries = {name: finished_entry(out_dir, name, fp, verify) for name, fp in keys}
    done = sum(e is not None for e in entries.values())
    if done:
        log(f"{verb}: resuming, {done} of {len(entries)} shards already written")
    return entries


def finished_entry(out_dir: str, name: str, fingerprint: str, verify: bool = False) -> dict | None:
    """The sidecar entry of finished shard `name` of the plan with `fingerprint`, or None where it
    must be (re)written. The shard's size must match its sidecar, and with `verify` its sha256 too."""
    path = join(out_dir, name)
    sidecar = path + ".json"
    if not (fs.exists(sidecar) and fs.exists(path)):
        return None
    try:
        entry = fs.read_json(sidecar)
    except ValueError:
        return None
    if entry.get("fingerprint") != fingerprint or entry.get("bytes") != fs.size(path):
        return None
    if verify and entry.get("sha256") != fs.sha256(path):
        return None
    return entry


def remove_temporaries(out_dir: str) -> int:
    """Delete the temporary files an interrupted write left in `out_dir`; returns how many."""
    names = [n for n in fs.listdir(out_dir) if _TEMPORARY.match(n)]
    for name in names:
        fs.remove(join(out_dir, name))
    return len(names)
