"""A teacher's logits as distillation targets for a recipe: `birdtpu embed --predictions OUT.csv`.

The teacher names its classes by scientific name (BirdNET, Perch); a recipe by its own codes
(eBird codes in BirdCLEF). A names table maps one to the other: a CSV with the recipe's code and
the scientific name, `primary_label,scientific_name` (BirdCLEF+ `taxonomy.csv`, the default where
`<data.root>/taxonomy.csv` exists) or `SPECIES_CODE,SCI_NAME` (eBird's taxonomy, shipped with
BirdCLEF 2021-2024). Each recording's row is the maximum over its windows of sigmoid(logit) of
the teacher class of each recipe class; a class without a teacher class is left empty (NaN),
and `train.teacher_predictions` keeps the label there (`birdtpu.train.teacher_targets`).
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd

from birdtpu import fs
from birdtpu.errors import DataError

NAME_COLUMNS = (("primary_label", "scientific_name"), ("SPECIES_CODE", "SCI_NAME"))


def read_names(path: str) -> dict[str, str]:
    """{recipe class code: scientific name} from a names CSV (see the module docstring)."""
    if not fs.exists(path):
        raise DataError(f"{path}: names table not found")
    df = pd.read_csv(io.StringIO(fs.read_text(path)), dtype=str)
    for code, name in NAME_COLUMNS:
        if code in df.columns and name in df.columns:
            rows = df[[code, name]].dropna()
            return dict(zip(rows[code].str.strip(), rows[name].str.strip()))
    wanted = " or ".join(f"{a},{b}" for a, b in NAME_COLUMNS)
    raise DataError(f"{path}: expected columns {wanted} (found: {', '.join(df.columns[:6])})")


def class_map(classes: list[str], names: dict[str, str], teacher_classes: list[str]):
    """(teacher column of each recipe class, -1 where none; the recipe classes without one).
    Scientific names match case-insensitively; BirdNET's 'Genus species_Common name' labels by
    the part before '_'."""
    column = {c.split("_")[0].strip().lower(): i for i, c in enumerate(teacher_classes)}
    index = np.array([column.get(names.get(c, "").lower(), -1) for c in classes], np.int64)
    return index, [c for c, i in zip(classes, index) if i < 0]


def teacher_predictions(data: dict, classes: list[str], index: np.ndarray) -> pd.DataFrame:
    """row_id (each recording) + one column per recipe class: the max over the recording's windows
    of sigmoid(logit) of its teacher class (NaN where `index` is -1). `data`: read_embeddings."""
    logits = np.asarray(data["logits"], np.float64)
    if logits.shape[1] == 0:
        raise DataError("the embeddings were written without logits (embed.logits: false)")
    probs = 1.0 / (1.0 + np.exp(-logits[:, np.maximum(index, 0)]))
    probs[:, index < 0] = np.nan
    table = pd.DataFrame(probs, columns=classes)
    table.insert(0, "row_id", data["recording"])
    return table.groupby("row_id", sort=False).max().reset_index()


def write_teacher_predictions(cfg, folder: str, out: str, names_path: str = "", log=print):
    """`out`: the predictions CSV of the embeddings in `folder` for the recipe's classes;
    returns the classes without a teacher class (reported in one line)."""
    from birdtpu.fs import join
    from birdtpu.teachers.embed import read_embeddings, read_manifest

    manifest = read_manifest(folder)
    classes = manifest["classes"]
    if not classes:
        raise DataError(
            f"{folder}: soundscape embeddings have no recipe classes; embed the catalog"
        )
    names_path = names_path or join(cfg.data.root, "taxonomy.csv")
    index, unmapped = class_map(classes, read_names(names_path), manifest["teacher"]["classes"])
    table = teacher_predictions(read_embeddings(folder, manifest), classes, index)
    fs.atomic_write_text(out, table.to_csv(index=False))
    log(
        f"embed: {out}: teacher predictions of {len(table)} recordings, {len(classes) - len(unmapped)} "
        f"of {len(classes)} classes mapped by scientific name ({names_path})"
        + (
            f"; no teacher class for {len(unmapped)}: {', '.join(unmapped[:10])}"
            if unmapped
            else ""
        )
    )
    return unmapped
