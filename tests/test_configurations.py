"""The shipped configurations written as their differences ([based on]), the merged copy an experiment keeps,
and the key table that parsing and docs/configuration.md share."""

import dataclasses
import subprocess
import warnings
from pathlib import Path

import pytest
from helpers import REPO

from lib import config_keys
from lib.config import load_config
from lib.config_files import chain, merged_text, read_ini
from lib.errors import UserError

VARIANTS = sorted(str(path.relative_to(REPO)) for path in (REPO / "configurations").glob("*.txt"))
SHIPPED = ["configuration.txt", *VARIANTS, "test/configuration.txt", "robust/configuration.txt"]
# Each variant and the full copy it replaced, as committed before the variants were written as differences.
FULL_COPIES = {
    "configurations/fast.txt": "configuration_fast.txt",
    "configurations/robust.txt": "configuration_robust.txt",
    "configurations/STARE.txt": "configuration_STARE.txt",
    "configurations/STARE_scratch.txt": "configuration_STARE_scratch.txt",
    "configurations/STARE_pretrained.txt": "configuration_STARE_pretrained.txt",
    "configurations/STARE_robust.txt": "configuration_STARE_robust.txt",
    "configurations/STARE_robust_smallval.txt": "configuration_STARE_robust_smallval.txt",
}
FULL_COPIES_COMMIT = "a24bd40"


def settings(config) -> dict:
    """Every typed setting of ``config``, field by field (``a.b.c``: value), without the file it came from."""
    fields = {}
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if field.name == "source":
            continue
        if dataclasses.is_dataclass(value):
            fields |= {f"{field.name}.{key}": inner for key, inner in settings(value).items()}
        else:
            fields[field.name] = value
    return fields


# Variants written after the full copies were replaced: the fine-tuning recipe and the general model's.
NEW_VARIANTS = ["configurations/finetune.txt", "configurations/general.txt", "configurations/general_drive_only.txt",
                "configurations/general_stare_only.txt"]  # fmt: skip


def test_every_shipped_variant_lives_in_configurations_and_the_root_holds_one_configuration():
    assert sorted([*FULL_COPIES, *NEW_VARIANTS]) == VARIANTS
    assert [path.name for path in REPO.glob("configuration*.txt")] == ["configuration.txt"]


@pytest.mark.parametrize("name", SHIPPED)
def test_each_shipped_configuration_passes_validation(name, monkeypatch):
    """What every script checks before it runs, on each shipped file: no error, no warning; the STARE ones
    with their [leave-one-out] settings."""
    monkeypatch.chdir(Path("/"))  # a base is found relative to the file, wherever the script runs
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        config = load_config(REPO / name)
    if "STARE" in name:
        assert config.leave_one_out.results_folder.parts[0] == "STARE_results"
    else:
        assert config.leave_one_out is None


@pytest.mark.parametrize("variant", FULL_COPIES)
def test_each_variant_gives_the_settings_of_the_full_copy_it_replaced(variant, tmp_path):
    shown = subprocess.run(["git", "show", f"{FULL_COPIES_COMMIT}:{FULL_COPIES[variant]}"], cwd=REPO,
                           capture_output=True, text=True, check=False)  # fmt: skip
    if shown.returncode:
        pytest.skip(f"the history holding {FULL_COPIES[variant]} is not in this clone")
    full_copy = tmp_path / "full_copy.txt"
    full_copy.write_text(shown.stdout)
    assert settings(load_config(REPO / variant)) == settings(load_config(full_copy))
    assert len(chain(REPO / variant)) >= 2  # written as differences, not as another full copy


@pytest.mark.parametrize("variant", FULL_COPIES)
def test_the_merged_copy_is_one_file_with_the_same_settings(variant, tmp_path):
    """What training keeps in <name>/configuration.txt: no [based on], loads to the same settings anywhere."""
    copy = tmp_path / "elsewhere" / "configuration.txt"
    copy.parent.mkdir()
    copy.write_text(merged_text(REPO / variant))
    assert "[based on]" not in copy.read_text() and len(chain(copy)) == 1
    assert settings(load_config(copy)) == settings(load_config(REPO / variant))


@pytest.mark.parametrize("name", sorted(path.name for path in (REPO / "configurations").glob("*.txt")))
def test_every_shipped_configuration_merges_into_one_file_that_loads_the_same(name, tmp_path):
    """Multi-line values ([photographs] sources) stay continuation lines in the merged copy."""
    copy = tmp_path / "configuration.txt"
    copy.write_text(merged_text(REPO / "configurations" / name))
    merged, original = load_config(copy), load_config(REPO / "configurations" / name)
    assert settings(merged) == settings(original) and merged.photographs == original.photographs


def test_the_shipped_photograph_model_keeps_the_merged_copy_of_its_recipe(monkeypatch):
    monkeypatch.chdir(REPO)  # as trained: python run_training.py --config configurations/robust.txt
    assert Path("robust/configuration.txt").read_text() == merged_text("configurations/robust.txt")


def test_the_published_configuration_is_its_own_merged_copy():
    assert merged_text(REPO / "configuration.txt") == (REPO / "configuration.txt").read_text()


# ------------------------------------------------------------------ [based on]


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_a_chain_reads_the_first_base_first_and_each_file_replaces_its_keys(tmp_path):
    write(tmp_path, "base.txt", (REPO / "configuration.txt").read_text())
    write(tmp_path, "recipes/middle.txt", "[based on]\nfile = ../base.txt\n[training settings]\nN_epochs = 7\n"
                                          "optimizer = adam\n")  # fmt: skip
    top = write(tmp_path, "recipes/top.txt", "[based on]\nfile = middle.txt\n[training settings]\nn_epochs = 3\n"
                                             "[leave-one-out]\nfolds = im0001\n")  # fmt: skip
    config = load_config(top)
    assert config.training.N_epochs == 3 and config.training.optimizer == "adam"  # keys in any case, as published
    assert config.training.batch_size == 32 and config.leave_one_out.folds == ("im0001",)
    assert [path.name for path, _ in chain(top)] == ["base.txt", "middle.txt", "top.txt"]
    assert not read_ini(top).has_section("based on")
    merged = merged_text(top)
    assert "N_epochs = 3\n" in merged and "optimizer = adam\n" in merged and merged.endswith("folds = im0001\n")


@pytest.mark.parametrize(
    "files, fragments",
    [
        ({"a.txt": "[based on]\nfile = b.txt\n", "b.txt": "[based on]\nfile = a.txt\n"},
         ["b.txt: [based on] file = a.txt comes back", "a.txt -> ", "b.txt -> ",
          "the first base must be a file without [based on]"]),
        ({"a.txt": "[based on]\nfile = a.txt\n"}, ["file = a.txt comes back to a file of its own chain"]),
        ({"a.txt": "[based on]\nfile = missing.txt\n"}, ["file = missing.txt", "not found", "relative to"]),
        ({"a.txt": "[based on]\nfiles = b.txt\n"}, ["[based on] must hold one line, file = PATH"]),
        ({"a.txt": "[based on]\nfile =\n"}, ["[based on] must hold one line"]),
        ({"a.txt": "[based on]\nfile = b.txt\n  continued\n"}, ["[based on] must hold one line"]),
        ({"a.txt": f"[based on]\nfile = {'x' * 300}.txt\n"}, ["not found"]),
        ({"a.txt": "[based on]\nfile = b.txt\n", "b.txt": "[data paths\n"}, ["b.txt: not a valid INI file"]),
    ],
)  # fmt: skip
def test_a_broken_chain_is_one_line_saying_what_to_fix(tmp_path, files, fragments):
    for name, text in files.items():
        write(tmp_path, name, text)
    with pytest.raises(UserError) as error:
        load_config(tmp_path / "a.txt")
    message = str(error.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message


# ------------------------------------------------------------------ the key table


def test_the_docs_key_reference_is_the_tables():
    document = config_keys.DOC.read_text()
    expected = config_keys.with_reference(document, config_keys.reference_markdown(config_keys.shipped_sections))
    assert document == expected, "docs/configuration.md differs from lib/config_keys.py: run python -m lib.config_keys"


def test_every_key_of_the_table_is_parsed_and_reaches_the_typed_configuration(tmp_path):
    """A file writing every key of the table, each at its default (or the published file's value), loads without
    warning to the settings of the file that leaves every optional key out."""
    published = read_ini(REPO / "configuration.txt")
    lines = []
    for section in config_keys.SECTIONS:
        lines.append(f"[{section}]")
        for key in config_keys.BY_SECTION[section].values():
            value = key.default if key.default is not config_keys.REQUIRED else published[section][key.name]
            lines.append(f"{key.name} = {value}")
    everything = write(tmp_path, "everything.txt", "\n".join(lines) + "\n")
    required_only = write(tmp_path, "required.txt", "".join(
        f"[{section}]\n" + "".join(f"{key.name} = {published[section][key.name]}\n"
                                   for key in config_keys.BY_SECTION[section].values() if key.default is None)
        for section, (required, _) in config_keys.SECTIONS.items() if required))  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        full, bare = settings(load_config(everything)), settings(load_config(required_only))
    assert bare.pop("leave_one_out") is None
    assert {key: full.pop(key) for key in list(full) if key.startswith("leave_one_out.")} == {
        "leave_one_out.stare_folder": Path("STARE"), "leave_one_out.folds": None,
        "leave_one_out.results_folder": Path("STARE_results")}  # fmt: skip
    assert full == bare


def test_the_layout_page_names_every_module():
    """docs/layout.md's tables are where a reader finds which module does what: every module is in them."""
    layout = (REPO / "docs" / "layout.md").read_text()
    modules = sorted(path.name for folder in ("lib", "src") for path in (REPO / folder).glob("[!_]*.py"))
    assert [name for name in modules if f"`{name}`" not in layout] == []
