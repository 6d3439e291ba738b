"""Every file the project writes goes through ``lib.atomic.atomic_path``, so a crash, Ctrl-C or kill leaves the
old file or the complete new one, never a partial file.

The check parses lib/, src/ and the top-level scripts with ``ast`` and finds each call that writes a file; its
target must be a name bound by an enclosing ``with atomic_path(...) as name`` (``write_text``, ``write_png`` and
``write_hdf5`` are written that way), an in-memory buffer or ``os.devnull``.
"""

import ast
import dataclasses
import errno
import os
import signal
from pathlib import Path
from unittest import mock

import pytest

REPO = Path(__file__).resolve().parents[1]
SOURCES = ("lib/*.py", "src/*.py", "*.py")

# Writes allowed outside atomic_path, by (file, function, call), each with the reason.
ALLOWED = {
    # the nohup log, the process's own stdout and stderr, appended a line at a time as the user reads it
    ("lib/log_file.py", "log_to", "open"),
    # TensorBoard's event files ([training settings] tensorboard): its writers append CRC-checked records, which
    # TensorBoard reads while they grow and whose cut-short last one it skips; a resume starts new files
    ("src/callbacks.py", "tensorboard_callbacks", "TensorBoard"),
    ("src/callbacks.py", "on_train_begin", "create_file_writer"),
    # the lock file: its flock, not its content, is the lock; the pid in it is only for the refusal message
    ("lib/lock.py", "_locked_handle", "open"),
    # the export writers are handed the temporary path of the caller's atomic_path (src.export.atomic_output)
    ("src/export.py", "write_tflite", "write_bytes"),
    ("src/export.py", "write_onnx", "save"),
}

# Calls that write the file named by their first argument (or the keyword given).
WRITES_FIRST_ARGUMENT = {
    "save": "filepath",  # PIL Image.save, keras Model.save, np.save
    "save_weights": "filepath",
    "savefig": "fname",
    "savez": "file",
    "savez_compressed": "file",
    "savetxt": "fname",
    "tofile": "fid",
    "imwrite": "filename",
    "CSVLogger": "filename",  # Keras callbacks that write files as training runs
    "ModelCheckpoint": "filepath",
    "BackupAndRestore": "backup_dir",
    "TensorBoard": "log_dir",
    "create_file_writer": "logdir",  # tf.summary
}
WRITES_RECEIVER = ("write_text", "write_bytes")  # pathlib.Path methods
SHUTIL_WRITES = ("copyfile", "copy", "copy2", "copytree", "move")  # write their second argument
BUFFERS = ("BytesIO", "StringIO")


@dataclasses.dataclass
class Write:
    line: int
    function: str
    call: str
    target: str
    safe: bool


def _name(func: ast.expr) -> str | None:
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None


def _keyword(call: ast.Call, keyword: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == keyword), None)


def _argument(call: ast.Call, position: int, keyword: str) -> ast.expr | None:
    return call.args[position] if len(call.args) > position else _keyword(call, keyword)


def _writing_mode(call: ast.Call, position: int) -> bool:
    """Whether the mode argument of an open-like call allows writing; a mode computed at run time counts as one."""
    mode = _argument(call, position, "mode")
    if mode is None:
        return False
    return not isinstance(mode, ast.Constant) or bool(set(str(mode.value)) & set("wax+"))


def file_write(call: ast.Call) -> tuple[str, ast.expr | None] | None:
    """(the call's name, the file it writes) when ``call`` writes a file, else None."""
    name, func = _name(call.func), call.func
    if name == "open":
        if isinstance(func, ast.Attribute) and (not call.args or isinstance(call.args[0], ast.Constant)):
            return (name, func.value) if _writing_mode(call, 0) else None  # path.open("w")
        return (name, _argument(call, 0, "file")) if _writing_mode(call, 1) else None  # open(path, "w"), gzip.open
    if name == "File":  # h5py.File(path, mode): any mode but "r" writes
        mode = _argument(call, 1, "mode")
        reading = mode is None or (isinstance(mode, ast.Constant) and mode.value == "r")
        return None if reading else (name, _argument(call, 0, "name"))
    if name in WRITES_RECEIVER and isinstance(func, ast.Attribute):
        return name, func.value
    if name in WRITES_FIRST_ARGUMENT:
        return name, _argument(call, 0, WRITES_FIRST_ARGUMENT[name])
    if name in SHUTIL_WRITES and isinstance(func, ast.Attribute) and _name(func.value) == "shutil":
        return name, _argument(call, 1, "dst")
    to_file = _keyword(call, "to_file")  # keras.utils.plot_model(model, to_file=...)
    return (name or "call", to_file) if to_file is not None else None


class WriteFinder(ast.NodeVisitor):
    """Collects every file write of a module with the enclosing function and whether its target is safe."""

    def __init__(self):
        self.writes: list[Write] = []
        self.functions = ["<module>"]
        self.atomic: list[str] = []  # names bound by the enclosing `with atomic_path(...) as name` blocks
        self.buffers: set[str] = set()

    def visit_Module(self, node):
        self.buffers = _buffers(node)
        self.generic_visit(node)

    def visit_FunctionDef(self, node):
        outer = self.buffers
        self.functions.append(node.name)
        self.buffers = outer | _buffers(node)
        self.generic_visit(node)
        self.functions.pop()
        self.buffers = outer

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_With(self, node):
        depth = len(self.atomic)
        for item in node.items:  # in order: `with atomic_path(p) as temp, open(temp, "w")` is safe
            self.visit(item.context_expr)
            is_atomic = isinstance(item.context_expr, ast.Call) and _name(item.context_expr.func) == "atomic_path"
            if is_atomic and isinstance(item.optional_vars, ast.Name):
                self.atomic.append(item.optional_vars.id)
        for statement in node.body:
            self.visit(statement)
        del self.atomic[depth:]

    def visit_Call(self, node):
        found = file_write(node)
        if found is not None:
            call, target = found
            shown = ast.unparse(target) if target is not None else "?"
            self.writes.append(Write(node.lineno, self.functions[-1], call, shown, self._safe(target)))
        self.generic_visit(node)

    def _safe(self, target: ast.expr | None) -> bool:
        while isinstance(target, ast.Call) and _name(target.func) in ("str", "Path", "fspath") and target.args:
            target = target.args[0]  # str(temp), Path(temp)
        if isinstance(target, ast.Name):
            return target.id in self.atomic or target.id in self.buffers
        if isinstance(target, ast.Attribute):
            return target.attr == "devnull"
        return isinstance(target, ast.Call) and _name(target.func) in BUFFERS


def _buffers(scope: ast.AST) -> set[str]:
    """Names assigned an in-memory buffer (``buffer = io.BytesIO()``) in ``scope``, not in the functions it defines."""
    names, nodes = set(), list(ast.iter_child_nodes(scope))
    while nodes:
        node = nodes.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) and _name(node.value.func) in BUFFERS:
            names.update(target.id for target in node.targets if isinstance(target, ast.Name))
        nodes.extend(ast.iter_child_nodes(node))
    return names


def writes_in(source: str) -> list[Write]:
    finder = WriteFinder()
    finder.visit(ast.parse(source))
    return finder.writes


def test_every_writer_uses_atomic_path():
    """Each file-writing call in lib/, src/ and the scripts writes to a name atomic_path yields, or is allowed."""
    writes = {
        str(path.relative_to(REPO)): writes_in(path.read_text())
        for pattern in SOURCES
        for path in sorted(REPO.glob(pattern))
    }
    offenders, used = [], set()
    for file, found in writes.items():
        for write in found:
            key = (file, write.function, write.call)
            if key in ALLOWED:
                used.add(key)
            elif not write.safe:
                offenders.append(f"{file}:{write.line} in {write.function}(): {write.call} writes {write.target}")
    assert not offenders, "writes outside atomic_path (use it, or write_text/write_png/write_hdf5):\n" + "\n".join(
        offenders
    )
    assert used == ALLOWED, f"allowed writes no longer in the code: {ALLOWED - used}"
    # the scan sees the writers the project relies on, and sees them as atomic
    atomic = {write.function for found in writes.values() for write in found if write.safe}
    assert {"write_text", "write_png", "write_hdf5"} <= atomic, atomic


@pytest.mark.parametrize(
    "source",
    [
        'def f(path):\n    with open(path, "w") as handle:\n        handle.write("x")',
        'def f(path):\n    with path.open("a") as handle:\n        handle.write("x")',
        'def f(path):\n    path.write_text("x")',
        "def f(path, data):\n    path.write_bytes(data)",
        "def f(model, path):\n    model.save(path)",
        "def f(model, path):\n    model.save_weights(filepath=path)",
        "def f(path, array):\n    np.save(path, array)",
        'def f(path):\n    with h5py.File(path, "w") as handle:\n        pass',
        "def f(figure, path):\n    figure.savefig(path)",
        "def f(source, path):\n    shutil.copyfile(source, path)",
        "def f(model, path):\n    keras.utils.plot_model(model, to_file=str(path))",
        'def f(path, temp):\n    with atomic_path(path) as temp:\n        pass\n    temp.write_text("x")',
        'def f(path, mode):\n    with open(path, mode) as handle:\n        handle.write("x")',
        "def f(path):\n    return keras.callbacks.CSVLogger(str(path))",
        "def g():\n    buffer = io.BytesIO()\n\n\ndef f(image, buffer):\n    image.save(buffer)",
    ],
)
def test_the_check_finds_a_write_outside_atomic_path(source):
    writes = writes_in(source)
    assert len(writes) == 1 and not writes[0].safe and writes[0].function == "f", writes


@pytest.mark.parametrize(
    "source",
    [
        'def f(path):\n    with atomic_path(path) as temp:\n        temp.write_text("x")',
        'def f(path):\n    with atomic_path(path, suffix=".csv") as temp, open(temp, "w", newline="") as h:\n'
        '        h.write("x")',
        "def f(path, array):\n    with atomic_path(path) as temp:\n        np.save(temp, array)",
        'def f(path, array):\n    with atomic_path(path) as temp:\n        with h5py.File(temp, "w") as h:\n'
        "            pass",
        "def f(path, model):\n    with atomic_path(path) as temp:\n        plot_model(model, to_file=str(temp))",
        'def f(image):\n    buffer = io.BytesIO()\n    image.save(buffer, format="PNG")',
        'def f(image):\n    image.save(io.BytesIO(), format="PNG")',
        'def f():\n    with open(os.devnull, "w") as devnull:\n        pass',
    ],
)
def test_the_check_accepts_atomic_and_in_memory_writes(source):
    writes = writes_in(source)
    assert len(writes) >= 1 and all(write.safe for write in writes), writes


@pytest.mark.parametrize(
    "source",
    [
        "def f(path):\n    with open(path) as handle:\n        return handle.read()",
        'def f(path):\n    with open(path, "rb") as handle:\n        return handle.read()',
        'def f(path):\n    with h5py.File(path, "r") as handle:\n        return handle["x"][()]',
        "def f(path):\n    return Image.open(io.BytesIO(path.read_bytes()))",
        'def f(path):\n    with gzip.open(path, "rb") as handle:\n        return handle.read()',
        "def f(path):\n    return path.read_text()",
    ],
)
def test_the_check_ignores_reads(source):
    assert writes_in(source) == []


# ------------------------------------------------------------------ files that belong together


def test_a_group_renames_its_files_only_when_all_are_written(tmp_path):
    """atomic_group: the disk filling up at the third file leaves the two earlier targets as they were, no
    temporary file and no folder made for the files; success replaces all three."""
    from lib.atomic import atomic_group, atomic_path, write_text
    from lib.errors import DiskFullError

    paths = [tmp_path / "a.txt", tmp_path / "b.txt", tmp_path / "new" / "c.txt"]
    for path in paths[:2]:
        path.write_text("old")

    def write_all(disk_full: bool):
        with atomic_group():
            for path in paths[:2]:
                write_text(path, "new")
            with atomic_path(paths[2]) as temp:
                temp.write_text("new")
                if disk_full:
                    raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(DiskFullError, match="c.txt: the disk is full"):
        write_all(disk_full=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.txt"]
    assert [path.read_text() for path in paths[:2]] == ["old", "old"]
    write_all(disk_full=False)
    assert [path.read_text() for path in paths] == ["new"] * 3


@pytest.fixture
def ctrl_c_interrupts():
    """Python's own SIGINT handler for the test, even in a suite started with SIGINT ignored (``pytest &``)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_ctrl_c_waits_for_the_renames_of_a_group(tmp_path, ctrl_c_interrupts):
    """SIGINT arriving while a group renames its files is delivered once all are renamed: all new, or all old."""
    from lib.atomic import atomic_group, write_text

    paths = [tmp_path / f"{index}.txt" for index in range(3)]
    original = os.replace

    def replace_then_interrupt(source, target):
        original(source, target)
        if Path(target) == paths[0]:
            signal.raise_signal(signal.SIGINT)  # between the first and the second rename

    with pytest.raises(KeyboardInterrupt), mock.patch("os.replace", replace_then_interrupt):
        with atomic_group():
            for path in paths:
                write_text(path, "new")
    assert [path.read_text() for path in paths] == ["new"] * 3
