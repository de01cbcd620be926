import subprocess
import sys
import textwrap

from birdtpu.runtime import precision_for


def test_precision_by_device():
    assert precision_for("tpu", "auto") == "mixed_bfloat16"
    assert precision_for("gpu", "auto") == "mixed_float16"
    assert precision_for("cpu", "auto") == "float32"
    assert precision_for("cpu", "mixed_bfloat16") == "mixed_bfloat16"


def test_cpu_split_gives_a_real_two_replica_strategy():
    code = textwrap.dedent("""
        import keras, tensorflow as tf
        from birdtpu.config import load_config
        from birdtpu.runtime import setup
        run = setup(load_config(None, ["runtime.cpu_replicas=2", "runtime.seed=5"]).runtime)
        assert run.device == "cpu" and run.replicas == 2, run
        assert isinstance(run.strategy, tf.distribute.MirroredStrategy)
        values = run.strategy.experimental_local_results(
            run.strategy.run(lambda: tf.distribute.get_replica_context().replica_id_in_sync_group))
        assert [int(v) for v in values] == [0, 1]
        assert keras.mixed_precision.global_policy().name == "float32"
        print("ok")
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]


def test_seed_makes_runs_repeat():
    code = textwrap.dedent("""
        import numpy as np, keras
        from birdtpu.runtime import set_seed
        set_seed(3); a = (np.random.rand(), keras.random.uniform((2,)).numpy().tolist())
        set_seed(3); b = (np.random.rand(), keras.random.uniform((2,)).numpy().tolist())
        print(a == b)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip() == "True", proc.stderr[-2000:]
