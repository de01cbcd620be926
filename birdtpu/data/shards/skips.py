"""When a shard set's skipped recordings make it unusable: nothing written, or more skipped than
`shards.max_skipped` allows. The error is one line naming the first files and why."""

from __future__ import annotations

import os

from birdtpu import fs
from birdtpu.errors import DataError

NOT_FOUND = "unreadable (file not found)"


def _first(paths: list[str], n: int = 3) -> tuple[str, str]:
    """(the folder the first `n` paths share, their names relative to it with a count of the rest)."""
    shown = paths[:n]
    if all(not fs.is_remote(p) for p in shown):
        folder = os.path.commonpath([os.path.dirname(p) for p in shown]) if shown else ""
        names = [os.path.relpath(p, folder) for p in shown]
    else:
        folder, names = os.path.dirname(shown[0]), [os.path.basename(p) for p in shown]
    more = f" and {len(paths) - n} more" if len(paths) > n else ""
    return folder, ", ".join(names) + more


def why(skipped: list[dict]) -> str:
    """The skipped files in a few words: those not found (with the folder searched) first, then the
    first other files with their reason."""
    missing = [s["file"] for s in skipped if s["reason"] == NOT_FOUND]
    parts = []
    if missing:
        folder, names = _first(missing)
        parts.append(f"{len(missing)} not found in {folder}: {names}")
    other = [s for s in skipped if s["reason"] != NOT_FOUND]
    if other:
        shown = "; ".join(f"{s['file']}: {s['reason']}" for s in other[:2])
        parts.append(f"{len(other)} unusable, e.g. {shown}")
    return "; ".join(parts)


def check_skipped(manifest: dict, max_skipped: float, out_dir: str) -> None:
    """DataError where the set holds no clip, or skipped more than `max_skipped` of its inputs."""
    skipped, inputs = manifest["skipped"], max(manifest["inputs"], 1)
    if not manifest["examples"]:
        raise DataError(
            f"{out_dir}: no clips written, {len(skipped)} of {manifest['inputs']} recordings "
            f"skipped" + (f" ({why(skipped)})" if skipped else "")
        )
    if len(skipped) / inputs > max_skipped:
        raise DataError(
            f"{out_dir}: {len(skipped)} of {manifest['inputs']} recordings skipped, over "
            f"shards.max_skipped={max_skipped:g} ({why(skipped)}); fix them, or raise "
            "shards.max_skipped (`birdtpu shard --max-skipped`) to keep the rest"
        )
