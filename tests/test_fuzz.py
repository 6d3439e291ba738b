"""Fuzzing the readers and the configuration parser: random corrupt bytes and random settings give a
clean ``UserError`` (or a successful read), never another exception.

Seeded numpy generators and bounded iteration counts keep it repeatable and fast (a few seconds).
A failure names the seed, the iteration and the mutation, so it can be replayed.
"""

import gzip
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lib.config import load_config
from lib.datasets import load_hdf5, write_hdf5
from lib.errors import UserError
from lib.imageio import read_binary, read_rgb

REPO = Path(__file__).resolve().parents[1]
SEED = 20240606
IMAGE_ROUNDS = 40  # mutations per format and reader
HDF5_ROUNDS = 80
CONFIG_ROUNDS = 300


# ------------------------------------------------------------------ mutations of a file's bytes


def truncate(rng, data: bytes) -> tuple[str, bytes]:
    cut = int(rng.integers(0, len(data)))
    return f"truncated to {cut} bytes", data[:cut]


def flip_bits(rng, data: bytes) -> tuple[str, bytes]:
    buffer = bytearray(data)
    count = int(rng.integers(1, 9))
    where = rng.integers(0, len(buffer), count)
    for index in where:
        buffer[index] ^= 1 << int(rng.integers(0, 8))
    return f"{count} bits flipped at {sorted(where.tolist())}", bytes(buffer)


def flip_header_bits(rng, data: bytes) -> tuple[str, bytes]:
    """Bit flips in the first 64 bytes, where formats keep their sizes, modes and offsets."""
    buffer = bytearray(data)
    where = rng.integers(0, min(64, len(buffer)), int(rng.integers(1, 4)))
    for index in where:
        buffer[index] ^= 1 << int(rng.integers(0, 8))
    return f"header bits flipped at {sorted(where.tolist())}", bytes(buffer)


def overwrite(rng, data: bytes) -> tuple[str, bytes]:
    start = int(rng.integers(0, len(data)))
    length = int(rng.integers(1, 64))
    junk = rng.integers(0, 256, length, dtype=np.uint8).tobytes()
    return f"{length} random bytes at {start}", (data[:start] + junk + data[start + length :])[: len(data)]


def random_bytes(rng, data: bytes) -> tuple[str, bytes]:
    length = int(rng.integers(0, 2 * len(data)))
    return f"{length} random bytes", rng.integers(0, 256, length, dtype=np.uint8).tobytes()


def keep_magic(rng, data: bytes) -> tuple[str, bytes]:
    """The format's signature followed by garbage: passes the identification, fails the decoder."""
    head = int(rng.integers(2, 16))
    junk = rng.integers(0, 256, int(rng.integers(0, 256)), dtype=np.uint8).tobytes()
    return f"first {head} bytes kept, then garbage", data[:head] + junk


MUTATIONS = (truncate, flip_bits, flip_header_bits, overwrite, random_bytes, keep_magic)


def mutate(rng, data: bytes) -> tuple[str, bytes]:
    mutation = MUTATIONS[int(rng.integers(0, len(MUTATIONS)))]
    return mutation(rng, data)


# ------------------------------------------------------------------ image readers


def _fundus(rng, height=24, width=20) -> np.ndarray:
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def _label(rng, height=24, width=20) -> np.ndarray:
    return np.where(rng.random((height, width)) < 0.2, 255, 0).astype(np.uint8)


def _encode(array: np.ndarray, file_format: str, **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=file_format, **options)
    return buffer.getvalue()


def sample_files() -> dict[str, tuple[bytes, object]]:
    """Valid files as the datasets ship them: file name -> (bytes, the reader that reads them)."""
    rng = np.random.default_rng(SEED)
    rgb, label = _fundus(rng), _label(rng)
    return {
        "photo.png": (_encode(rgb, "PNG"), read_rgb),
        "photo.tif": (_encode(rgb, "TIFF"), read_rgb),
        "photo_lzw.tif": (_encode(rgb, "TIFF", compression="tiff_lzw"), read_rgb),
        "photo.ppm": (_encode(rgb, "PPM"), read_rgb),
        "photo.ppm.gz": (gzip.compress(_encode(rgb, "PPM")), read_rgb),
        "photo.jpg": (_encode(rgb, "JPEG"), read_rgb),
        "label.gif": (_encode(label, "GIF"), read_binary),
        "label.png": (_encode(label, "PNG"), read_binary),
        "label.tif": (_encode(label, "TIFF"), read_binary),
        "label.pgm": (_encode(label, "PPM"), read_binary),
        "label.ppm.gz": (gzip.compress(_encode(np.stack([label] * 3, axis=-1), "PPM")), read_binary),
    }


SAMPLES = sample_files()


def test_the_samples_read_back(tmp_path):
    """The unmutated files are valid: the fuzzing starts from files the readers accept."""
    for name, (data, reader) in SAMPLES.items():
        (tmp_path / name).write_bytes(data)
        result = reader(tmp_path / name)
        assert result.shape[:2] == (24, 20), name
    assert {reader for _, reader in SAMPLES.values()} == {read_rgb, read_binary}


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_corrupt_images_give_user_errors(tmp_path, name):
    data, reader = SAMPLES[name]
    path = tmp_path / name
    path.write_bytes(data)
    reader(path)  # the original reads
    rng = np.random.default_rng([SEED, sorted(SAMPLES).index(name)])
    outcomes = {"read": 0, "refused": 0}
    for iteration in range(IMAGE_ROUNDS):
        what, corrupt = mutate(rng, data)
        if name.endswith(".gz") and rng.random() < 0.5:  # also corrupt the compressed payload itself
            what, inner = mutate(rng, gzip.decompress(data))
            what, corrupt = f"payload {what}", gzip.compress(inner)
        path.write_bytes(corrupt)
        try:
            result = reader(path)
        except UserError as error:
            message = str(error)
            assert "\n" not in message and str(path) in message, (iteration, what, message)
            outcomes["refused"] += 1
            continue
        except Exception as error:  # noqa: BLE001 - the point of the test
            pytest.fail(f"{name} iteration {iteration} ({what}): {type(error).__name__}: {error}")
        assert isinstance(result, np.ndarray) and result.dtype == np.uint8, (iteration, what)
        if reader is read_binary:
            assert set(np.unique(result)) <= {0, 255}, (iteration, what)
        else:
            assert result.ndim == 3 and result.shape[2] == 3, (iteration, what)
        outcomes["read"] += 1
    assert outcomes["refused"] > 0, outcomes  # the mutations did reach the error paths


def test_empty_and_directory_images(tmp_path):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    folder = tmp_path / "folder.tif"
    folder.mkdir()
    for path in (empty, folder, tmp_path / "missing.gif"):
        for reader in (read_rgb, read_binary):
            with pytest.raises(UserError, match=path.name):
                reader(path)


# ------------------------------------------------------------------ HDF5


@pytest.mark.parametrize("dtype", [np.uint8, np.float64])
def test_corrupt_hdf5_gives_user_errors(tmp_path, dtype):
    rng = np.random.default_rng([SEED, np.dtype(dtype).itemsize])
    path = tmp_path / "DRIVE_dataset_imgs_train.hdf5"
    write_hdf5(path, rng.integers(0, 256, (2, 3, 16, 12)).astype(dtype))
    data = path.read_bytes()
    assert load_hdf5(path, channels=3).shape == (2, 3, 16, 12)
    outcomes = {"read": 0, "refused": 0}
    for iteration in range(HDF5_ROUNDS):
        what, corrupt = mutate(rng, data)
        path.write_bytes(corrupt)
        try:
            array = load_hdf5(path, channels=3)
        except UserError as error:
            assert "\n" not in str(error) and str(path) in str(error), (iteration, what, str(error))
            outcomes["refused"] += 1
            continue
        except Exception as error:  # noqa: BLE001
            pytest.fail(f"iteration {iteration} ({what}): {type(error).__name__}: {error}")
        assert array.ndim == 4 and array.shape[1] == 3, (iteration, what)
        outcomes["read"] += 1
    assert outcomes["refused"] > 0, outcomes


# ------------------------------------------------------------------ configuration.txt

RANDOM_VALUES = (
    "",
    "0",
    "-1",
    "1",
    "3",
    "4",
    "7",
    "8",
    "48",
    "49",
    "1e3",
    "2.5",
    "-0.5",
    "0.0",
    "1.0",
    "nan",
    "inf",
    "-inf",
    "True",
    "False",
    "yes",
    "maybe",
    "none",
    "None",
    "%",
    "%(name)s",
    "%%",
    "$HOME",
    "[x]",
    "=",
    ":",
    ";",
    "#",
    "9" * 30,
    "9" * 5000,
    "1_000",
    "0x10",
    "  12  ",
    "\t",
    "é",
    "日本",
    "\\",
    "/",
    "..",
    ".",
    "a b",
    "best",
    "last",
    "sgd",
    "adam",
    "streaming",
    "cosine",
    "mixed_float16",
)


def _mutate_config(rng, lines: list[str]) -> tuple[str, str]:
    """One random mutation of configuration.txt's lines: delete, change a value, add junk, break a header."""
    lines = list(lines)
    kind = int(rng.integers(0, 8))
    index = int(rng.integers(0, len(lines)))
    if kind == 0:
        what = f"line {index + 1} deleted"
        del lines[index]
    elif kind in (1, 2):
        settings = [i for i, line in enumerate(lines) if "=" in line and not line.lstrip().startswith("#")]
        index = settings[int(rng.integers(0, len(settings)))]
        key = lines[index].split("=", 1)[0]
        value = RANDOM_VALUES[int(rng.integers(0, len(RANDOM_VALUES)))]
        if kind == 2:
            value = str(int(rng.integers(-(2**40), 2**40)))
        lines[index] = f"{key}= {value}"
        what = f"line {index + 1} set to {lines[index]!r}"
    elif kind == 3:
        junk = rng.integers(0, 256, int(rng.integers(1, 40)), dtype=np.uint8).tobytes()
        text = junk.decode("latin-1")
        lines.insert(index, text)
        what = f"random bytes {junk!r} inserted before line {index + 1}"
    elif kind == 4:
        headers = [i for i, line in enumerate(lines) if line.startswith("[")] or [index]  # short files may lose all
        index = headers[int(rng.integers(0, len(headers)))]
        lines[index] = lines[index].rstrip("]")
        what = f"header on line {index + 1} broken"
    elif kind == 5:
        lines.insert(index, lines[int(rng.integers(0, len(lines)))])
        what = f"a line duplicated before line {index + 1}"
    elif kind == 6:
        lines.insert(index, "   indented continuation")
        what = f"an indented line inserted before line {index + 1}"
    else:
        count = int(rng.integers(2, 6))
        for _ in range(count):
            del lines[int(rng.integers(0, len(lines)))]
        what = f"{count} random lines deleted"
    return what, "\n".join(lines) + "\n"


@pytest.mark.parametrize("source", ["configuration.txt", "configurations/fast.txt", "configurations/robust.txt"])
@pytest.mark.filterwarnings("ignore::lib.config.ConfigWarning")  # mutated keys are unknown keys
def test_mutated_configurations_give_user_errors(tmp_path, source):
    """Each file mutated where its chain of bases finds the others (a copy of the repo's configurations)."""
    original = (REPO / source).read_text().splitlines()
    rng = np.random.default_rng([SEED, len(source)])
    for name in ("configuration.txt", "configurations/fast.txt"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes((REPO / name).read_bytes())
    path = tmp_path / source
    outcomes = {"loaded": 0, "refused": 0}
    for iteration in range(CONFIG_ROUNDS):
        what, text = "", "\n".join(original) + "\n"
        for _ in range(int(rng.integers(1, 4))):  # one to three mutations at once
            step, text = _mutate_config(rng, text.splitlines())
            what += step + "; "
        if rng.random() < 0.1:  # sometimes as raw bytes, not necessarily UTF-8
            path.write_bytes(text.encode("latin-1", errors="replace"))
        else:
            path.write_text(text, encoding="utf-8")
        try:
            config = load_config(path)
        except UserError as error:
            message = str(error)
            assert "\n" not in message and str(path) in message, (iteration, what, message)
            outcomes["refused"] += 1
            continue
        except Exception as error:  # noqa: BLE001
            pytest.fail(f"{source} iteration {iteration} ({what}): {type(error).__name__}: {error}")
        inference = config.testing.inference
        assert config.training.patch_hw[0] % 4 == 0 and inference.stride_hw[0] <= inference.patch_hw[0], what
        assert config.training.batch_size >= 1 and config.training.N_epochs >= 1, what
        outcomes["loaded"] += 1
    assert outcomes["refused"] > CONFIG_ROUNDS // 4 and outcomes["loaded"] > 0, outcomes


def test_random_bytes_as_configuration(tmp_path):
    rng = np.random.default_rng(SEED)
    path = tmp_path / "configuration.txt"
    for iteration in range(50):
        path.write_bytes(rng.integers(0, 256, int(rng.integers(0, 400)), dtype=np.uint8).tobytes())
        with pytest.raises(UserError) as error:
            load_config(path)
        message = str(error.value)
        assert "\n" not in message and str(path) in message, (iteration, message)
