"""A `birdtpu fit` killed mid-epoch (SIGKILL) resumes from its last backup at that epoch and step."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from conftest import tiny_overrides

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS = 12  # per epoch, 2 epochs; a backup every 3 steps


def _command(tmp_path, root) -> list[str]:
    sets = tiny_overrides(tmp_path, f"data.root={root}", "model.name=fat2019", "model.width=0.125",
                          "train.epochs=2", f"train.steps_per_epoch={STEPS}", "train.backup_steps=3")
    return [sys.executable, "-m", "birdtpu.cli", "fit", *[x for o in sets for x in ("--set", o)]]


@pytest.mark.slow
def test_killed_fit_resumes_at_the_epoch_and_step_of_its_backup(tmp_path, tiny_data):
    root, _ = tiny_data
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    run = tmp_path / "runs" / "tiny"
    state_path = run / "backup" / "state.json"
    with open(tmp_path / "first.log", "w") as out:
        proc = subprocess.Popen(_command(tmp_path, root), cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.time() + 600
        while not state_path.exists():  # the first mid-epoch backup (step 3) commits state.json
            assert proc.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
            assert time.time() < deadline, "no backup within 10 minutes"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    state = json.loads(state_path.read_text())  # what the killed run last committed
    epoch, step, global_step = state["epoch"], state["step"], state["global_step"]
    assert 0 < step < STEPS and global_step == epoch * STEPS + step and step % 3 == 0
    assert (run / "backup" / state["weights"]).exists() and not (run / "metrics.json").exists()

    again = subprocess.run(_command(tmp_path, root), cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"resuming from backup at epoch {epoch}, step {step} (global step {global_step})" in again.stderr
    # Keras' per-epoch lines: the rest of the interrupted epoch, then whole epochs
    done = [int(n) for n in re.findall(r"^(\d+)/\1 - ", again.stdout, flags=re.M)]
    assert done == [STEPS - step] + [STEPS] * (1 - epoch)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["resumed_from"] == {"epoch": epoch, "step": step}
    assert metrics["steps_trained"] == 2 * STEPS  # optimizer.iterations came back from the backup
    assert pd.read_csv(run / "history.csv").epoch.tolist() == [0, 1]
    assert not (run / "backup").exists()
