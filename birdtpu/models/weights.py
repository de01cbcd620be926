"""Weights files for backbones: local or gs:// paths (remote files are copied to a temporary folder)."""

from __future__ import annotations

import os
import tempfile

from birdtpu import fs
from birdtpu.errors import ConfigError


def local_copy(path: str, key: str = "model.pretrained") -> str:
    """A local file for `path`; ConfigError naming `key` when it does not exist."""
    if not fs.exists(path):
        raise ConfigError(f"{key}: weights file {path} not found")
    if not fs.is_remote(path):
        return path
    local = os.path.join(tempfile.mkdtemp(prefix="birdtpu-weights-"), os.path.basename(path))
    with open(local, "wb") as fh:
        fh.write(fs.read_bytes(path))
    return local


def load_backbone_weights(backbone, pretrained: str) -> None:
    """Load `pretrained` (a path; `none`/empty: nothing) into `backbone`, or ConfigError naming the file."""
    if pretrained in ("", "none"):
        return
    path = local_copy(pretrained)
    try:
        backbone.load_weights(path)
    except (ValueError, OSError) as err:
        raise ConfigError(
            f"model.pretrained: {pretrained} does not fit {backbone.name} "
            f"({str(err).splitlines()[0][:160]})"
        ) from None
