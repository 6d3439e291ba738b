"""What computes the U-Net: Keras, or ONNX Runtime on an ONNX model built from the same weights.

``load_engine(weights, inference)`` returns an ``Engine``: its ``predict`` takes an (N, H, W, 1) float32 batch of
preprocessed images or patches and gives the (N, H, W) float32 vessel probabilities. ``src.prediction`` batches,
pads, flips and averages around it, the same for every engine.

``onnxruntime`` runs the ONNX model that ``src.export`` writes (the same converter, verified against Keras on a
synthetic fundus of CHECK_SHAPE, here within TOLERANCE instead of the export's 1e-4), built on first use and cached
beside the weights, or in the user's cache folder when theirs is not writable. The cache file's name holds the
SHA-256 of the weights it was built from (a file retrained in place is another model: never served a stale cache),
the conversion's version, and the SHA-256 of the ONNX file itself, checked before each use (a damaged file is
rebuilt). ``auto`` is the fastest engine installed whose probabilities match Keras float32 within TOLERANCE:
onnxruntime (faster than Keras on CPUs, measured in docs/engines.md) when its packages are there, Keras otherwise.
"""

import hashlib
import importlib.metadata
import importlib.util
import os
import re
import tempfile
import time
from pathlib import Path

import numpy as np

from lib.errors import UserError
from lib.inference import Inference
from lib.run_folder import weights_digest

TOLERANCE = 1e-5  # the largest |ONNX Runtime - Keras float32| probability accepted when the model is built
CACHE_VERSION = 1  # of the conversion (src.export's graph and opset): a new one never serves the older files
ONNX_PACKAGES = ("onnxruntime", "onnx", "tf2onnx")  # requirements-export.txt
INSTALL = "pip install -r requirements-export.txt"
KEY_DIGITS = 16  # hex digits of each SHA-256 in a cache file's name
# The synthetic fundus the built model is verified on: every layer of the U-Net at a quarter of DRIVE's pixels,
# so that the first use costs about 5 s (tests/test_engines.py compares the engines on the real DRIVE images)
CHECK_SHAPE = (1, 288, 288)


class Engine:
    """An engine's interface: ``predict`` (N, H, W, 1) float32 → (N, H, W) float32 vessel probabilities."""

    name = "engine"

    def predict(self, batch: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class KerasEngine(Engine):
    """A Keras model (or any object with Keras' ``predict_on_batch``), one batch per call: Keras' ``predict``
    would wrap the array in a tf.data pipeline on every call, 40 % slower on CPU."""

    name = "keras"

    def __init__(self, model):
        self.model = model

    def predict(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict_on_batch(batch))[..., 1]


class OnnxEngine(Engine):
    """An ONNX Runtime session on an exported U-Net: one thread per core working through the graph in order,
    every graph optimisation on, and no busy-waiting between operators, which on a few cores would take them
    from the threads that read and write photographs. No memory pattern: ONNX Runtime would plan one for each
    new input shape, and photographs come in many (each its FOV's box), so every photograph would pay the
    planning (1.5x its network time on 3504x2336 photographs) and the plans would pile up; without it the
    arena still reuses its memory, and fixed-shape patch batches run as fast."""

    name = "onnxruntime"

    def __init__(self, path: Path):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = cores()
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.enable_mem_pattern = False
        options.log_severity_level = 3  # errors only: its warnings are about the graph's shapes, not the user's input
        self.session = onnxruntime.InferenceSession(str(path), options, providers=providers())
        self.input, self.output = self.session.get_inputs()[0].name, self.session.get_outputs()[0].name
        self.path = path

    def predict(self, batch: np.ndarray) -> np.ndarray:
        feed = {self.input: np.ascontiguousarray(batch, dtype=np.float32)}
        return self.session.run([self.output], feed)[0]


def as_engine(network) -> Engine:
    """An Engine as it is, anything else (a Keras model) wrapped in a KerasEngine."""
    return network if isinstance(network, Engine) else KerasEngine(network)


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def gpu_visible() -> bool:
    """Whether an NVIDIA GPU is there for TensorFlow (checked without loading it)."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    gpus = Path("/proc/driver/nvidia/gpus")
    return gpus.is_dir() and any(gpus.iterdir())


def providers() -> list[str]:
    """ONNX Runtime's CUDA provider when its GPU build (onnxruntime-gpu) sees a GPU, with its CPU provider."""
    import onnxruntime

    available = onnxruntime.get_available_providers()
    cuda = "CUDAExecutionProvider" in available and gpu_visible()
    return ["CUDAExecutionProvider", "CPUExecutionProvider"] if cuda else ["CPUExecutionProvider"]


def resolve(inference: Inference) -> tuple[str, str]:
    """The engine that ``inference.engine`` means here (``keras`` or ``onnxruntime``) and why, in a few words;
    UserError for an engine asked for that cannot run. Nothing is loaded."""
    asked = inference.engine
    if asked == "keras":
        return "keras", "chosen"
    if inference.precision != "float32":
        if asked == "onnxruntime":
            raise UserError(
                f"engine onnxruntime computes in float32; precision {inference.precision} needs engine keras"
            )
        return "keras", f"auto: precision {inference.precision} is a Keras dtype policy"
    missing = [name for name in ONNX_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        if asked == "onnxruntime":
            raise UserError(f"engine onnxruntime needs {', '.join(missing)}, not installed: {INSTALL}")
        return "keras", f"auto; note: {', '.join(missing)} not installed, {INSTALL} for the faster onnxruntime"
    if asked == "auto" and gpu_visible() and providers() == ["CPUExecutionProvider"]:
        return "keras", "auto: TensorFlow uses the GPU, onnxruntime has no CUDA provider (pip install onnxruntime-gpu)"
    if asked == "onnxruntime":
        return "onnxruntime", "chosen"
    return "onnxruntime", f"auto: the fastest installed engine matching Keras within {TOLERANCE:g}"


def announce(inference: Inference) -> str:
    """The line saying which engine runs, and why."""
    engine, why = resolve(inference)
    if engine == "keras":
        return f"engine: keras, TensorFlow {importlib.metadata.version('tensorflow')} ({why})"
    device = "CUDA" if providers()[0].startswith("CUDA") else f"CPU, {cores()} threads"
    return f"engine: onnxruntime {importlib.metadata.version('onnxruntime')} on {device} ({why})"


def load_engine(weights: Path, inference: Inference, quiet: bool = False) -> Engine:
    """The engine for ``inference`` with the U-Net ``weights``; unless ``quiet``, first the line saying which.

    With ``auto``, an ONNX model that cannot be built or does not match Keras within TOLERANCE is a one-line note
    and Keras runs; asked for by name, it is an error.
    """
    if not quiet:
        print(announce(inference), flush=True)
    engine, _ = resolve(inference)
    if engine == "onnxruntime" and Path(weights).is_file():  # a missing file: Keras' loader says so below
        try:
            return OnnxEngine(onnx_model(Path(weights)))
        except UserError as error:
            if inference.engine == "onnxruntime":
                raise
            print(f"note: the onnxruntime engine cannot run ({error}); the keras engine runs instead", flush=True)
    from src.model import load_trained_model

    return KerasEngine(load_trained_model(weights, inference.precision))


def cache_key(weights: Path, digest: str) -> str:
    """The start of the names of the ONNX models built from ``weights`` (whose SHA-256 is ``digest``)."""
    return f"{weights.name}.{digest[:KEY_DIGITS]}.v{CACHE_VERSION}"


def user_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "retina-unet" / "onnx"


def file_digest(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def cached_model(folder: Path, key: str) -> Path | None:
    """The intact ONNX model named ``key`` in ``folder``; damaged ones (their content's SHA-256 is not the one
    their name holds) are removed."""
    pattern = re.compile(re.escape(key) + rf"\.([0-9a-f]{{{KEY_DIGITS}}})\.onnx")
    for path in sorted(folder.glob(f"{glob_escape(key)}.*.onnx")):
        match = pattern.fullmatch(path.name)
        if match is None:
            continue
        try:
            if file_digest(path)[:KEY_DIGITS] == match.group(1):
                return path
            path.unlink()
        except OSError:
            continue
    return None


def glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)


def onnx_model(weights: Path) -> Path:
    """The cached ONNX model of ``weights``, built (and verified against Keras) first when there is none."""
    key = cache_key(weights, weights_digest(weights))
    folders = [weights.resolve().parent, user_cache()]
    for folder in folders:
        found = cached_model(folder, key) if folder.is_dir() else None
        if found is not None:
            return found
    folder = folders[0]
    if not writable(folder):
        folder = folders[1]
        print(f"note: {folders[0]} is not writable: the ONNX model of {weights.name} goes to {folder}/", flush=True)
    return build(weights, folder, key)


def writable(folder: Path) -> bool:
    return os.access(folder, os.W_OK)


def build(weights: Path, folder: Path, key: str) -> Path:
    """Convert ``weights`` to ONNX into ``folder`` (src.export, verified within TOLERANCE), named ``key`` and
    its content's SHA-256, atomically; the models of earlier weights of the same name are removed."""
    from src.export import export

    print(f"building the ONNX model of {weights} (once; about 5 s) ...", flush=True)
    start = time.perf_counter()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, staged = tempfile.mkstemp(prefix=f".{key}.", suffix=".onnx", dir=folder)
        os.close(handle)
    except OSError as error:
        raise UserError(f"{folder}: cannot write the ONNX model ({error.strerror})") from None
    staged = Path(staged)
    try:
        verification = export(weights, "onnx", staged, CHECK_SHAPE, tolerance=TOLERANCE)
        path = folder / f"{key}.{file_digest(staged)[:KEY_DIGITS]}.onnx"
        os.replace(staged, path)
    finally:
        staged.unlink(missing_ok=True)
    for old in folder.glob(f"{glob_escape(weights.name)}.*.onnx"):
        if old != path and re.fullmatch(rf"{re.escape(weights.name)}\.[0-9a-f]+\.v\d+\.[0-9a-f]+\.onnx", old.name):
            old.unlink(missing_ok=True)
    print(f"built {path} in {time.perf_counter() - start:.0f} s: {verification}", flush=True)
    return path
