"""Transfer-learning studio core: config, datasets, training workers, run store.

Importing `tlcore` (or any module the UI uses) never imports TensorFlow; only
`tlcore.engine` imports Keras when loaded, and the workers (`tlcore.workers`) and the
evaluation, predict and export modules (`tlcore.results`) import it inside the
functions that need it, in worker processes.
"""

__version__ = "0.1.0"
