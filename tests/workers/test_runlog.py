"""A run's own log lines: TensorFlow's and CUDA's messages left out."""

from __future__ import annotations

import logging
import subprocess
import sys

from tlcore.workers import runlog

# A CPU machine's log.txt: absl and TF C++ notices, the run's records, Keras's epoch
# lines, a `tensorflow` logger warning, a Python warning, and a failure's traceback.
NOISY_LOG = """\
WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
I0000 00:00:1795836728.533424   20488 port.cc:153] oneDNN custom operations are on. You may see slightly different numerical results due to floating-point round-off errors from different computation orders. To turn them off, set the environment variable `TF_ENABLE_ONEDNN_OPTS=0`.
I0000 00:00:1795836728.535547   20488 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.
I0000 00:00:1795836786.607979   21024 cpu_feature_guard.cc:227] This TensorFlow binary is optimized to use available CPU instructions in performance-critical operations.
To enable the following instructions: AVX2 AVX512F FMA, in other operations, rebuild TensorFlow with the appropriate compiler flags.
E0000 00:00:1795836732.894844   20488 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)
2026-11-28 03:32:12.894901: E external/local_xla/xla/stream_executor/cuda/cuda_driver.cc:152] failed call to cuInit: UNKNOWN ERROR (303)
2026-11-28 03:32:12,900 INFO tlcore.engine.train: run 68e8be6485b8 on CPU, mixed precision off
2026-11-28 03:32:13,086 INFO tlcore.engine.train: data: train 224, val 64, test 32
2026-11-28 03:32:17,297 INFO tlcore.engine.train: phase 1: epochs 1-3
Epoch 1/3
28/28 - 2s - 80ms/step - accuracy: 0.2143 - loss: 1.3913 - val_accuracy: 0.3125 - val_loss: 1.3764
/venv/lib/python3.11/site-packages/keras/src/trainers/epoch_iterator.py:160: UserWarning: Your input ran out of data; interrupting training.
  self._interrupted_warning()
Epoch 2/3
28/28 - 1s - 26ms/step - accuracy: 0.2857 - loss: 1.3795 - val_accuracy: 0.2500 - val_loss: 1.3681
2026-11-28 03:32:31,559 WARNING tensorflow: 5 out of the last 5 calls to <function phase_inputs.<locals>.<lambda> at 0x7fb81297da80> triggered tf.function retracing.
2026-11-28 03:32:31,600 WARNING tlcore.workers.run: heartbeat failed: database is locked
    (retried on the next beat)
I0000 00:00:1795836790.000001   20488 service.cc:152] XLA service 0x55d0 initialized for platform Host
Traceback (most recent call last):
  File "/app/tlcore/worker.py", line 120, in main
    run_training(run_id, ws, resume=resume)
  File "/app/tlcore/train.py", line 540, in run_training
    raise DatasetError("Dataset 'pets' has no images in its train split.")
tlcore.errors.DatasetError: Dataset 'pets' has no images in its train split.
W0000 00:00:1795836791.000001   20488 op_level_cost_estimator.cc:699] Error in PredictCost() for the op
"""

OWN = [
    "2026-11-28 03:32:12,900 INFO tlcore.engine.train: run 68e8be6485b8 on CPU, mixed precision off",
    "2026-11-28 03:32:13,086 INFO tlcore.engine.train: data: train 224, val 64, test 32",
    "2026-11-28 03:32:17,297 INFO tlcore.engine.train: phase 1: epochs 1-3",
    "Epoch 1/3",
    "28/28 - 2s - 80ms/step - accuracy: 0.2143 - loss: 1.3913 - val_accuracy: 0.3125 - "
    "val_loss: 1.3764",
    "Epoch 2/3",
    "28/28 - 1s - 26ms/step - accuracy: 0.2857 - loss: 1.3795 - val_accuracy: 0.2500 - "
    "val_loss: 1.3681",
    "2026-11-28 03:32:31,600 WARNING tlcore.workers.run: heartbeat failed: database is locked",
    "    (retried on the next beat)",
    "Traceback (most recent call last):",
    '  File "/app/tlcore/worker.py", line 120, in main',
    "    run_training(run_id, ws, resume=resume)",
    '  File "/app/tlcore/train.py", line 540, in run_training',
    "    raise DatasetError(\"Dataset 'pets' has no images in its train split.\")",
    "tlcore.errors.DatasetError: Dataset 'pets' has no images in its train split.",
]


def test_own_lines_leave_tensorflow_and_cuda_out():
    own = runlog.own_log_lines(NOISY_LOG)
    assert own == OWN
    assert not any("cuInit" in line or "oneDNN" in line or "retracing" in line for line in own)


def test_only_noise_or_nothing_gives_no_lines():
    noise = "\n".join(line for line in NOISY_LOG.splitlines() if line not in OWN)
    assert runlog.own_log_lines(noise) == []
    assert runlog.own_log_lines("") == []


def test_records_of_the_worker_format_are_recognised():
    """A record formatted with the worker's own format is the run's line."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(runlog.LOG_FORMAT))
    record = logging.LogRecord("tlcore.engine.train", logging.INFO, __file__, 1, "phase %d", (2,), None)
    line = handler.format(record)
    assert runlog.own_log_lines(f"noise\n{line}\n") == [line]
    other = logging.LogRecord("tlcoreish", logging.INFO, __file__, 1, "not ours", (), None)
    assert runlog.own_log_lines(handler.format(other)) == []


def test_runlog_imports_no_tensorflow():
    code = ("import sys, tlcore.workers.runlog; "
            "print(any(m in sys.modules for m in ('streamlit', 'tensorflow', 'keras')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
