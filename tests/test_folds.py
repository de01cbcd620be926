"""Folds: stratified, multilabel and grouped; disjoint, covering, every class in training, seeded."""

import os

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from birdtpu.data import catalog, sampling
from birdtpu.data.folds import TRAIN_ONLY, make_folds, multilabel_folds, stratified_folds
from birdtpu.errors import DataError

DATA = os.path.join(os.path.dirname(__file__), "data", "catalog")


def table(labels, groups=None, secondary=None):
    df = pd.DataFrame(
        {"label": labels, "filepath": [f"/r/{g}.ogg" for g in (groups or range(len(labels)))]}
    )
    df["labels"] = [
        [label] + list(extra) for label, extra in zip(labels, secondary or [[]] * len(labels))
    ]
    return df


def validation_sets(folds, n_folds):
    return [set(np.flatnonzero(folds == k)) for k in range(n_folds)]


def classes_in_training(df, folds, n_folds, column):
    """Whether every class of `column` (a label, or a list of labels) has a row outside each fold."""
    values = df[column] if column == "labels" else df[column].map(lambda x: [x])
    everything = {c for labels in values for c in labels}
    for k in range(n_folds):
        trained = {c for labels in values[folds != k] for c in labels}
        if trained != everything:
            return False
    return True


def check(df, folds, n_folds, column, group="filepath"):
    """The invariants every fold assignment keeps."""
    assert folds.shape == (len(df),) and folds.dtype.kind == "i"
    assert set(folds) <= set(range(TRAIN_ONLY, n_folds))
    sets = validation_sets(folds, n_folds)
    assert sum(map(len, sets)) + int((folds == TRAIN_ONLY).sum()) == len(
        df
    )  # disjoint and covering
    assert classes_in_training(df, folds, n_folds, column)
    if group:
        assert (df.assign(fold=folds).groupby(group)["fold"].nunique() == 1).all()


# ----------------------------------------------------------------------------- stratified


def test_stratified_folds_are_balanced_per_class():
    rng = np.random.default_rng(0)
    labels = rng.choice(["a", "b", "c", "d"], size=400, p=[0.5, 0.3, 0.15, 0.05]).tolist()
    df = table(labels)
    folds = make_folds(df, 5, seed=0)
    check(df, folds, 5, "label")
    per_fold = pd.crosstab(df["label"], folds)
    assert (per_fold.max(axis=1) - per_fold.min(axis=1)).max() <= 1
    assert TRAIN_ONLY not in set(folds)


def test_rare_classes_keep_a_training_example():
    df = table(["a"] * 20 + ["two"] * 2 + ["four"] * 4 + ["one"])
    for seed in range(5):
        folds = make_folds(df, 5, seed=seed)
        check(df, folds, 5, "label")
        assert folds[-1] == TRAIN_ONLY  # a single example can never be validated
        assert (
            folds[20] != folds[21] and min(folds[20:22]) >= 0
        )  # two examples: two different folds
        assert (
            len(set(folds[22:26])) == 4 and min(folds[22:26]) >= 0
        )  # fewer than folds: all distinct
        assert (folds[:20] >= 0).all()


def test_cv_false_rows_are_train_only():
    df = sampling.filter_rare(table(["a"] * 20 + ["b"] * 3 + ["c"] * 10), 5)
    folds = make_folds(df, 4, seed=0)
    assert (folds[20:23] == TRAIN_ONLY).all() and (folds[df["cv"].to_numpy()] >= 0).all()


def test_lead_signature_still_works_on_a_bare_label_column():
    df = pd.DataFrame({"label": list("aabbccddeeff") * 3})
    folds = stratified_folds(df, 3, seed=1)
    assert sorted(np.bincount(folds)) == [12, 12, 12]


def test_folds_are_reproducible_by_seed():
    df = table(np.random.default_rng(1).choice(list("abcdef"), 200).tolist())
    assert np.array_equal(make_folds(df, 5, 7), make_folds(df, 5, 7))
    assert not np.array_equal(make_folds(df, 5, 7), make_folds(df, 5, 8))


# ----------------------------------------------------------------------------- groups


def test_one_recording_never_lands_in_two_folds():
    df = catalog.merge(
        [
            catalog.read_source("rfcx-tp", os.path.join(DATA, "rfcx")),
            catalog.read_source("rfcx-fp", os.path.join(DATA, "rfcx")),
        ]
    )
    df = pd.concat([df] * 3, ignore_index=True)  # three boxes per recording and label
    folds = make_folds(df, 3, seed=0)
    check(df, folds, 3, "label")
    shared = df["filepath"].str.endswith("003bec244.flac")  # in train_tp and train_fp
    assert len(set(folds[shared.to_numpy()])) == 1


def test_group_by_author_and_missing_authors_by_recording():
    rng = np.random.default_rng(2)
    df = table(rng.choice(list("abc"), 120).tolist())
    df["author"] = [f"author{i % 17}" if i % 10 else None for i in range(120)]
    folds = make_folds(df, 4, seed=0, group="author")
    check(df, folds, 4, "label", group="author")
    assert (df.assign(fold=folds).groupby("filepath")["fold"].nunique() == 1).all()


def test_a_class_recorded_by_one_author_is_train_only():
    df = table(["a"] * 10 + ["b"] * 10 + ["solo"] * 4)
    df["author"] = [f"x{i % 5}" for i in range(20)] + ["only"] * 4
    folds = make_folds(df, 5, seed=0, group="author")
    check(df, folds, 5, "label", group="author")
    assert (folds[-4:] == TRAIN_ONLY).all()


# ----------------------------------------------------------------------------- multilabel


def test_multilabel_folds_on_freesound_labels():
    rng = np.random.default_rng(4)
    vocab = [f"tag{i}" for i in range(12)]
    secondary = [list(rng.choice(vocab, rng.integers(0, 4), replace=False)) for _ in range(300)]
    df = table(rng.choice(vocab, 300).tolist(), secondary=secondary)
    folds = multilabel_folds(df, 5, seed=0)
    check(df, folds, 5, "labels")
    y = catalog.targets(df, catalog.label_map(df))

    def spread(assignment):  # over labels, the gap between the fullest and the emptiest fold
        per_fold = np.stack([y[assignment == k].sum(axis=0) for k in range(5)])
        return (per_fold.max(axis=0) - per_fold.min(axis=0)).sum()

    assert spread(folds) < 0.5 * spread(make_folds(df, 5, seed=0))  # primary-label stratification


def test_multilabel_on_the_fat2019_fixture():
    df = catalog.merge(
        [
            catalog.read_source("fat2019-curated", os.path.join(DATA, "fat2019")),
            catalog.read_source("fat2019-noisy", os.path.join(DATA, "fat2019")),
        ]
    )
    folds = make_folds(df, 2, seed=0, method="multilabel")
    check(df, folds, 2, "labels")


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"n_folds": 1}, "at least 2 folds"),
        ({"method": "random"}, "unknown method 'random'"),
        ({"n_folds": 9}, "4 group\\(s\\) by filepath cannot fill 9 folds"),
        ({"group": "author"}, "no column 'author' to group by"),
        ({"column": "species"}, "no column 'species' to stratify on"),
    ],
)
def test_errors(kwargs, message):
    df = table(["a", "a", "b", "b", "b"], groups=[0, 1, 2, 3, 3])
    with pytest.raises(DataError, match=message):
        make_folds(df, **{"n_folds": 2, "seed": 0, **kwargs})


# ----------------------------------------------------------------------------- property


@st.composite
def catalogs(draw):
    n = draw(st.integers(4, 60))
    classes = st.integers(0, draw(st.integers(0, 7)))
    labels = [f"c{i}" for i in draw(st.lists(classes, min_size=n, max_size=n))]
    groups = draw(st.none() | st.lists(st.integers(0, max(1, n // 3)), min_size=n, max_size=n))
    method = draw(st.sampled_from(["stratified", "multilabel"]))
    secondary = draw(
        st.lists(st.lists(classes.map(lambda i: f"c{i}"), max_size=2), min_size=n, max_size=n)
    )
    df = table(labels, groups, secondary if method == "multilabel" else None)
    if draw(st.booleans()):
        df = sampling.filter_rare(df, draw(st.integers(1, 4)))
    n_folds = draw(st.integers(2, 6))
    return df, n_folds, method, draw(st.integers(0, 2**31 - 1))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(catalogs())
def test_property_disjoint_covering_every_class_trained_reproducible(case):
    df, n_folds, method, seed = case
    if df["filepath"].nunique() < n_folds:
        with pytest.raises(DataError, match="cannot fill"):
            make_folds(df, n_folds, seed, method)
        return
    folds = make_folds(df, n_folds, seed, method)
    check(df, folds, n_folds, "labels" if method == "multilabel" else "label")
    assert np.array_equal(folds, make_folds(df, n_folds, seed, method))
    if "cv" in df.columns:
        assert (folds[~df["cv"].to_numpy()] == TRAIN_ONLY).all()
    if method == "stratified" and "cv" not in df.columns and df["filepath"].is_unique:
        groups_per_class = df.groupby("label")["filepath"].nunique()
        held_out = df.loc[folds == TRAIN_ONLY, "label"]
        assert (
            groups_per_class[held_out.unique()] == 1
        ).all()  # only a class's only group is held out
