"""`birdtpu fit` as two MultiWorkerMirroredStrategy workers on loopback matches one process.

The comparison: MWMS gives each worker its own input pipeline (`build_dataset(input_context=...)`:
worker i reads training shard files i, i+2, ... in batches of the per-replica size), so at each
step the global batch is worker 0's batch followed by worker 1's. The reference is one process
with the same two replicas (two logical CPU devices under MirroredStrategy) fed exactly that:
the two per-worker pipelines zipped and concatenated, which MirroredStrategy splits back into the
same halves. Same model, same initial weights (seeded), same per-replica data, same all-reduced
gradient: only the collective implementation differs, so the first-epoch loss and the weights
after the epoch must agree to float32 rounding. (A 1-replica reference would see the same clips
but compute BatchNorm statistics over the whole batch and mix/augment it as one; that is
test_train_distributed's comparison, not this one.) Augmentation in the pipeline (noise,
MixUp) stays on: it is seeded per pipeline. Random layers inside the model (dropout, SpecAugment
masks) are off, as their draws depend on the replica context. The clip order is fixed (one
training shard file per worker, `train.shuffle_buffer=1`): Keras iterates a dataset once to
build the model and again for the epoch, and a reshuffling pipeline wrapped by
`distribute_datasets_from_function` (the workers) and by `experimental_distribute_dataset` (the
reference) was seen to start the epoch on different permutations; with a prior pass over both it
agreed exactly, so the difference is the order of the clips, not the arithmetic.

Both workers run under a timeout and are killed together on any failure, so a hung collective
cannot hang the suite.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
from conftest import NO_RANDOM_LAYERS, run_cli, tiny_overrides

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GLOBAL_BATCH = 4
STEPS = 3
TIMEOUT = 420
STILL = [
    "data.num_folds=2",
    "shards.target_mb=0.5",
    "train.shuffle_buffer=1",
    *NO_RANDOM_LAYERS,
    "augment.noise_prob=0.5",
    "augment.mixup_prob=0.5",
    "runtime.deterministic=true",
    "train.epochs=1",
    f"train.steps_per_epoch={STEPS}",
    f"train.batch_size={GLOBAL_BATCH // 2}",
]

REFERENCE = textwrap.dedent("""
    import json, sys
    import numpy as np, tensorflow as tf
    from birdtpu import runtime
    from birdtpu.config import load_config
    from birdtpu.data.pipeline import build_dataset
    from birdtpu.data.shards import read_manifest, shard_paths
    from birdtpu.models.registry import build_model
    from birdtpu.train.fit import compile_model

    cfg = load_config(None, json.loads(sys.argv[1]))
    run = runtime.setup(cfg.runtime)
    assert run.replicas == 2, run
    manifest = read_manifest(cfg.shard_dir)
    paths = shard_paths(cfg.shard_dir, manifest, exclude=[cfg.data.fold])
    samples = int(round(cfg.frontend.clip_seconds * cfg.data.sample_rate))
    workers = [build_dataset(paths, len(manifest["classes"]), samples, cfg.train.batch_size, True, cfg.augment,
                             shuffle_buffer=cfg.train.shuffle_buffer, seed=cfg.runtime.seed, deterministic=True,
                             num_workers=2, worker_index=i, sample_rate=cfg.data.sample_rate) for i in (0, 1)]
    both = tf.data.Dataset.zip(tuple(workers)).map(lambda a, b: (tf.concat([a[0], b[0]], 0),
                                                                 tf.concat([a[1], b[1]], 0)))
    global_batch = 2 * cfg.train.batch_size
    runtime.set_seed(cfg.runtime.seed)  # as fit does before building the model
    with run.strategy.scope():
        model = build_model(cfg, len(manifest["classes"]))
        compile_model(model, cfg, cfg.train.steps_per_epoch, global_batch, False, len(manifest["classes"]),
                      log=lambda *_: None)
    np.savez(sys.argv[3], *[np.asarray(w) for w in model.get_weights()])
    hist = model.fit(both, epochs=1, steps_per_epoch=cfg.train.steps_per_epoch, verbose=0)
    np.savez(sys.argv[2], *[np.asarray(w) for w in model.get_weights()])
    print(json.dumps({"loss": hist.history["loss"][0]}))
""")


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    return {**env, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "3", **extra}


def _workers(sets: list[str], tmp_path) -> list[tuple[int, str]]:
    """Run `birdtpu fit` as workers 0 (chief) and 1; (return code, stderr) of each."""
    hosts = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    args = [sys.executable, "-m", "birdtpu.cli", "fit", *[x for o in sets for x in ("--set", o)]]
    procs = []
    for i in (0, 1):
        scratch = tmp_path / f"tmp{i}"
        scratch.mkdir()
        tf_config = json.dumps(
            {"cluster": {"worker": hosts}, "task": {"type": "worker", "index": i}}
        )
        procs.append(
            subprocess.Popen(
                args,
                cwd=ROOT,
                env=_env(TF_CONFIG=tf_config, TMPDIR=str(scratch)),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    try:
        outs = [p.communicate(timeout=TIMEOUT) for p in procs]
    finally:  # a worker left waiting on a collective is killed with the other
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()
    return [(p.returncode, err) for p, (_, err) in zip(procs, outs)]


@pytest.mark.slow
def test_two_workers_on_loopback_match_one_process_with_the_same_replicas(tmp_path, tiny_data):
    root, _ = tiny_data
    shards = tmp_path / "shards"
    sets = tiny_overrides(tmp_path, f"data.root={root}", f"shards.dir={shards}", "name=mw", *STILL)
    built = run_cli("shard", *[x for o in sets for x in ("--set", o)])
    assert built.returncode == 0, built.stderr[-2000:]

    (code0, log0), (code1, log1) = _workers(sets, tmp_path)
    assert code0 == 0 and code1 == 0, f"worker 0:\n{log0[-3000:]}\nworker 1:\n{log1[-3000:]}"
    assert (
        "over 2 cpu device(s) on 2 workers (chief)" in log0
        and "over 2 cpu device(s) on 2 workers (not chief)" in log1
    )
    for i, log in enumerate((log0, log1)):
        assert f"input pipeline {i} of 2 reads" in log
    assert not list((tmp_path / "tmp1").iterdir()), "worker 1 left its scratch folder behind"
    run = tmp_path / "runs" / "mw"
    assert {"config.yaml", "model.keras", "history.csv", "metrics.json", "oof_fold0.csv"} <= set(
        os.listdir(run)
    )

    ref_sets = [*sets, "runtime.cpu_replicas=2"]
    weights, initial = tmp_path / "reference.npz", tmp_path / "initial.npz"
    ref = subprocess.run(
        [sys.executable, "-c", REFERENCE, json.dumps(ref_sets), str(weights), str(initial)],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert ref.returncode == 0, ref.stderr[-3000:]
    ref_loss = json.loads(ref.stdout.strip().splitlines()[-1])["loss"]

    loss = pd.read_csv(run / "history.csv")["loss"].iloc[0]
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-5)
    import keras

    import birdtpu.models.registry  # noqa: F401  (registers the layers)

    trained = keras.models.load_model(
        run / "model.keras", compile=False, safe_mode=True
    ).get_weights()
    expected, start = list(np.load(weights).values()), list(np.load(initial).values())
    assert len(trained) == len(expected) == len(start)
    for got, want in zip(trained, expected):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    assert (
        max(float(np.abs(a - b).max()) for a, b in zip(expected, start)) > 1e-3
    )  # training moved them
