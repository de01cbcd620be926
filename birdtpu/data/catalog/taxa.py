"""Taxon specialists: a catalog restricted to the classes of some BirdCLEF+ taxa (`data.taxa`).

The taxa are `taxonomy.csv`'s class_name values (Aves, Amphibia, Insecta, Mammalia, Reptilia).
Rows whose primary label is outside them are dropped; secondary labels outside them move to
`other_labels` (never in targets), as readers do with secondary labels outside a class list.
"""

from __future__ import annotations

import pandas as pd

from birdtpu import fs
from birdtpu.data.catalog.birdclef_plus import TAXONOMY, read_taxonomy, taxon_classes
from birdtpu.data.catalog.columns import _objects
from birdtpu.errors import DataError
from birdtpu.fs import join


def taxa_classes(taxonomy_path: str, taxa: list[str]) -> list[str]:
    """The class codes of `taxa` in taxonomy order; DataError naming the file where it is missing
    or a taxon is not in it."""
    if not fs.exists(taxonomy_path):
        raise DataError(
            f"data.taxa: {taxonomy_path} not found (taxon specialists need a BirdCLEF+ catalog "
            "with taxonomy.csv)"
        )
    taxonomy = read_taxonomy(taxonomy_path)
    wanted = set()
    for taxon in taxa:
        try:
            wanted.update(taxon_classes(taxonomy, taxon))
        except DataError as err:
            raise DataError(f"data.taxa: {taxonomy_path}: {err}") from None
    return [c for c in taxonomy["primary_label"] if c in wanted]


def restrict_to_taxa(df: pd.DataFrame, classes: list[str]) -> pd.DataFrame:
    """The rows of the canonical table `df` whose primary label is one of `classes`, their
    secondary labels outside `classes` moved to `other_labels` (lists shared per label set)."""
    keep = set(classes)
    out = df[df["label"].isin(keep)].copy()
    labels, others, cache = [], [], {}
    old_others = out["other_labels"] if "other_labels" in out.columns else [[]] * len(out)
    for row, extra in zip(out["labels"], old_others):
        key = (tuple(row), tuple(extra))
        if key not in cache:
            cache[key] = (
                [x for x in row if x in keep],
                [*extra, *(x for x in row if x not in keep)],
            )
        inside, outside = cache[key]
        labels.append(inside)
        others.append(outside)
    out["labels"], out["other_labels"] = _objects(labels), _objects(others)
    return out.reset_index(drop=True)


def taxa_catalog(df: pd.DataFrame, root: str, taxa: list[str], log=print) -> pd.DataFrame:
    """`df` restricted to the classes of `taxa` in `<root>/taxonomy.csv`; logs what was dropped."""
    path = join(root, TAXONOMY)
    classes = taxa_classes(path, taxa)
    out = restrict_to_taxa(df, classes)
    if out.empty:
        raise DataError(
            f"data.taxa: no catalog row has a primary label of {', '.join(taxa)} ({path})"
        )
    log(
        f"catalog: data.taxa {', '.join(taxa)}: {len(out)} of {len(df)} rows kept "
        f"({len(classes)} classes in {path})"
    )
    return out
