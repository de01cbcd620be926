"""birdtpu.progress.Progress and where it reports: shards, the catalog's audio check, the stacker."""

import os
import re
import shutil

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from birdtpu.cli import main
from birdtpu.data import catalog
from birdtpu.progress import Progress

CLIP = os.path.join(os.path.dirname(__file__), "data", "catalog", "audio", "2021-B32-0415_05-3.wav")
LINE = re.compile(
    r"^(?P<name>.+): (?P<done>\d+)/(?P<total>\d+) (?P<unit>\w+) \((?P<pct>\d+)%\)"
    r"(?P<audio>, .+ h of audio, .+ audio-h/min)?, \d+ s elapsed, ~(\d+|nan) s left$"
)


def test_plain_lines_count_and_time():
    lines = []
    progress = Progress(3, lines.append, every=0, name="stack", unit="folds")
    for _ in range(3):
        progress.advance()
    assert [LINE.match(x).group("done", "pct") for x in lines] == [
        ("1", "33"),
        ("2", "67"),
        ("3", "100"),
    ]
    assert all(
        LINE.match(x).group("name", "unit", "audio") == ("stack", "folds", None) for x in lines
    )
    timed = Progress(2, lines.append, every=0)
    timed.advance(1, 5400.0)
    assert LINE.match(lines[-1]).group("audio").startswith(", 1.50 h of audio, ")
    assert lines[-1].startswith("shard: 1/2 recordings (50%)")  # the shard builder's defaults


def test_plain_lines_are_throttled_but_messages_are_not():
    lines = []
    with Progress(100, lines.append, every=3600, name="job") as progress:
        for _ in range(100):
            progress.advance()
        progress.message("job: a message")
    assert lines == ["job: a message"] and progress.done == 100
    assert LINE.match(progress.line()).group("pct") == "100"


def test_a_terminal_gets_a_bar_and_messages_above_it(capsys):
    lines = []
    with Progress(4, lines.append, tty=True, name="catalog: check-audio") as progress:
        progress.advance(2, 30.0)
        progress.message("catalog: a message")
        assert progress.bar is not None
    assert progress.bar is None and lines == ["catalog: a message"]
    progress.close()  # closing twice is harmless
    err = capsys.readouterr().err
    assert "catalog: check-audio" in err and "2/4" in err and "h audio" in err


def test_shards_use_the_same_progress():
    from birdtpu.data.shards import build as shards

    assert shards.Progress is Progress


def test_catalog_audio_check_counts_files_and_seconds(tmp_path, capsys):
    root = tmp_path / "data"
    audio = root / "train_audio" / "gretit1"
    audio.mkdir(parents=True)
    for name in ("a.wav", "b.wav"):
        shutil.copy(CLIP, audio / name)
    sf.write(audio / "zero.wav", np.zeros(8000, np.float32), 8000, subtype="PCM_16")
    rows = "".join(f"gretit1,[],gretit1/{n}\n" for n in ("a.wav", "b.wav", "zero.wav"))
    (root / "train_metadata.csv").write_text("primary_label,secondary_labels,filename\n" + rows)
    df = catalog.read_birdclef(str(root))
    lines = []
    with Progress(
        df["filepath"].nunique(), lines.append, every=0, name="catalog: check-audio"
    ) as progress:
        kept, dropped = catalog.drop_unusable(df, 1, progress)
    assert len(kept) == 2 and dropped["reason"].tolist() == ["unusable audio"]
    assert progress.done == 3 and progress.seconds == pytest.approx(kept["duration"].sum())
    assert [LINE.match(x).group("done") for x in lines] == ["1", "2", "3"]
    assert lines[-1].startswith("catalog: check-audio: 3/3 recordings (100%), 0.00 h of audio")

    assert main(["catalog", "--source", f"birdclef={root}", "--check-audio", "--folds", "0"]) == 0
    captured = capsys.readouterr()
    assert "catalog: checking 3 recordings with 1 worker(s)" in captured.err
    assert "unusable audio" in captured.out


@pytest.mark.slow
def test_stack_still_reports_each_fold(tmp_path, capsys):
    rng = np.random.default_rng(0)
    y = (rng.random((60, 3)) < 0.4).astype(int)
    ids = [f"r{i}" for i in range(60)]
    paths = []
    for name, values in (
        ("truth", y),
        ("a", y * 0.6 + rng.random(y.shape) * 0.4),
        ("b", rng.random(y.shape)),
    ):
        table = pd.DataFrame(values, columns=["x", "y", "z"])
        table.insert(0, "row_id", ids)
        paths.append(str(tmp_path / f"{name}.csv"))
        table.to_csv(paths[-1], index=False)
    argv = [
        "stack",
        "--oof",
        paths[1],
        paths[2],
        "--truth",
        paths[0],
        "--out",
        str(tmp_path / "out"),
        "--folds",
        "2",
        "--max-epochs",
        "3",
        "--patience",
        "1",
    ]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert re.search(r"^stack: fold 1/2: stacker best epoch \d+$", err, re.M)
    assert re.search(r"^stack: fold 2/2: stacker best epoch \d+$", err, re.M)
