"""A run's own lines in its `log.txt`, without TensorFlow's and CUDA's messages (no TensorFlow).

A worker (`tlcore.workers.run`) sends its stdout and stderr to `runs/<id>/log.txt`,
TensorFlow's C++ logs included: on a machine without a GPU most of the file is
"failed call to cuInit", oneDNN and CPU-feature notices. The run's own output is

* the records of the `tlcore.*` loggers, in the worker's logging format
  (`LOG_FORMAT`: `2026-11-28 03:32:12,900 INFO tlcore.engine.train: ...`), with their
  indented continuation lines;
* Keras's per-epoch lines (`fit(verbose=2)`): `Epoch 3/10` and
  `28/28 - 2s - 80ms/step - accuracy: ...`;
* Python tracebacks (a failed run's, printed by the worker).

Everything else (absl and TensorFlow C++ lines, other Python loggers such as
`tensorflow`'s retracing warnings, Python warnings) is left to the raw log.
"""

from __future__ import annotations

import re

# The worker's `logging.basicConfig` format; `OWN_RECORD` reads it back.
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
OWN_LOGGER = "tlcore"

_RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ (?P<logger>[\w.]+): ")
_KERAS_EPOCH = re.compile(r"^Epoch \d+/\d+\s*$")
_KERAS_SUMMARY = re.compile(r"^\d+/\d+ - \d")
_TRACEBACK_STARTS = ("Traceback (most recent call last):",
                     "During handling of the above exception",
                     "The above exception was the direct cause")


def _is_own_logger(name: str) -> bool:
    return name == OWN_LOGGER or name.startswith(OWN_LOGGER + ".")


def own_log_lines(text: str) -> list[str]:
    """The lines of a run log that the run itself wrote, in order.

    Args:
        text: The log text (or its tail; a record cut at the start is dropped).

    Returns:
        The `tlcore.*` logger records with their indented continuation lines,
        Keras's epoch lines and Python tracebacks; `[]` when there are none.
    """
    own: list[str] = []
    inside = None  # "record" after an own record, "traceback" inside a traceback
    for line in text.splitlines():
        record = _RECORD.match(line)
        if record:
            inside = "record" if _is_own_logger(record["logger"]) else None
            if inside:
                own.append(line)
        elif line.startswith(_TRACEBACK_STARTS):
            inside = "traceback"
            own.append(line)
        elif _KERAS_EPOCH.match(line) or _KERAS_SUMMARY.match(line):
            inside = None
            own.append(line)
        elif inside == "traceback" and line.strip():
            own.append(line)
            if not line[0].isspace():  # the exception's own line ends the traceback
                inside = None
        elif inside == "record" and line[:1].isspace() and line.strip():
            own.append(line)
        else:
            inside = None
    return own
