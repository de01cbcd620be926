"""The Keras metrics under a real 2-replica MirroredStrategy equal the NumPy metrics.

The CPU is split into two logical devices, which must happen before TensorFlow initialises, so
the check runs this file as a script in a fresh process and compares the JSON it prints.
"""

import json
import os
import subprocess
import sys

import pytest

KERAS_TOL = 1e-6  # float32 state and arithmetic against float64 NumPy


def _worker() -> dict:
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    import numpy as np

    from birdtpu import metrics as M
    from birdtpu.metrics import streaming as S

    rng = np.random.default_rng(5)
    n, c = 203, 12  # 203 rows in global batches of 16: the last one splits 6 / 5 over the replicas
    y = (rng.random((n, c)) < 0.2).astype(np.float32)
    s = rng.random((n, c)).astype(np.float32)
    s[:60] = np.round(s[:60], 1)
    y[:, 0] = 0

    def metrics():
        return [
            S.MacroROCAUC(c, capacity=512),
            S.MacroPRAUC(c, capacity=512),
            S.PaddedCMAP(c, capacity=512),
            S.LWLRAP(c),
            S.TopKAccuracy(2),
        ]

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        loop_metrics = metrics()
        model = keras.Sequential([keras.Input((c,)), keras.layers.Identity()])
        model.compile(loss="binary_crossentropy", metrics=metrics(), jit_compile=False)

    @tf.function
    def step(yb, sb):
        strategy.run(lambda a, b: [m.update_state(a, b) for m in loop_metrics], (yb, sb))

    for yb, sb in strategy.experimental_distribute_dataset(
        tf.data.Dataset.from_tensor_slices((y, s)).batch(16)
    ):
        step(yb, sb)
    logs = model.evaluate(s, y, batch_size=16, return_dict=True, verbose=0)
    return {
        "replicas": strategy.num_replicas_in_sync,
        "rows_per_replica": [
            float(v) for v in strategy.experimental_local_results(loop_metrics[0].rows.value)
        ],
        "loop": {m.name: float(m.result()) for m in loop_metrics},
        "evaluate": {k: v for k, v in logs.items() if k != "loss"},
        "numpy": {
            name: M.METRICS[name](y, s)
            for name in ("macro_roc_auc", "macro_pr_auc", "padded_cmap", "lwlrap")
        }
        | {"top2_accuracy": M.top_k_accuracy(y, s, k=2)},
    }


@pytest.mark.slow
def test_keras_metrics_across_two_replicas_equal_numpy():
    import keras  # here, as in _worker: the script's devices are set before TensorFlow starts

    if keras.backend.backend() != "tensorflow":
        pytest.skip("tf.distribute replicas are the TensorFlow backend's")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run(
        [sys.executable, __file__], capture_output=True, text=True, env=env, cwd=root, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["replicas"] == 2
    assert all(rows > 0 for rows in out["rows_per_replica"]) and sum(out["rows_per_replica"]) == 203
    assert set(out["loop"]) == set(out["numpy"]) and len(out["evaluate"]) == 5
    for name, ref in out["numpy"].items():
        assert out["loop"][name] == pytest.approx(ref, abs=KERAS_TOL), name
        assert out["evaluate"][name] == pytest.approx(ref, abs=KERAS_TOL), name


if __name__ == "__main__":
    sys.path.insert(0, os.getcwd())
    print(json.dumps(_worker()))
