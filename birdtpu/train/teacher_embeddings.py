"""A teacher's embeddings (`birdtpu embed` sets) as one vector per training clip (looked up by
clip id in tf.data: `birdtpu.data.crops.embedding_lookup`) for
`birdtpu.train.projection.EmbeddingDistiller`.

A training clip's id is its catalog `filename`, which is what `birdtpu embed` writes as each
window's `recording`: a clip's vector is the L2-normalised mean of its recording's window
embeddings.
"""

from __future__ import annotations

import numpy as np

from birdtpu.errors import DataError
from birdtpu.fs import join


def _read_set(folder: str) -> dict:
    """`read_embeddings` of one set; a record of another width is a DataError naming its shard."""
    import tensorflow as tf

    from birdtpu.teachers.embed import read_embeddings, read_manifest

    manifest = read_manifest(folder)
    try:
        return read_embeddings(folder, manifest)
    except tf.errors.InvalidArgumentError:
        for entry in manifest["shards"]:
            try:
                read_embeddings(folder, {**manifest, "shards": [entry]})
            except tf.errors.InvalidArgumentError:
                raise DataError(
                    f"{join(folder, entry['file'])}: a record's embedding or logits is not of the "
                    f"manifest's width ({manifest['dim']} dims, {manifest['logits']} logits)"
                ) from None
        raise


def read_teacher_embeddings(folder_or_paths, log=print) -> tuple[list[str], np.ndarray]:
    """(ids, (n, d) float32 vectors) from one embedding set's folder or a list of them: per
    recording (the training clip id), the L2-normalised mean of its window embeddings (a zero
    mean stays zero, which the loss ignores). DataError naming the folder or shard for a missing
    or empty set, a width that differs from another set's, a non-finite embedding, or a
    recording found in two sets."""
    folders = [folder_or_paths] if isinstance(folder_or_paths, str) else list(folder_or_paths)
    if not folders:
        raise DataError("teacher embeddings: no embedding set given")
    ids: list[str] = []
    vectors: list[np.ndarray] = []
    owner: dict[str, str] = {}
    dim = None
    for folder in folders:
        data = _read_set(folder)
        emb = data["embedding"]
        if not len(emb):
            raise DataError(f"{folder}: the embedding set holds no windows")
        if dim is not None and emb.shape[1] != dim:
            raise DataError(
                f"{folder}: embeddings of {emb.shape[1]} dims, {folders[0]} has {dim}; use one "
                "teacher's sets"
            )
        dim = emb.shape[1]
        bad = ~np.isfinite(emb).all(axis=1)
        if bad.any():
            i = int(np.argmax(bad))
            raise DataError(f"{folder}: window {data['id'][i]!r} has a non-finite embedding")
        names, inverse = np.unique(np.asarray(data["recording"], dtype=object), return_inverse=True)
        sums = np.zeros((len(names), dim), np.float64)
        np.add.at(sums, inverse, emb.astype(np.float64))
        mean = sums / np.bincount(inverse, minlength=len(names))[:, None]
        norm = np.linalg.norm(mean, axis=1, keepdims=True)
        mean = np.divide(mean, norm, out=np.zeros_like(mean), where=norm > 0)
        for name in names:
            if name in owner:
                raise DataError(f"{folder}: recording {name!r} is also in {owner[name]}")
            owner[name] = folder
        ids.extend(str(n) for n in names)
        vectors.append(mean.astype(np.float32))
        log(
            f"teacher embeddings: {len(names)} recordings ({len(emb)} windows, {dim} dims) from {folder}"
        )
    return ids, np.concatenate(vectors)


def training_embeddings(
    folder_or_paths, train_ids: list[str], log=print
) -> tuple[list[str], np.ndarray]:
    """`read_teacher_embeddings`, logging how many of `train_ids` have a vector (the others get
    zeros and no distillation loss); DataError where none has one (another catalog's set?)."""
    ids, vectors = read_teacher_embeddings(folder_or_paths, log=lambda *_: None)
    wanted = set(train_ids)
    known = len(wanted & set(ids))
    if not known:
        raise DataError(
            f"teacher embeddings: none of the {len(wanted)} training clips is in the set(s) "
            f"(first clip {sorted(wanted)[0]!r}, first recording {ids[0]!r})"
        )
    log(
        f"fit: teacher embeddings ({vectors.shape[1]} dims) for {known} of {len(wanted)} "
        "training clips; the others add no distillation loss"
    )
    return ids, vectors
