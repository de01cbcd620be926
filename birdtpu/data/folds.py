"""Cross-validation folds: stratified or multilabel, grouped, seeded, every class always in training.

A fold id per row: 0..n_folds-1 is the fold whose validation set holds the row; TRAIN_ONLY (-1)
rows are trained on in every fold and never validated. Rows of one group (a recording by
default) share a fold. Rows with `cv` False (see `sampling.filter_rare`) are TRAIN_ONLY, and so
is the only group of a class: whatever fold is validated, every class keeps a training example.
"""

from __future__ import annotations

from itertools import chain

import numpy as np
import pandas as pd
from scipy import sparse

from birdtpu.errors import DataError

TRAIN_ONLY = -1
METHODS = ("stratified", "multilabel")


def make_folds(
    df: pd.DataFrame,
    n_folds: int,
    seed: int,
    method: str = "stratified",
    group: str | None = "filepath",
    column: str = "label",
) -> np.ndarray:
    """Fold id per row (0..n_folds-1, or TRAIN_ONLY), the same for every row of a `group`.

    `stratified` balances the primary label `column` (StratifiedKFold over groups, each group
    counted under its most frequent label); `multilabel` balances every label in `labels`
    (iterative stratification over a dense groups x classes matrix: sized for multi-label sets
    such as Freesound 2019, not for 250,000-row pre-training sets). `group` names a column
    (`filepath`: recording, `author`); None puts each row in its own group; rows with no value
    in `group` are grouped by recording.
    """
    if n_folds < 2:
        raise DataError(f"folds: need at least 2 folds, got {n_folds}")
    if method not in METHODS:
        raise DataError(f"folds: unknown method {method!r} (one of {', '.join(METHODS)})")
    gid, n_groups = _groups(df, group)
    if n_groups < n_folds:
        raise DataError(
            f"folds: {n_groups} group(s) by {group or 'row'} cannot fill {n_folds} folds"
        )
    member = _membership(df, gid, n_groups, method, column)
    gfold = np.full(n_groups, TRAIN_ONLY, np.int64)
    active = np.flatnonzero(~_train_only(df, gid, n_groups))
    if len(active):
        if method == "stratified":
            gfold[active] = _stratified(_majority(member[active]), n_folds, seed)
        else:
            gfold[active] = _multilabel((member[active] > 0).toarray(), n_folds, seed)
    _keep_classes_in_training(gfold, member, np.bincount(gid, minlength=n_groups), n_folds)
    return gfold[gid]


def stratified_folds(
    df: pd.DataFrame, n_folds: int, seed: int, column: str = "label"
) -> np.ndarray:
    """Fold id per row, stratified on `column`, grouped by recording where `filepath` exists.

    A class's only recording gets TRAIN_ONLY (-1): trained on in every fold, never validated.
    """
    group = "filepath" if "filepath" in df.columns else None
    return make_folds(df, n_folds, seed, "stratified", group, column)


def multilabel_folds(
    df: pd.DataFrame, n_folds: int, seed: int, group: str | None = "filepath"
) -> np.ndarray:
    """Fold id per row, balancing every label of `labels` (multilabel iterative stratification)."""
    return make_folds(df, n_folds, seed, "multilabel", group)


def _groups(df: pd.DataFrame, group: str | None) -> tuple[np.ndarray, int]:
    """A group code per row and the number of groups."""
    if group is None:
        return np.arange(len(df)), len(df)
    if group not in df.columns:
        raise DataError(f"folds: no column {group!r} to group by (have {', '.join(df.columns)})")
    codes, uniq = pd.factorize(df[group])
    missing = codes < 0
    if missing.any():
        if group != "filepath" and "filepath" in df.columns:
            extra, _ = pd.factorize(df.loc[missing, "filepath"])
        else:
            extra = np.arange(missing.sum())
        codes[missing] = len(uniq) + extra
    return codes, int(codes.max()) + 1 if len(codes) else 0


def _membership(
    df: pd.DataFrame, gid: np.ndarray, n_groups: int, method: str, column: str
) -> sparse.csr_matrix:
    """(groups, classes) counts of rows: of the primary `column`, or of every label for multilabel."""
    if method == "stratified":
        if column not in df.columns:
            raise DataError(f"folds: no column {column!r} to stratify on")
        codes, _ = pd.factorize(df[column])
        rows = np.arange(len(df))
    else:
        if "labels" not in df.columns:
            raise DataError("folds: multilabel folds need a `labels` column")
        lists = df["labels"].tolist()
        codes, _ = pd.factorize(pd.Series(list(chain.from_iterable(lists)), dtype=object))
        rows = np.repeat(np.arange(len(lists)), [len(x) for x in lists])
    if (codes < 0).any():
        raise DataError(f"folds: catalog row {rows[np.argmax(codes < 0)]} has no label")
    ones = np.ones(len(codes), np.int64)
    return sparse.csr_matrix((ones, (gid[rows], codes)), shape=(n_groups, int(codes.max()) + 1))


def _majority(member: sparse.csr_matrix) -> np.ndarray:
    """The most frequent class of each group (the lowest class code on a tie)."""
    counts = member.tocoo()
    order = np.lexsort((counts.col, -counts.data, counts.row))
    rows, cols = counts.row[order], counts.col[order]
    first = np.r_[True, rows[1:] != rows[:-1]]
    out = np.empty(member.shape[0], np.int64)
    out[rows[first]] = cols[first]
    return out


def _train_only(df: pd.DataFrame, gid: np.ndarray, n_groups: int) -> np.ndarray:
    """Per group: whether any of its rows has `cv` False."""
    if "cv" not in df.columns:
        return np.zeros(n_groups, bool)
    return np.bincount(gid, weights=~df["cv"].to_numpy(bool), minlength=n_groups) > 0


def _stratified(y: np.ndarray, n_folds: int, seed: int) -> np.ndarray:
    """Folds for class codes `y`: StratifiedKFold where a class fills every fold, else distinct folds."""
    from sklearn.model_selection import StratifiedKFold

    folds = np.empty(len(y), np.int64)
    common = np.bincount(y)[y] >= n_folds
    idx = np.flatnonzero(common)
    if len(idx):
        skf = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
        for k, (_, val) in enumerate(skf.split(np.zeros(len(idx)), y[idx])):
            folds[idx[val]] = k
    rng = np.random.default_rng(seed)
    rare = np.flatnonzero(~common)
    for members in pd.Series(rare).groupby(y[rare], sort=True).indices.values():
        folds[rare[members]] = rng.permutation(n_folds)[: len(members)]
    return folds


def _multilabel(y: np.ndarray, n_folds: int, seed: int) -> np.ndarray:
    """Folds for a multi-hot matrix `y` by iterative stratification (iterstrat)."""
    from iterstrat.ml_stratifiers import MultilabelStratifiedKFold

    if len(y) < n_folds:  # fewer groups to validate than folds (the rest are train-only)
        return np.random.default_rng(seed).permutation(n_folds)[: len(y)]
    if y.shape[1] == 1:  # iterstrat wants two or more columns
        y = np.hstack([y, ~y])
    folds = np.empty(len(y), np.int64)
    mskf = MultilabelStratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    for k, (_, val) in enumerate(mskf.split(np.zeros(len(y)), y)):
        folds[val] = k
    return folds


def _keep_classes_in_training(
    gfold: np.ndarray, member: sparse.csr_matrix, sizes: np.ndarray, n_folds: int
) -> None:
    """Move groups (in place) so that no class has all its groups in one validation fold.

    A class whose groups all sit in fold k would have no training example when k is validated:
    its smallest group there moves to a fold where the move breaks no other class, or becomes
    TRAIN_ONLY when it is the class's only group or no fold is safe. A move never breaks a
    class already satisfied, so one pass suffices.
    """
    present = (member > 0).astype(np.int64).tocsr()
    by_class = present.tocsc()
    assigned = gfold >= 0
    onehot = sparse.csr_matrix(
        (np.ones(assigned.sum()), (np.flatnonzero(assigned), gfold[assigned])),
        shape=(len(gfold), n_folds),
    )
    counts = np.asarray((present.T @ onehot).todense()).astype(
        np.int64
    )  # groups per class and fold
    spare = np.asarray(
        present.T @ (~assigned).astype(np.int64)
    ).ravel()  # TRAIN_ONLY groups per class
    fold_rows = np.bincount(gfold[assigned], weights=sizes[assigned], minlength=n_folds)

    def classes_of(g):
        return present.indices[present.indptr[g] : present.indptr[g + 1]]

    def safe_fold(g, k):
        allowed = np.ones(n_folds, bool)
        allowed[k] = False
        for c in classes_of(g):
            if spare[c]:
                continue
            others = counts[c].copy()
            others[k] -= 1
            where = np.flatnonzero(others)
            if len(where) == 0:
                return TRAIN_ONLY
            if len(where) == 1:
                allowed[where[0]] = False
        candidates = np.flatnonzero(allowed)
        return int(candidates[np.argmin(fold_rows[candidates])]) if len(candidates) else TRAIN_ONLY

    def move(g, new):
        classes, old = classes_of(g), gfold[g]
        counts[classes, old] -= 1
        fold_rows[old] -= sizes[g]
        if new == TRAIN_ONLY:
            spare[classes] += 1
        else:
            counts[classes, new] += 1
            fold_rows[new] += sizes[g]
        gfold[g] = new

    for c in np.flatnonzero((spare == 0) & ((counts > 0).sum(axis=1) == 1)):
        if spare[c] or np.count_nonzero(counts[c]) != 1:
            continue  # fixed by an earlier move
        k = int(np.argmax(counts[c]))
        groups = by_class.indices[by_class.indptr[c] : by_class.indptr[c + 1]]
        groups = groups[gfold[groups] == k]
        g = int(groups[np.lexsort((groups, sizes[groups]))[0]])
        move(g, TRAIN_ONLY if len(groups) == 1 else safe_fold(g, k))
