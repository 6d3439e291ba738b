"""About a hundred malformed inputs, as a table (issue 27's acceptance): command lines of every script, damaged
photographs, labels, masks and run-folder files, and configurations mutated at random (seeded, so a failure
replays). Each case runs its script as ``python script args`` would, in this process, in a small folder of its
own; each must end with exit 0, or exit 1 and ``error:`` lines only, never a traceback, and change no file outside
the outputs it names.

The photographs go through the stand-in network of tests/test_run_prediction.py (no weights are read); the
configurations through ``run_stare_leave_one_out.py --compare``, which parses a configuration whole and then reads
no data, so that a mutation that happens to be valid trains nothing.
"""

import dataclasses
import gzip
import io
from pathlib import Path

import numpy as np
import pytest
from helpers import REPO, make_config
from PIL import Image
from test_fuzz import MUTATIONS
from test_reliability import files_of, run_in_process
from test_run_prediction import photo, save

SEED = 20270127
PHOTOS = ("p0.png", "p1.png")
W = "w.weights.h5"
SMALL = ("--fov-diameter", "64")  # the stand-in needs no DRIVE scale: keep the photographs tiny


@dataclasses.dataclass(frozen=True)
class Case:
    script: str
    args: tuple = ()
    setup: object = None  # setup(folder) makes the bad input in the case's folder
    outputs: tuple = ("out", "predictions")  # what the script may write (folder-relative); the rest must not change


def world(folder: Path) -> None:
    """What every case starts from: two photographs, a weights file, a configuration, an empty folder, notes."""
    for index, name in enumerate(PHOTOS):
        save(folder / "photos" / name, photo(index)[0])
    (folder / "w.weights.h5").write_bytes(b"stand-in weights: never read")
    (folder / "empty").mkdir()
    (folder / "notes.txt").write_text("the team's notes\n")
    make_config(folder, tiny=True)


def write(relative: str, data) -> object:
    def setup(folder: Path) -> None:
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        content = data(folder) if callable(data) else data
        path.write_bytes(content if isinstance(content, bytes) else content.encode())

    return setup


def image_bytes(array: np.ndarray, file_format: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=file_format)
    return buffer.getvalue()


def both(*setups):
    def setup(folder: Path) -> None:
        for one in setups:
            one(folder)

    return setup


def predicting(*args, setup=None, outputs=("out",)) -> Case:
    return Case("run_prediction.py", (*args, *SMALL), setup, outputs)


def p0_as(array) -> Case:
    """Photograph p0 replaced by ``array``, both photographs segmented."""
    return predicting("photos", "-o", "out", setup=write("photos/p0.png", image_bytes(array)))


def in_out(*args, setup=None) -> Case:
    """The photographs into out/, with ``args``."""
    return predicting("photos", "-o", "out", *args, setup=setup)


def with_labels(array) -> object:
    return write("labels/p0.png", image_bytes(array))


def ran_before(folder: Path) -> None:
    """An output folder as an earlier run left it: summary.csv and settings.json."""
    out = folder / "out"
    out.mkdir()
    (out / "summary.csv").write_text(f"image,width\n{folder / 'photos' / 'p0.png'},100\n")
    (out / "settings.json").write_text("{}")


# ------------------------------------------------------------------ command lines


COMMAND_LINES = {
    "prediction: no images": predicting("-o", "out"),
    "prediction: shard 0/2": predicting("photos", "-o", "out", "--shard", "0/2"),
    "prediction: shard 3/2": predicting("photos", "-o", "out", "--shard", "3/2"),
    "prediction: shard x": predicting("photos", "-o", "out", "--shard", "x"),
    "prediction: shard 1/0": predicting("photos", "-o", "out", "--shard", "1/0"),
    "prediction: threshold 1.5": predicting("photos", "-o", "out", "--threshold", "1.5"),
    "prediction: threshold nan": predicting("photos", "-o", "out", "--threshold", "nan"),
    "prediction: threshold -0.1": predicting("photos", "-o", "out", "--threshold", "-0.1"),
    "prediction: threshold abc": predicting("photos", "-o", "out", "--threshold", "abc"),
    "prediction: fov diameter 0": Case("run_prediction.py", ("photos", "-o", "out", "--fov-diameter", "0")),
    "prediction: fov diameter -5": Case("run_prediction.py", ("photos", "-o", "out", "--fov-diameter", "-5")),
    "prediction: fov diameter 1e9": Case("run_prediction.py", ("photos", "-o", "out", "--fov-diameter", "1e9")),
    "prediction: outputs unknown": predicting("photos", "-o", "out", "--outputs", "nothing"),
    "prediction: outputs empty": predicting("photos", "-o", "out", "--outputs", ""),
    "prediction: outputs twice": predicting("photos", "-o", "out", "--outputs", "vessels,vessels"),
    "prediction: stride 0": predicting("photos", "-o", "out", "--stride", "0"),
    "prediction: stride -3": predicting("photos", "-o", "out", "--stride", "-3"),
    "prediction: stride and flips": predicting("photos", "-o", "out", "--stride", "8", "--flips"),
    "prediction: unknown option": predicting("photos", "-o", "out", "--bogus"),
    "prediction: merge with images": predicting("photos", "-o", "out", "--merge"),
    "prediction: merge without parts": predicting("-o", "out", "--merge"),
    "prediction: -o the input folder": predicting("photos", "-o", "photos"),
    "prediction: -o inside the inputs": predicting("photos", "-o", "photos/results"),
    "prediction: -o a photograph": predicting("photos", "-o", "photos/p0.png"),
    "prediction: -o containing the inputs": predicting("photos/p0.png", "-o", "."),
    "prediction: -o an existing file": predicting("photos", "-o", "notes.txt"),
    "prediction: -o a folder of something else": predicting(
        "photos", "-o", "docs", setup=write("docs/p0_vessels.txt", "the team's own"), outputs=()
    ),
    "prediction: -o the weights": predicting("photos", "-o", "w.weights.h5", "--weights", "w.weights.h5"),
    "prediction: -o a name too long": predicting("photos", "-o", "o" * 300, outputs=("o" * 300,)),
    "prediction: input missing": predicting("nowhere", "-o", "out"),
    "prediction: input an empty folder": predicting("empty", "-o", "out"),
    "prediction: input not an image": predicting("notes.txt", "-o", "out"),
    "prediction: pattern matching nothing": predicting("photos/*.jpg", "-o", "out"),
    "prediction: masks missing": predicting("photos", "-o", "out", "--masks", "nowhere"),
    "prediction: labels an empty folder": predicting("photos", "-o", "out", "--labels", "empty"),
    "prediction: weights missing": predicting("photos", "-o", "out", "--weights", "none.weights.h5"),
    "prediction: model folder missing": predicting("photos", "-o", "out", "--model", "nowhere"),
    "prediction: model and weights": predicting("photos", "-o", "out", "--model", "x", "--weights", "w.weights.h5"),
    "measurements: no maps": Case("run_measurements.py", ("-o", "m.csv"), outputs=("m.csv",)),
    "measurements: map missing": Case("run_measurements.py", ("nowhere.png", "-o", "m.csv"), outputs=("m.csv",)),
    "measurements: -o the map": Case("run_measurements.py", ("photos/p0.png", "-o", "photos/p0.png")),
    "measurements: -o a folder": Case("run_measurements.py", ("photos/p0.png", "-o", "empty")),
    "measurements: -o a CSV of the team's": Case(
        "run_measurements.py",
        ("maps/a.png", "-o", "team.csv"),
        both(
            write("maps/a.png", image_bytes(np.where(np.eye(64, dtype=bool), 255, 0).astype(np.uint8))),
            write("team.csv", "patient;age\r\n17;54\r\n"),
        ),
    ),
    "measurements: a photograph, not a map": Case("run_measurements.py", ("photos", "-o", "m.csv"), outputs=("m.csv",)),
    "measurements: an empty file": Case(
        "run_measurements.py", ("maps/a.png", "-o", "m.csv"), write("maps/a.png", b""), outputs=("m.csv",)
    ),
    "measurements: 16-bit, three levels": Case(
        "run_measurements.py",
        ("maps/a.png", "-o", "m.csv"),
        write("maps/a.png", lambda folder: image_bytes(np.repeat(np.array([[0, 20000, 65535]], np.uint16), 40, 0))),
        outputs=("m.csv",),
    ),
    "export: unknown format": Case("run_export.py", ("--format", "zip", "-o", "x", "--weights", "w.weights.h5")),
    "export: no -o": Case("run_export.py", ("--format", "onnx", "--weights", "w.weights.h5")),
    "export: -o the weights": Case(
        "run_export.py", ("--format", "onnx", "-o", "w.weights.h5", "--weights", "w.weights.h5")
    ),
    "export: weights missing": Case(
        "run_export.py", ("--format", "tflite", "-o", "x.tflite", "--weights", "none.weights.h5"), outputs=("x.tflite",)
    ),
    "export: savedmodel over a folder of notes": Case(
        "run_export.py", ("--format", "savedmodel", "-o", ".", "--weights", "w.weights.h5")
    ),
    "training: configuration missing": Case("run_training.py", ("--config", "nowhere.txt")),
    "training: configuration a folder": Case("run_training.py", ("--config", "empty")),
    "training: configuration binary": Case(
        "run_training.py", ("--config", "c.txt"), write("c.txt", bytes(range(256)) * 4)
    ),
    "training: configuration empty": Case("run_training.py", ("--config", "c.txt"), write("c.txt", b"")),
    "training: resume and overwrite": Case("run_training.py", ("--resume", "--overwrite")),
    "training: unknown option": Case("run_training.py", ("--epochs", "3")),
    "finetune: photographs without labels": Case("run_finetune.py", ("photos",)),
    "finetune: masks alone": Case("run_finetune.py", ("--masks", "photos")),
    "finetune: configuration missing": Case("run_finetune.py", ("photos", "--labels", "photos", "--config", "x.txt")),
    "finetune: into its photographs' folder": Case(
        "run_finetune.py", ("photos", "--labels", "photos", "--config", "configuration.txt", "--name", "photos")
    ),
    "testing: configuration missing": Case("run_testing.py", ("--config", "nowhere.txt")),
    "testing: weights missing": Case("run_testing.py", ("--weights", "none.weights.h5")),
    "stare: folds not ids": Case("run_stare_leave_one_out.py", ("--config", "configuration.txt", "--folds", "x1")),
    "stare: compare a missing configuration": Case("run_stare_leave_one_out.py", ("--compare", "nowhere.txt")),
    "stare: default configuration missing": Case("run_stare_leave_one_out.py"),
}


# ------------------------------------------------------------------ files: photographs, labels, masks, run folders


def mutated_photographs(count: int) -> dict[str, Case]:
    """p0 in several formats, its bytes damaged by test_fuzz's mutations (seeded): each fails alone or reads."""
    rng = np.random.default_rng(SEED)
    image = photo(0)[0]
    formats = {
        "png": image_bytes(image),
        "jpg": image_bytes(image, "JPEG"),
        "tif": image_bytes(image, "TIFF"),
        "ppm.gz": gzip.compress(image_bytes(image, "PPM")),
    }
    cases = {}
    for index in range(count):
        suffix = list(formats)[index % len(formats)]
        mutation = MUTATIONS[int(rng.integers(0, len(MUTATIONS)))]
        how, data = mutation(rng, formats[suffix])
        setup = both(lambda folder: (folder / "photos" / "p0.png").unlink(), write(f"photos/p0.{suffix}", data))
        cases[f"photograph .{suffix} #{index}: {how}"] = predicting("photos", "-o", "out", setup=setup)
    return cases


GRADIENT = np.tile(np.arange(0, 256, 2, dtype=np.uint8), (90, 1))[:, :100]
FILES = {
    **mutated_photographs(24),
    "photograph 16-bit gray": predicting(
        "photos", "-o", "out", setup=write("photos/p0.png", image_bytes(photo(0)[0][..., 1].astype(np.uint16) * 257))
    ),
    "photograph gray": predicting(
        "photos", "-o", "out", setup=write("photos/p0.png", image_bytes(photo(0)[0][..., 1]))
    ),
    "photograph RGBA": predicting(
        "photos", "-o", "out", setup=write("photos/p0.png", image_bytes(np.dstack([photo(0)[0], GRADIENT[:, :100]])))
    ),
    "photograph 1x1": predicting(
        "photos", "-o", "out", setup=write("photos/p0.png", image_bytes(np.zeros((1, 1, 3), np.uint8)))
    ),
    "photograph black": predicting(
        "photos", "-o", "out", setup=write("photos/p0.png", image_bytes(np.zeros((90, 100, 3), np.uint8)))
    ),
    "photograph a folder named p2.png": predicting(
        "photos", "-o", "out", setup=lambda f: (f / "photos/p2.png").mkdir()
    ),
    "photograph header of 1600 megapixels": predicting(
        "photos", "-o", "out", setup=write("photos/p2.ppm.gz", gzip.compress(b"P6\n40000 40000\n255\n" + bytes(4096)))
    ),
    "label of three levels": predicting("photos", "-o", "out", "--labels", "labels", setup=with_labels(GRADIENT)),
    "label of another size": predicting(
        "photos", "-o", "out", "--labels", "labels", setup=with_labels(np.zeros((40, 40), np.uint8))
    ),
    "label all black": predicting(
        "photos", "-o", "out", "--labels", "labels", setup=with_labels(np.zeros((90, 100), np.uint8))
    ),
    "label 16-bit, three levels": predicting(
        "photos",
        "-o",
        "out",
        "--labels",
        "labels",
        setup=with_labels(np.repeat(np.array([[0, 20000, 65535]], np.uint16), 90, 0)),
    ),
    "mask all black": predicting(
        "photos",
        "-o",
        "out",
        "--masks",
        "masks",
        setup=write("masks/p0.png", image_bytes(np.zeros((90, 100), np.uint8))),
    ),
    "mask damaged": predicting("photos", "-o", "out", "--masks", "masks", setup=write("masks/p0.png", b"\x89PNG\r\n")),
    "summary.csv random bytes": predicting(
        "photos", "-o", "out", setup=write("out/summary.csv", bytes(range(256)) * 8)
    ),
    "summary.csv without its image column": predicting(
        "photos", "-o", "out", setup=both(ran_before, write("out/summary.csv", "picture,width\nx,3\n"))
    ),
    "summary.csv cut in a row": predicting(
        "photos", "-o", "out", setup=both(ran_before, write("out/summary.csv", 'image,width\n"photos/p0.png,1'))
    ),
    "settings.json null": predicting("photos", "-o", "out", setup=both(ran_before, write("out/settings.json", "null"))),
    "settings.json a list": predicting("photos", "-o", "out", setup=both(ran_before, write("out/settings.json", "[]"))),
    "settings.json cut short": predicting(
        "photos", "-o", "out", setup=both(ran_before, write("out/settings.json", '{"weights": "w'))
    ),
    "a summary part and its record damaged": predicting(
        "-o",
        "out",
        "--merge",
        setup=both(
            write("out/summary.part-1-of-2.csv", "image,width\nphotos/p0.png,100\n"),
            write("out/summary.part-1-of-2.json", '{"photographs": "two", "share": null'),
        ),
    ),
    "a summary part of another encoding": predicting(
        "-o",
        "out",
        "--merge",
        setup=write("out/summary.part-1-of-1.csv", "image;width\r\nphotos/é.png;100\r\n".encode("cp1252")),
    ),
    "the lock of a killed run": predicting(
        "photos", "-o", "out", setup=write("out/summary.csv.lock", '{"pid": 999999, "host": "elsewhere"}')
    ),
    "a lock file of garbage": predicting(
        "photos", "-o", "out", setup=write("out/summary.csv.lock", b"\xff\x00garbage")
    ),
    "measurements: a summary-like CSV as a map": Case(
        "run_measurements.py", ("maps/a.csv", "-o", "m.csv"), write("maps/a.csv", "image\nx\n"), outputs=("m.csv",)
    ),
    "stare: compare a summary cut short": Case(
        "run_stare_leave_one_out.py",
        ("--compare", "configurations/STARE.txt"),
        both(
            write("configurations/STARE.txt", (REPO / "configurations" / "STARE.txt").read_bytes()),
            write("STARE_results/published/summary.json", '{"folds": 2, "auc_'),
        ),
    ),
}


# ------------------------------------------------------------------ configurations mutated at random


VALUES = ("", "-1", "0", "nan", "1e400", "True", "abc", "%(x)s", "[", "99999999999999999999", "../..", "é", "0x10")


def mutated_configuration(rng, text: str) -> tuple[str, str]:
    """One random change of a configuration's text: a line dropped, a value replaced, a line doubled, a stray line,
    an unknown section, a base that does not exist."""
    lines = text.splitlines()
    keys = [index for index, line in enumerate(lines) if "=" in line and not line.lstrip().startswith("#")]
    kind = int(rng.integers(0, 6))
    if kind == 0:
        index = int(rng.choice(keys))
        return f"line {index} dropped", "\n".join(lines[:index] + lines[index + 1 :])
    if kind == 1:
        index, value = int(rng.choice(keys)), VALUES[int(rng.integers(0, len(VALUES)))]
        lines[index] = lines[index].split("=")[0] + "= " + value
        return f"line {index} set to {value!r}", "\n".join(lines)
    if kind == 2:
        index = int(rng.choice(keys))
        return f"line {index} doubled", "\n".join(lines[: index + 1] + lines[index:])
    if kind == 3:
        index = int(rng.integers(0, len(lines)))
        return f"a stray line at {index}", "\n".join(lines[:index] + ["stray words here"] + lines[index:])
    if kind == 4:
        return "an unknown section", text + "\n[nonsense]\nkey = value\n"
    return "a base that does not exist", "[based on]\nfile = missing.txt\n" + text


def mutated_configurations(count: int) -> dict[str, Case]:
    rng = np.random.default_rng(SEED + 1)
    text = (REPO / "configurations" / "STARE.txt").read_text() + "\n"
    cases = {}
    for index in range(count):
        how, mutated = mutated_configuration(rng, text)
        setup = both(
            write("configurations/STARE.txt", mutated),
            write("configuration.txt", (REPO / "configuration.txt").read_bytes()),
        )
        cases[f"configuration #{index}: {how}"] = Case(
            "run_stare_leave_one_out.py", ("--compare", "configurations/STARE.txt"), setup
        )
    return cases


CONFIGURATIONS = mutated_configurations(30)
CASES = {**COMMAND_LINES, **FILES, **CONFIGURATIONS}


def test_the_table_holds_about_a_hundred_cases():
    assert len(CASES) >= 100


def outside(files: dict, outputs: tuple) -> dict:
    return {name: value for name, value in files.items() if not any(Path(name).is_relative_to(out) for out in outputs)}


@pytest.fixture
def stand_in(monkeypatch):
    """tests/test_run_prediction.py's stand-in network (1 - the preprocessed image); a missing weights file is
    refused as the real loader refuses it."""
    from src import segment
    from src.model import load_trained_model

    def load_model(weights, precision):
        return None if Path(weights).is_file() else load_trained_model(weights, precision)

    monkeypatch.setattr(segment, "load_model", load_model)
    monkeypatch.setattr(segment, "predict_image", lambda model, image, inference, fov=None: 1 - image[0])


# every fifth case in the fast suite, the whole table with the slow tests (it takes half a minute)
@pytest.mark.parametrize(
    "name", [name if index % 5 == 0 else pytest.param(name, marks=pytest.mark.slow) for index, name in enumerate(CASES)]
)
@pytest.mark.usefixtures("stand_in")
def test_a_malformed_input_ends_cleanly(tmp_path, capsys, name):
    case = CASES[name]
    folder = tmp_path / "case"
    world(folder)
    if case.setup is not None:
        case.setup(folder)
    before = outside(files_of(folder), case.outputs)
    result = run_in_process(case.script, *case.args, cwd=folder, capsys=capsys)
    assert result.returncode in (0, 1), (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stdout + result.stderr, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert all(line.startswith(("error:", "warning:")) for line in lines), result.stderr[-3000:]
    if result.returncode == 1:
        assert any(line.startswith("error:") for line in lines), result.stderr[-3000:]
    assert outside(files_of(folder), case.outputs) == before
