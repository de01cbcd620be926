"""filter_rare and downsample: counts, seeds, and rows kept as they are (upsampling is the
training pipeline's, after the split: birdtpu.data.balance)."""

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


@pytest.mark.parametrize(
    "step",
    [
        lambda df: sampling.filter_rare(df, 3, column="nope"),
        lambda df: sampling.downsample(df, 3, 0, column="nope"),
    ],
)
def test_missing_column(step):
    with pytest.raises(DataError, match="no column 'nope'"):
        step(table(COUNTS))
