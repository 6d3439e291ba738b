"""STARE: reading the download, the detected FOV masks, the leave-one-out end to end on a synthetic STARE
(resume, rerun, cross-dataset), and the real STARE preparation where the data exists."""

import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import REPO, assert_ok, assert_user_error, make_config, read_ini, run_script
from PIL import Image
from sklearn.metrics import roc_auc_score

from lib import stare
from lib.config import load_config, require_leave_one_out
from lib.datasets import load_hdf5
from lib.errors import UserError
from lib.imageio import read_binary, read_probability_png
from lib.metrics import evaluate_fov
from lib.synthetic import FOV_RADIUS_FRACTION, STARE_IDS, write_synthetic_stare
from src import leave_one_out
from src.cross_dataset import run_cross_dataset
from src.leave_one_out import run_leave_one_out

IDS = list(STARE_IDS[:3])
SIZE = {"height": 72, "width": 84}
STARE_CONFIG = REPO / stare.CONFIG_FILE


def tiny_overrides(stare_folder) -> dict:
    """configurations/STARE.txt cut down to seconds: 3 images of 72x84, 16x16 patches, 1 epoch, stride 8."""
    return {
        "data attributes": {"patch_height": 16, "patch_width": 16},
        "training settings": {
            "N_subimgs": 64,
            "N_epochs": 1,
            "batch_size": 16,
            "learning_rate": 0.05,
            "inside_FOV": True,
        },
        "testing settings": {
            "full_images_to_test": 3,
            "stride_height": 8,
            "stride_width": 8,
            "predict_batch_size": 128,
        },
        "leave-one-out": {"stare_folder": stare_folder},
    }


@pytest.fixture(scope="module")
def synthetic_stare(tmp_path_factory):
    """A fake STARE of 3 images shared by the module: do not modify it."""
    root = tmp_path_factory.mktemp("synthetic") / "STARE"
    write_synthetic_stare(root, ids=IDS, seed=0, **SIZE)
    return root


@pytest.fixture
def damaged(synthetic_stare, tmp_path):
    """A private copy of the fake STARE that a test may damage."""
    return shutil.copytree(synthetic_stare, tmp_path / "STARE")


def test_read_stare_shapes_labels_and_fov(synthetic_stare):
    arrays = stare.read_stare(synthetic_stare)
    assert list(arrays["ids"]) == IDS
    assert arrays["imgs"].shape == (3, 3, 72, 84)
    for key in ("groundTruth", "groundTruth2nd", "borderMasks"):
        assert arrays[key].shape == (3, 1, 72, 84) and arrays[key].dtype == np.uint8
        assert set(np.unique(arrays[key])) == {0, 255}
    ah = read_binary(synthetic_stare / "labels-ah" / "im0002.ah.ppm.gz")
    np.testing.assert_array_equal(arrays["groundTruth"][1, 0], ah)
    ys, xs = np.ogrid[:72, :84]
    disc = np.hypot(xs - 84 // 2, ys - 72 // 2) <= FOV_RADIUS_FRACTION * 72  # the synthetic FOV
    for mask in arrays["borderMasks"][:, 0] > 0:
        assert (mask & disc).sum() / (mask | disc).sum() > 0.9


def test_plain_ppm_files_read_like_gzipped_ones(synthetic_stare, damaged):
    for path in damaged.rglob("*.gz"):
        path.with_suffix("").write_bytes(gzip.decompress(path.read_bytes()))
        path.unlink()
    plain, gzipped = stare.read_stare(damaged), stare.read_stare(synthetic_stare)
    for key in ("imgs", "groundTruth", "groundTruth2nd", "borderMasks"):
        np.testing.assert_array_equal(plain[key], gzipped[key])


@pytest.mark.parametrize(
    "damage, fragment",
    [
        (lambda root: (root / "labels-ah" / "im0002.ah.ppm.gz").unlink(), "no label for im0002"),
        (lambda root: (root / "labels-vk" / "im0003.vk.ppm.gz").unlink(), "no label for im0003"),
        (lambda root: (root / "stare-images" / "im0003.ppm.gz").unlink(), "no image for im0003"),
        (lambda root: (root / "stare-images" / "im0002.ppm.gz").write_bytes(b"\x1f\x8b junk"), "not a readable"),
        (lambda root: (root / "stare-images" / "im0002.ppm").write_bytes(b"P6"), "holds the same image"),
        (lambda root: shutil.rmtree(root / "labels-vk"), "folder not found"),
    ],
    ids=["missing-ah", "missing-vk", "label-without-image", "bad-gzip", "duplicate", "no-vk-folder"],
)
def test_bad_input_names_the_problem(damaged, damage, fragment):
    damage(damaged)
    with pytest.raises(UserError, match=fragment):
        stare.read_stare(damaged)


def test_a_single_image_is_not_enough(tmp_path):
    write_synthetic_stare(tmp_path, ids=IDS[:1], **SIZE)
    with pytest.raises(UserError, match="at least 2"):
        stare.read_stare(tmp_path)


def test_prepare_script_writes_hdf5_ids_preview_and_fov_shares(synthetic_stare, tmp_path):
    config = make_config(tmp_path, base=STARE_CONFIG, overrides=tiny_overrides(synthetic_stare))
    result = run_script("prepare_datasets_STARE.py", "--config", config, cwd=tmp_path)
    assert_ok(result)
    data = tmp_path / "data"
    assert load_hdf5(data / "STARE_dataset_imgs.hdf5", channels=3).shape == (3, 3, 72, 84)
    for name in ("groundTruth", "groundTruth2nd", "borderMasks"):
        assert load_hdf5(data / f"STARE_dataset_{name}.hdf5", channels=1).shape == (3, 1, 72, 84)
    assert (data / stare.IDS_FILE).read_text().split() == IDS
    assert (data / stare.PREVIEW_FILE).stat().st_size > 0
    for image_id in IDS:
        assert f"  {image_id}  " in result.stdout and "% of the image" in result.stdout


def test_prepare_script_bad_input_is_one_line(damaged, tmp_path):
    (damaged / "labels-ah" / "im0001.ah.ppm.gz").unlink()
    config = make_config(tmp_path, base=STARE_CONFIG)
    result = run_script("prepare_datasets_STARE.py", "--config", config, "--stare", damaged, cwd=tmp_path)
    assert_user_error(result, "labels-ah", "no label for im0001")


def loaded(path) -> tuple:
    """The configuration at ``path`` and its [leave-one-out] settings: what run_leave_one_out takes."""
    config = load_config(path)
    return config, config.leave_one_out


def test_leave_one_out_section(tmp_path):
    settings = load_config(STARE_CONFIG).leave_one_out
    assert settings.folds is None and settings.results_folder == Path("STARE_results/published")
    config = make_config(tmp_path, base=STARE_CONFIG, overrides={"leave-one-out": {"folds": "im0082, im0001 im0082"}})
    assert load_config(config).leave_one_out.folds == ("im0082", "im0001")
    config = make_config(tmp_path, base=STARE_CONFIG, overrides={"leave-one-out": {"folds": "0001"}})
    with pytest.raises(UserError, match=r"\[leave-one-out\] folds"):
        load_config(config)
    config = make_config(tmp_path, base=STARE_CONFIG, drop=[("leave-one-out", None)])
    assert load_config(config).leave_one_out is None  # a DRIVE configuration, which the STARE scripts refuse
    with pytest.raises(UserError, match=r"section \[leave-one-out\] is missing; add it \(see docs/configuration.md"):
        require_leave_one_out(load_config(config))


def test_the_repo_configuration_is_the_published_protocol():
    config = load_config(STARE_CONFIG)
    assert config.training.N_subimgs == 19 * 9500 and config.training.patch_hw == (48, 48)
    assert config.training.initial_weights is None and config.training.N_epochs == 150
    assert config.testing.inference.stride_hw == (5, 5) and config.testing.full_images_to_test == 20
    assert config.data.file("train_imgs_original") == config.data.file("test_imgs_original")


@pytest.fixture(scope="module")
def loo_run(synthetic_stare, tmp_path_factory):
    """Prepare, then run the whole leave-one-out (3 folds) with the scripts, as a user would."""
    folder = tmp_path_factory.mktemp("loo")
    overrides = tiny_overrides(synthetic_stare)
    overrides["training settings"]["nohup"] = True
    config = make_config(folder, base=STARE_CONFIG, overrides=overrides)
    assert_ok(run_script("prepare_datasets_STARE.py", "--config", config, cwd=folder))
    result = run_script("run_stare_leave_one_out.py", "--config", config, cwd=folder)
    assert_ok(result)
    return folder, result


@pytest.fixture
def loo_copy(loo_run, tmp_path, monkeypatch):
    """A private copy of the finished run, as the working directory, with in-process settings (no log files)."""
    folder = shutil.copytree(loo_run[0], tmp_path / "loo")
    monkeypatch.chdir(folder)
    parser = read_ini(folder / "configuration.txt")
    parser["training settings"]["nohup"] = "False"
    with open(folder / "configuration.txt", "w") as handle:
        parser.write(handle)
    return folder


RESULTS = Path("STARE_results/published")


@pytest.mark.slow  # the shared leave-one-out run trains 3 folds
def test_leave_one_out_writes_table_pictures_and_folds(loo_run):
    folder, result = loo_run
    results = folder / RESULTS
    rows = [json.loads((results / f"{i}_result.json").read_text()) for i in IDS]
    assert [row["id"] for row in rows] == IDS
    for row in rows:
        assert 0 <= row["auc_roc"] <= 1 and row["pixels"] > 0 and row["training_minutes"] > 0
        assert row["mode"] == {"mode": "patches", "patch": [16, 16], "stride": [8, 8], "precision": "float32"}
    for image_id in IDS:
        assert (folder / "STARE_leave_one_out" / image_id / "training.log").is_file()  # nohup = True
        picture = np.asarray(Image.open(results / f"{image_id}.png"))
        assert picture.shape == (3 * 72, 84)  # original, ground truth, prediction, top to bottom
        assert Image.open(results / f"{image_id}_probability.png").mode == "I;16"
        assert read_binary(results / f"{image_id}_fov.png").shape == (72, 84)
    auc = np.array([row["auc_roc"] for row in rows])
    markdown = (results / "leave_one_out.md").read_text().splitlines()
    assert markdown[:2] == ["| STARE image| AUC ROC|", "| ---------- |:------:|"]
    assert markdown[2] == f"| im0001.ppm | {auc[0]:.4f} |".replace(" 0.", " .")
    short = f"{auc.mean():.4f} +- {auc.std(ddof=1):.4f}".replace("0.", ".")
    assert f"__AVERAGE:   {short}__" in markdown
    assert any(line.startswith("| second observer (vk) vs ground truth (ah) | 3 |") for line in markdown)
    assert any(line.startswith("| published retina-unet | .9805 |") for line in markdown)
    assert any(line.startswith("| **this project (STARE_leave_one_out), 3 of 3 folds** |") for line in markdown)
    csv_lines = (results / "leave_one_out.csv").read_text().splitlines()
    assert csv_lines[0].startswith("image,auc_roc,") and [line.split(",")[0] for line in csv_lines[1:]] == [
        *IDS,
        "mean",
        "std",
    ]
    summary = json.loads((results / "summary.json").read_text())
    assert summary["folds"] == 3 and summary["auc_roc_std"] == pytest.approx(auc.std(ddof=1))
    assert 0.5 < summary["second_observer"]["f1"] < 1
    assert "leave-one-out, 3 of 3 folds" in result.stdout


@pytest.mark.slow  # the shared leave-one-out run trains 3 folds
def test_the_committed_maps_reproduce_every_auc(loo_run, synthetic_stare):
    """Anyone can recompute the table: the 16-bit map, the FOV mask and STARE's own label give each AUC."""
    results = loo_run[0] / RESULTS
    for image_id in IDS:
        label = read_binary(synthetic_stare / "labels-ah" / f"{image_id}.ah.ppm.gz") > 0
        fov = read_binary(results / f"{image_id}_fov.png") > 0
        probability = read_probability_png(results / f"{image_id}_probability.png")
        recomputed = evaluate_fov(label, probability, fov).metrics["auc_roc"]
        assert recomputed == json.loads((results / f"{image_id}_result.json").read_text())["auc_roc"]


@pytest.mark.slow  # the shared leave-one-out run trains 3 folds
def test_the_tables_regenerate_from_the_result_files_alone(loo_copy, capsys):
    """A fresh clone holds the results folder but no fold folders: the rerun trains nothing, the tables are equal."""
    results = loo_copy / RESULTS
    before = {name: (results / name).read_bytes() for name in ("leave_one_out.md", "leave_one_out.csv", "summary.json")}
    shutil.rmtree(loo_copy / "STARE_leave_one_out")
    for name in before:
        (results / name).unlink()
    config = loo_copy / "configuration.txt"
    run_leave_one_out(*loaded(config))
    assert capsys.readouterr().out.count("finished earlier") == 3
    assert not (loo_copy / "STARE_leave_one_out").exists()
    assert {name: (results / name).read_bytes() for name in before} == before


@pytest.mark.slow  # the shared leave-one-out run trains 3 folds
def test_a_damaged_result_reruns_its_fold_and_says_so(loo_copy, capsys):
    config = loo_copy / "configuration.txt"
    (loo_copy / RESULTS / "im0002_result.json").write_text('{"id": "im0002", "auc_')
    (loo_copy / RESULTS / "im0003_probability.png").unlink()
    run_leave_one_out(*loaded(config))
    out = capsys.readouterr().out
    assert "im0002_result.json is damaged" in out and "im0003_result.json is damaged" in out
    assert "trained earlier (1 epochs), testing" in out  # the fold's weights are still there: only re-tested
    assert out.count("finished earlier") == 1
    assert json.loads((loo_copy / RESULTS / "im0002_result.json").read_text())["id"] == "im0002"


@pytest.mark.slow  # the shared leave-one-out run trains 3 folds
def test_an_interrupted_fold_resumes_its_training(loo_copy, capsys):
    config = loo_copy / "configuration.txt"
    parser = read_ini(config)
    parser["training settings"]["N_epochs"] = "2"
    with open(config, "w") as handle:
        parser.write(handle)
    fold = loo_copy / "STARE_leave_one_out" / "im0002"
    (loo_copy / RESULTS / "im0002_result.json").unlink()  # as if stopped after epoch 1 of 2
    run_leave_one_out(*loaded(config), folds=("im0002", "im0003"))
    out = capsys.readouterr().out
    assert "resuming after epoch 1" in out and "im0003: finished earlier" in out
    assert len((fold / "training_history.csv").read_text().splitlines()) == 3  # header + 2 epochs
    assert (loo_copy / RESULTS / "im0002_result.json").is_file()


@pytest.mark.slow  # the shared leave-one-out run trains 3 folds
def test_a_stopped_run_leaves_the_tables_of_its_finished_folds(loo_copy, monkeypatch):
    """Folds finish one by one across sittings: after each, the tables describe exactly the finished ones."""
    config = loo_copy / "configuration.txt"
    for image_id in ("im0002", "im0003"):
        (loo_copy / RESULTS / f"{image_id}_result.json").unlink()
    train = leave_one_out.train_fold

    def stop_at_the_last_fold(config, experiment, data, index, overwrite, label):
        if "im0003" in label:
            raise KeyboardInterrupt
        train(config, experiment, data, index, overwrite, label)

    monkeypatch.setattr(leave_one_out, "train_fold", stop_at_the_last_fold)
    with pytest.raises(KeyboardInterrupt):
        run_leave_one_out(*loaded(config))
    csv_lines = (loo_copy / RESULTS / "leave_one_out.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in csv_lines[1:]] == ["im0001", "im0002", "mean", "std"]
    assert json.loads((loo_copy / RESULTS / "summary.json").read_text())["folds"] == 2


@pytest.mark.slow  # the shared leave-one-out run trains 3 folds
def test_unknown_fold_is_refused(loo_copy):
    config = loo_copy / "configuration.txt"
    with pytest.raises(UserError, match="im0082 is not among the prepared"):
        run_leave_one_out(*loaded(config), folds=("im0082",))


@pytest.mark.slow  # the shared leave-one-out run trains 3 folds
def test_folds_from_other_initial_weights_are_not_mixed_into_the_table(loo_copy):
    """Finished folds trained from scratch; the configuration now starts from weights: refused, nothing run."""
    config = make_config(
        loo_copy,
        base=loo_copy / "configuration.txt",
        filename="other.txt",
        overrides={
            "training settings": {
                "initial_weights": loo_copy / "STARE_leave_one_out" / "im0001" / "STARE_leave_one_out_best.weights.h5"
            },
        },
    )
    before = sorted(path.stat().st_mtime_ns for path in (loo_copy / RESULTS).iterdir())
    with pytest.raises(UserError, match=r"im0001_result.json was trained from other initial weights \(none\)"):
        run_leave_one_out(*loaded(config))
    assert sorted(path.stat().st_mtime_ns for path in (loo_copy / RESULTS).iterdir()) == before


@pytest.mark.slow  # the shared leave-one-out run trains 3 folds
def test_unknown_fold_on_the_command_line_is_one_line(loo_run):
    folder = loo_run[0]
    result = run_script(
        "run_stare_leave_one_out.py", "--config", folder / "configuration.txt", "--folds", "im0082", cwd=folder
    )
    assert_user_error(result, "fold im0082 is not among the prepared STARE images")


@pytest.mark.slow  # the shared leave-one-out run trains 3 folds
@pytest.mark.parametrize("source", ["project", "published"])
def test_folds_fine_tune_from_initial_weights(loo_copy, legacy_weights, capsys, source):
    """DRIVE-pretrained folds: each fold starts from the given weights (this project's or the published Keras-1)."""
    weights = (
        legacy_weights
        if source == "published"
        else (loo_copy / "STARE_leave_one_out" / "im0001" / "STARE_leave_one_out_best.weights.h5")
    )
    config = make_config(
        loo_copy,
        base=loo_copy / "configuration.txt",
        filename="pretrained.txt",
        overrides={
            "experiment name": {"name": "pretrained"},
            "training settings": {"initial_weights": weights, "learning_rate": "1e-9", "optimizer": "sgd"},
            "leave-one-out": {"results_folder": "STARE_results/pretrained", "folds": "im0002"},
        },
    )
    summary = run_leave_one_out(*loaded(config))
    assert f"starting from {weights}" in capsys.readouterr().out
    assert summary["folds"] == 1 and summary["initial_weights"] == str(weights)
    # with a vanishing learning rate the fold's weights are the initial ones
    from src.model import load_trained_model

    trained = load_trained_model(loo_copy / "pretrained" / "im0002" / "pretrained_best.weights.h5")
    initial = load_trained_model(weights)
    for ours, theirs in zip(trained.get_weights(), initial.get_weights(), strict=True):
        np.testing.assert_allclose(ours, theirs, atol=1e-6)


@pytest.mark.slow  # the shared leave-one-out run trains 3 folds
def test_cross_dataset_writes_its_own_table(loo_copy):
    config = loo_copy / "configuration.txt"
    weights = loo_copy / "STARE_leave_one_out" / "im0001" / "STARE_leave_one_out_best.weights.h5"
    cross = run_cross_dataset(*loaded(config), weights)
    out = loo_copy / RESULTS / "cross_dataset_STARE_leave_one_out_best"
    assert cross["images"] == 3 and cross["mode"] == {"mode": "whole", "precision": "float32"}
    assert sorted(path.name for path in out.glob("*.png")) == [f"{image_id}.png" for image_id in IDS]
    assert (out / "cross_dataset.md").read_text().startswith("| STARE image| AUC ROC|")
    assert 0.5 < cross["second_observer"]["f1"] < 1


@pytest.mark.slow  # the shared leave-one-out run trains 3 folds
def test_cross_dataset_with_the_published_weights(loo_copy, legacy_weights):
    config = loo_copy / "configuration.txt"
    cross = run_cross_dataset(*loaded(config), legacy_weights)
    assert cross["pooled"]["auc_roc"] > 0.8  # the published DRIVE model finds the synthetic vessels


@pytest.mark.slow  # the real STARE
def test_real_stare_preparation_and_fov(stare_root, tmp_path):
    config = load_config(make_config(tmp_path, base=STARE_CONFIG))
    prepared = stare.prepare(config.data, stare_root)
    assert list(prepared["ids"]) == list(STARE_IDS)
    assert prepared["imgs"].shape == (20, 3, 605, 700)
    assert prepared["groundTruth"].shape == prepared["groundTruth2nd"].shape == (20, 1, 605, 700)
    for fov in prepared["fov"]:
        assert 0.70 < fov["share"] < 0.80 and fov["components"] == 1
        assert 640 < fov["diameter"] < 700  # the same camera field in every photo
    fov, vessels = prepared["borderMasks"][:, 0] > 0, prepared["groundTruth"][:, 0] > 0
    assert (vessels & ~fov).sum() < 0.01 * vessels.sum()  # the labelled vessels lie inside the detected FOV
    assert all(path.is_file() for path in prepared["written"])


TABLES = ("leave_one_out.csv", "leave_one_out.md", "summary.json")
CPU_VARIANTS = ("scratch", "pretrained", "robust", "robust_smallval")  # configurations/STARE_<variant>.txt


def test_the_docs_show_the_committed_stare_results_as_compare_prints_them():
    """docs/stare.md's STARE tables are the output of the --compare command it names, on the committed summaries;
    the README's summary rows are its means, pooled F1 and minutes."""
    configs = [f"configurations/STARE_{variant}.txt" for variant in CPU_VARIANTS]
    result = run_script("run_stare_leave_one_out.py", "--compare", *configs, cwd=REPO)
    assert_ok(result)
    docs = (REPO / "docs" / "stare.md").read_text()
    command = f"--compare\nconfigurations/STARE_{{{','.join(CPU_VARIANTS)}}}.txt` prints them:"
    assert f"{command}\n\n{result.stdout.rstrip()}\n\n" in docs
    rows = {line.split("|")[1].strip(" *"): line.split("|")[2:-1] for line in result.stdout.splitlines() if "|" in line}
    readme = (REPO / "README.md").read_text()
    for index, variant in enumerate(CPU_VARIANTS, 1):
        mean, pooled_f1, minutes = (
            rows[name][index].strip(" *") for name in ("mean ± std", "pooled f1", "training minutes per fold")
        )
        assert f"| {mean} | {pooled_f1} | {minutes} |" in readme.replace("**", ""), variant


@pytest.mark.slow  # the real STARE
@pytest.mark.parametrize("variant", [f"configurations/STARE_{variant}.txt" for variant in CPU_VARIANTS])
def test_the_committed_stare_results_regenerate_and_reproduce(stare_root, tmp_path, monkeypatch, variant):
    """What a fresh clone can check: the committed tables regenerate byte for byte from the committed result
    files, and each committed 16-bit map and FOV mask give its AUC against STARE's own label file."""
    monkeypatch.chdir(REPO)  # the variants' relative paths (results, initial weights) are the repo's
    committed = load_config(variant).leave_one_out.results_folder
    results = shutil.copytree(committed, tmp_path / "results")
    for name in TABLES:
        (results / name).unlink()
    config_path = make_config(tmp_path, base=REPO / variant, overrides={"leave-one-out": {"results_folder": results}})
    config = load_config(config_path)
    stare.prepare(config.data, stare_root)
    settings = load_config(config_path).leave_one_out
    assert leave_one_out.write_summary(config, settings, stare.load_stare(config))["folds"] >= 1
    assert {name: (results / name).read_bytes() for name in TABLES} == {
        name: (committed / name).read_bytes() for name in TABLES
    }
    for result_file in sorted(committed.glob("*_result.json")):
        image_id = result_file.name.removesuffix("_result.json")
        label = read_binary(stare_root / "labels-ah" / f"{image_id}.ah.ppm.gz") > 0
        fov = np.asarray(Image.open(committed / f"{image_id}_fov.png")) > 0
        probability = np.asarray(Image.open(committed / f"{image_id}_probability.png"), dtype=np.float64) / 65535
        recomputed = roc_auc_score(label[fov], probability[fov])
        assert recomputed == pytest.approx(json.loads(result_file.read_text())["auc_roc"], abs=5e-4)


def test_compare_prints_the_variants_side_by_side(tmp_path, monkeypatch):
    """--compare reads each variant's summary.json (no training) and sets the variants beside the published AUC."""
    monkeypatch.chdir(tmp_path)
    human = {"accuracy": 0.93, "sensitivity": 0.9, "specificity": 0.94, "f1": 0.74}
    configs = []
    for name, aucs in (("first", {"im0001": 0.97, "im0002": 0.96}), ("second", {"im0001": 0.98})):
        folder = tmp_path / "STARE_results" / name
        folder.mkdir(parents=True)
        values = np.array(list(aucs.values()))
        summary = {
            "folds": len(aucs),
            "images": 20,
            "second_observer": human,
            "training_minutes_mean": 12.0,
            "pooled": {"auc_roc": 0.97, **human},
            "auc_roc_per_image": aucs,
            "auc_roc_mean": values.mean(),
            "auc_roc_std": values.std(ddof=1) if len(aucs) > 1 else None,
        }
        (folder / "summary.json").write_text(json.dumps(summary))
        configs.append(
            make_config(
                tmp_path,
                base=STARE_CONFIG,
                filename=f"{name}.txt",
                overrides={"experiment name": {"name": name}, "leave-one-out": {"results_folder": folder}},
            )
        )
    result = run_script("run_stare_leave_one_out.py", "--compare", *configs, cwd=tmp_path)
    assert_ok(result)
    lines = result.stdout.splitlines()
    assert lines[0] == "| STARE image | published | first | second |"
    assert "| im0001 | .9709 | .9700 | .9800 |" in lines and "| im0002 | .9588 | .9600 | – |" in lines
    assert "| folds | 20 | 2 of 20 | 1 of 20 |" in lines
    assert "| **this project, second, 1 of 20 folds** | .9800 |" in lines
    assert "| published retina-unet | .9805 |" in lines
    missing = run_script("run_stare_leave_one_out.py", "--compare", tmp_path / "nowhere.txt", cwd=tmp_path)
    assert_user_error(missing, "nowhere.txt")
