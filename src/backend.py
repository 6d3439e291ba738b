"""TensorFlow and Keras, imported once for every module of ``src`` that needs them.

TensorFlow prints start-up notices (oneDNN, CUDA probing) straight to the process's stderr before
its logging can be configured. They are silenced here, once, so that a user sees this project's
lines only; set RETINA_TF_VERBOSE=1 to see them. Errors still surface as Python exceptions.
``src.cli`` does not import it, and the scripts import the rest of ``src`` after parsing their
arguments, so every script's ``--help`` answers at once.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _import_quietly():
    if os.environ.get("RETINA_TF_VERBOSE"):
        import keras
        import tensorflow as tf

        return tf, keras
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            import keras
            import tensorflow as tf

            tf.config.list_physical_devices("GPU")  # probes CUDA now, while the notices are silenced
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    return tf, keras


tf, keras = _import_quietly()
