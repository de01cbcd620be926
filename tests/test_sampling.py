"""filter_rare, upsample and downsample: counts, seeds, and rows that are copies, not inventions."""

import numpy as np
import pandas as pd
import pytest

from birdtpu.data import sampling
from birdtpu.errors import DataError


def table(counts: dict[str, int]) -> pd.DataFrame:
    labels = [label for label, n in counts.items() for _ in range(n)]
    return pd.DataFrame(
        {"label": labels, "filepath": [f"/a/{label}/{i}.ogg" for i, label in enumerate(labels)]}
    )


COUNTS = {"common": 40, "mid": 12, "few": 4, "two": 2, "one": 1}


def test_filter_rare_marks_classes_under_the_threshold():
    df = sampling.filter_rare(table(COUNTS), 5)
    assert df.groupby("label")["cv"].all().to_dict() == {
        "common": True,
        "mid": True,
        "few": False,
        "two": False,
        "one": False,
    }
    again = sampling.filter_rare(df.assign(cv=df["label"] != "mid"), 2)
    assert not again.loc[again["label"] == "mid", "cv"].any()  # an earlier False stays False
    assert again.loc[again["label"] == "two", "cv"].all()


def test_upsample_reaches_the_minimum_with_copies_of_the_same_class():
    df = table(COUNTS)
    up = sampling.upsample(df, 10, seed=0)
    assert up["label"].value_counts().to_dict() == {
        "common": 40,
        "mid": 12,
        "few": 10,
        "two": 10,
        "one": 10,
    }
    pd.testing.assert_frame_equal(up.iloc[: len(df)], df)  # originals first, untouched
    copies = up.iloc[len(df) :]
    original = dict(zip(df["filepath"], df["label"]))
    assert all(original[p] == label for p, label in zip(copies["filepath"], copies["label"]))
    assert copies["label"].tolist() == ["few"] * 6 + ["one"] * 9 + ["two"] * 8  # sorted by class


def test_upsample_is_seeded():
    df = table({"a": 30, "b": 3})
    first, second = sampling.upsample(df, 30, seed=1), sampling.upsample(df, 30, seed=1)
    pd.testing.assert_frame_equal(first, second)
    assert not sampling.upsample(df, 30, seed=2).equals(first)


def test_upsample_without_rare_classes_changes_nothing():
    df = table({"a": 5, "b": 6})
    pd.testing.assert_frame_equal(sampling.upsample(df, 5, seed=0), df)


def test_downsample_caps_classes_with_a_seeded_subset_in_order():
    df = table(COUNTS)
    down = sampling.downsample(df, 5, seed=0)
    assert down["label"].value_counts().to_dict() == {
        "common": 5,
        "mid": 5,
        "few": 4,
        "two": 2,
        "one": 1,
    }
    position = {p: i for i, p in enumerate(df["filepath"])}
    kept = [position[p] for p in down["filepath"]]
    assert kept == sorted(kept)  # original order, no row twice
    pd.testing.assert_frame_equal(down, sampling.downsample(df, 5, seed=0))
    assert not down.equals(sampling.downsample(df, 5, seed=1))


def test_downsample_then_upsample_bounds_every_class():
    df = sampling.upsample(sampling.downsample(table(COUNTS), 8, seed=3), 3, seed=3)
    counts = df["label"].value_counts()
    assert counts.min() >= 3 and counts.max() <= 8


@pytest.mark.parametrize(
    "step",
    [
        lambda df: sampling.filter_rare(df, 3, column="nope"),
        lambda df: sampling.upsample(df, 3, 0, column="nope"),
        lambda df: sampling.downsample(df, 3, 0, column="nope"),
    ],
)
def test_missing_column(step):
    with pytest.raises(DataError, match="no column 'nope'"):
        step(table(COUNTS))


def test_class_order_does_not_depend_on_row_order():
    df = table({"a": 2, "b": 2, "c": 9})
    shuffled = df.iloc[np.random.default_rng(0).permutation(len(df))].reset_index(drop=True)
    assert (
        sampling.upsample(df, 4, 0)["label"].value_counts().to_dict()
        == sampling.upsample(shuffled, 4, 0)["label"].value_counts().to_dict()
    )
