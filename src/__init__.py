"""The U-Net model, its training and its prediction.

TensorFlow prints start-up notices (oneDNN, CUDA probing) straight to the process's stderr before
its logging can be configured. They are silenced here, once, so that a user sees this project's
lines only; set RETINA_TF_VERBOSE=1 to see them. Errors still surface as Python exceptions.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _import_tensorflow_quietly() -> None:
    if os.environ.get("RETINA_TF_VERBOSE"):
        return
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            import tensorflow as tf

            tf.config.list_physical_devices("GPU")  # probes CUDA now, while the notices are silenced
    finally:
        os.dup2(saved, 2)
        os.close(saved)


_import_tensorflow_quietly()
