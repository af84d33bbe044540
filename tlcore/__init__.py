"""Transfer-learning studio core: config, datasets, training workers, run store.

Importing `tlcore` (or any module the UI uses) never imports TensorFlow; only
`tlcore.engine.model`, `tlcore.engine.train`, `tlcore.workers.run` and the evaluation/export
modules do, and they run in worker processes.
"""

__version__ = "0.1.0"
