"""Bad input and failed runs: one line naming the problem, before any work, and nothing saved that a run did not
finish (docs/faults.md has the table). kill -9 and concurrent runs: tests/test_faults_kill.py."""
import errno
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import random_generation
import train_script
import utils.training.train
import visualization
from utils import cli
from utils.data.dataset import list_images, resolve_source
from utils.data.images import load_image
from utils.errors import UserError
from utils.training import checkpoint as checkpoint_module
from utils.training.checkpoint import figure_name, load_checkpoint, save_checkpoint


def one_line_error(capsys, main, argv):
    """Run a script's main as the command line does; its exit status and its single stderr line."""
    with pytest.raises(SystemExit) as exit_info:
        cli.run(lambda: main(argv))
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return exit_info.value.code, err


def train(tiny, *flags):
    train_script.main(["--data", str(tiny), "--threads", "1", "--epochs", "1", *flags])


def fingerprint(path):
    return Path(path).read_bytes()


@pytest.mark.parametrize("argv, message", [
    (["--model", "AE", "--lr", "inf"], "--lr must be a positive number, got inf"),
    (["--model", "AE", "--lr", "-1"], "--lr must be a positive number, got -1"),
    (["--model", "AE", "--lr", "nan"], "argument --lr: must be a number, got nan"),
    (["--model", "AE", "--image-size", "0"], "--image-size must be at least 1, got 0"),
    (["--model", "AE", "--image-size", "-8"], "--image-size must be at least 1, got -8"),
    (["--model", "VAE", "--beta", "-1"], "argument --beta: must be a finite number at least 0.0, got -1"),
    (["--model", "VAE", "--kl-warmup", "-4"], "argument --kl-warmup: must be at least 0, got -4"),
    (["--model", "AE", "--epochs", "0"], "argument --epochs: must be at least 1, got 0"),
    (["--model", "AE", "--recon", "bce"], "--recon applies to VAE only, not AE"),
    (["--model", "MLPAE", "--beta", "2"], "--beta applies to VAE only, not MLPAE"),
])
def test_bad_training_flags_are_one_line_before_any_work(argv, message, workdir, capsys):
    code, err = one_line_error(capsys, train_script.main, argv)
    assert code == 2 and message in err
    assert not (workdir / "models").exists()


@pytest.mark.parametrize("flags, message", [
    (["--guidance", "nan"], "argument --guidance: must be a finite number at least 0.0, got nan"),
    (["--guidance", "inf"], "got inf"),
    (["--steps", "0"], "argument --steps: must be at least 1, got 0"),
    (["--steps", "-3"], "argument --steps: must be at least 1, got -3"),
])
def test_bad_sampling_flags_are_refused(flags, message, workdir, capsys):
    code, err = one_line_error(capsys, random_generation.main, ["--model", "diffusion", *flags])
    assert code == 2 and message in err


def test_diffusion_refuses_impossible_settings(workdir, capsys):
    import diffusion
    code, err = one_line_error(capsys, diffusion.main, ["--p-uncond", "2"])
    assert code == 2 and "--p-uncond must be in [0, 1]" in err


def test_a_diverged_run_stops_in_one_line_and_keeps_the_last_good_best(tiny_flowers, workdir, capsys, monkeypatch):
    train(tiny_flowers, "--model", "MLPAE", "--epochs", "2")
    best = fingerprint("models/Best_MLPAE.pth")
    real_epoch = utils.training.train.train_epoch
    monkeypatch.setattr(utils.training.train, "train_epoch",
                        lambda *a, **k: float("nan") if a[6] == 3 else real_epoch(*a, **k))
    capsys.readouterr()
    code, err = one_line_error(capsys, train_script.main, ["--model", "MLPAE", "--threads", "1", "--epochs", "4",
                                                           "--resume"])
    assert code == 2
    assert err.startswith("error: epoch 3: the training loss is nan, training diverged (try a smaller --lr); "
                          "models/Best_MLPAE.pth keeps epoch ")
    assert fingerprint("models/Best_MLPAE.pth") == best
    assert torch.load("models/last_MLPAE.pth", weights_only=True)["epoch"] == 2   # resumes from the last good epoch


def test_a_diverged_first_epoch_claims_no_checkpoint(tiny_flowers, workdir, capsys, monkeypatch):
    monkeypatch.setattr(utils.training.train, "train_epoch", lambda *a, **k: float("inf"))
    code, err = one_line_error(capsys, train_script.main, ["--model", "MLPAE", "--data", str(tiny_flowers),
                                                           "--threads", "1", "--epochs", "2"])
    assert code == 2 and err.endswith("nothing was saved")
    assert not Path("models/Best_MLPAE.pth").exists() and not Path("vis/loss_MLPAE.png").exists()


def test_training_refuses_a_checkpoint_of_another_model_unless_forced(tiny_flowers, workdir, capsys):
    train(tiny_flowers, "--model", "MLPAE", "--checkpoint", "models/Best_mine.pth")
    before = fingerprint("models/Best_mine.pth")
    code, err = one_line_error(capsys, train_script.main, ["--model", "AE", "--data", str(tiny_flowers),
                                                           "--checkpoint", "models/Best_mine.pth"])
    assert code == 2 and err == ("error: --checkpoint models/Best_mine.pth holds a MLPAE model, not AE: pass another "
                                 "--checkpoint, or --force to replace it")
    assert fingerprint("models/Best_mine.pth") == before
    train(tiny_flowers, "--model", "AE", "--checkpoint", "models/Best_mine.pth", "--force")
    assert load_checkpoint("models/Best_mine.pth")["config"]["model"] == "AE"


def test_the_synthetic_fallback_never_replaces_a_model_of_real_images(tiny_flowers, workdir, capsys):
    train(tiny_flowers, "--model", "MLPAE")
    before = fingerprint("models/Best_MLPAE.pth")
    code, err = one_line_error(capsys, train_script.main, ["--model", "MLPAE", "--threads", "1", "--epochs", "1"])
    assert code == 2 and "./flowers not found, and the synthetic set would replace models/Best_MLPAE.pth" in err
    assert fingerprint("models/Best_MLPAE.pth") == before


@pytest.mark.parametrize("make", ["dangling link", "file", "no permission"])
def test_an_unusable_flowers_folder_is_an_error_not_a_fallback(make, workdir):
    if make == "dangling link":
        os.symlink(workdir / "gone", "flowers")
    elif make == "file":
        Path("flowers").write_text("not a folder")
    else:
        if os.geteuid() == 0:
            pytest.skip("root reads every folder")
        Path("flowers").mkdir()
        os.chmod("flowers", 0)
    with pytest.raises(UserError, match=r"\./flowers"):
        resolve_source(None)
    assert resolve_source("synthetic") == "synthetic"


def test_broken_links_in_a_data_folder_are_skipped_and_counted(tiny_flowers, tmp_path, capsys):
    root = tmp_path / "data"
    for folder in ("a", "b"):
        (root / folder).mkdir(parents=True)
        for i in range(3):
            os.symlink(next((tiny_flowers / sorted(os.listdir(tiny_flowers))[0]).iterdir()), root / folder / f"{i}.png")
    os.symlink(root / "a" / "missing.png", root / "a" / "dangling.png")
    os.symlink(root / "b" / "loop.png", root / "b" / "loop.png")
    classes = list_images(root)
    assert [len(files) for _, files in classes] == [3, 3]
    assert "skipped 2 unreadable image file(s)" in capsys.readouterr().err


def test_sixteen_bit_png_loads_like_its_eight_bit_conversion(tmp_path):
    gradient = np.linspace(0, 65535, 48 * 48).reshape(48, 48).astype(np.uint16)
    Image.fromarray(gradient).save(tmp_path / "16.png")
    Image.fromarray(np.rint(gradient / 257).astype(np.uint8)).save(tmp_path / "8.png")
    assert Image.open(tmp_path / "16.png").mode == "I;16"
    sixteen, eight = (load_image(tmp_path / name, 24).int() for name in ("16.png", "8.png"))
    assert (sixteen - eight).abs().max() <= 1          # within 1/255
    assert abs(sixteen.float().mean() / 255 - 0.5) < 0.01


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "CMYK", "I", "F", "1"])
def test_every_pil_mode_loads_to_rgb_in_range(mode, tmp_path):
    gray = np.linspace(0, 255, 24 * 24).reshape(24, 24).astype(np.uint8)
    image = Image.fromarray(gray).convert(mode)
    path = tmp_path / ("x.tif" if mode in ("I", "F", "CMYK") else "x.png")
    image.save(path)
    pixels = load_image(path, 24)
    assert pixels.shape == (3, 24, 24) and pixels.dtype == torch.uint8
    if mode not in ("1", "P"):
        assert (pixels[0].int() - torch.from_numpy(gray).int()).abs().max() <= 1


def test_a_resume_file_is_not_a_model_for_the_scripts(tiny_flowers, workdir, capsys):
    train(tiny_flowers, "--model", "AE")
    code, err = one_line_error(capsys, random_generation.main, ["--model", "AE", "--checkpoint", "models/last_AE.pth"])
    assert code == 2 and err == ("error: models/last_AE.pth is a resume file (the state --resume continues from), "
                                 "not a trained model: pass models/Best_AE.pth")


def test_figures_of_another_checkpoint_are_named_after_it(tiny_flowers, workdir, capsys):
    assert figure_name(None, "AE") == figure_name("models/Best_AE.pth", "AE") == "AE"
    assert figure_name("elsewhere/Best_AE_SGD.pth", "AE") == "AE_SGD"
    train(tiny_flowers, "--model", "AE", "--checkpoint", "models/Best_other.pth")
    visualization.main(["--model", "AE", "--checkpoint", "models/Best_other.pth", "--threads", "1"])
    random_generation.main(["--model", "AE", "--checkpoint", "models/Best_other.pth", "--threads", "1"])
    random_generation.main(["--model", "AE", "--checkpoint", "models/Best_other.pth", "--threads", "1", "--interpolate"])
    assert sorted(p.name for p in Path("vis").glob("*_other.png")) == ["interpolation_other.png", "loss_other.png",
                                                                      "random_images_other.png", "train_other.png",
                                                                      "valid_other.png"]
    assert not list(Path("vis").glob("*_AE.png"))


def test_visualization_n_is_bounded(workdir, capsys):
    code, err = one_line_error(capsys, visualization.main, ["--model", "AE", "--n", "100000"])
    assert code == 2 and "--n must be between 1 and 50" in err


@pytest.mark.parametrize("error, words", [(errno.ENOSPC, "the disk is full"), (errno.EACCES, "Permission denied")])
def test_a_failed_write_is_one_line_and_leaves_nothing_behind(error, words, tmp_path, monkeypatch):
    path = tmp_path / "Best_AE.pth"
    save_checkpoint(path, dict(config=dict(model="AE"), epoch=1))

    def failing_save(state, file):
        Path(file).write_bytes(b"half")
        raise OSError(error, os.strerror(error))
    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(UserError, match=f"cannot write {path}: {words}"):
        save_checkpoint(path, dict(config=dict(model="AE"), epoch=2))
    assert load_checkpoint(path)["epoch"] == 1 and sorted(os.listdir(tmp_path)) == ["Best_AE.pth"]


def test_stale_temporaries_of_dead_processes_are_cleaned(tmp_path):
    best = tmp_path / "Best_AE.pth"
    dead, alive, old = (tmp_path / f"Best_AE.pth.{tag}" for tag in ("999999999.tmp", f"{os.getpid()}.tmp", "tmp"))
    for f in (dead, alive, old):
        f.write_bytes(b"x")
    checkpoint_module.clean_stale_temporaries(best)
    assert not dead.exists() and not old.exists() and alive.exists()   # a live run's file is its own business


@pytest.mark.parametrize("folder", ["models", "vis"])
def test_a_read_only_output_folder_is_found_before_training(folder, tiny_flowers, workdir, capsys, monkeypatch):
    real_temporary = tempfile.TemporaryFile

    def read_only(dir=None, **kwargs):   # as a read-only mount answers (root ignores chmod)
        if Path(dir).name == folder:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))
        return real_temporary(dir=dir, **kwargs)
    monkeypatch.setattr(tempfile, "TemporaryFile", read_only)
    trained = []
    monkeypatch.setattr(utils.training.train, "train_epoch", lambda *a, **k: trained.append(1) or 0.0)
    code, err = one_line_error(capsys, train_script.main, ["--model", "MLPAE", "--data", str(tiny_flowers)])
    assert code == 2 and f"cannot write into {folder}: Read-only file system" in err and not trained


def test_out_dir_naming_a_file_is_one_line(workdir, capsys):
    Path("taken").write_text("a file")
    code, err = one_line_error(capsys, random_generation.main, ["--model", "AE", "--n", "4", "--out-dir", "taken"])
    assert code == 2 and err == "error: --out-dir taken is a file, not a folder: pass a folder"


def one_class_folder(tiny, root, keep=10):
    first = sorted(p for p in tiny.iterdir())[0]
    (root / first.name).mkdir(parents=True)
    for f in sorted(first.iterdir())[:keep]:
        os.symlink(f, root / first.name / f.name)
    return root


def test_run_lab_checks_every_steps_needs_before_training(tiny_flowers, workdir, capsys, monkeypatch):
    import run_lab
    folder = one_class_folder(tiny_flowers, workdir / "one")   # 10 images: one validation image
    monkeypatch.setattr("sys.argv", ["run_lab.py", "--data", str(folder), "--quick", "--threads", "1"])
    code, err = one_line_error(capsys, lambda argv: run_lab.main(), None)
    assert code == 2 and "gives 1 validation image at 24 px; the lab's --interpolate and evaluation need at least 2" in err
    assert not list(Path("models").iterdir()) and not list(Path("vis").iterdir())
    monkeypatch.setattr("sys.argv", ["run_lab.py", "--image-size", "-8"])
    code, err = one_line_error(capsys, lambda argv: run_lab.main(), None)
    assert code == 2 and "--image-size must be at least 1, got -8" in err


def samples_folder(root, tiny, names, zero_byte=0):
    root.mkdir(parents=True)
    for i, name in enumerate(names):
        (root / name).mkdir(parents=True, exist_ok=True)
        os.symlink(next(iter(sorted((tiny / sorted(os.listdir(tiny))[0]).iterdir()))), root / name / f"{i}.png")
    for i in range(zero_byte):
        (root / f"empty{i}.png").write_bytes(b"")
    return root


def test_evaluate_samples_checks_its_folder_before_training_its_feature_network(tiny_flowers, workdir, capsys,
                                                                                monkeypatch):
    import evaluate

    def no_training(*args, **kwargs):
        raise AssertionError("the feature network trained before the folder was checked")
    monkeypatch.setattr(evaluate, "yardstick", no_training)
    empty = samples_folder(workdir / "empty", tiny_flowers, [], zero_byte=2)
    code, err = one_line_error(capsys, evaluate.main, ["--data", str(tiny_flowers), "--samples", str(empty)])
    assert code == 2 and err == f"error: --samples {empty}: no readable PNG or JPG images found (2 unreadable image file(s))"


def test_evaluate_samples_says_what_makes_its_scores_meaningless(tiny_flowers, workdir, capsys, monkeypatch):
    import evaluate
    monkeypatch.setattr(evaluate, "yardstick", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
    odd = samples_folder(workdir / "odd", tiny_flowers, ["tulips", "roses", "tulips"], zero_byte=1)
    black = samples_folder(workdir / "black", tiny_flowers, [])
    for i in range(4):
        Image.new("RGB", (24, 24)).save(black / f"{i}.png")
    with pytest.raises(KeyboardInterrupt):
        evaluate.main(["--data", str(tiny_flowers), "--samples", str(odd), "--samples", str(black)])
    err = capsys.readouterr().err
    assert "skipped 1 unreadable image file(s)" in err
    assert "its sub-folders (roses, tulips) are not the data's classes" in err
    assert f"3 images; FD and KID need at least {evaluate.MIN_SCORED}" in err
    assert f"--samples {black}: every image is one flat colour" in err


@pytest.mark.parametrize("error, words", [
    (OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "vis/loss_AE.png"), "cannot write vis/loss_AE.png: No space"),
    (RuntimeError("[enforce fail at inline_container.cc:672] . PytorchStreamWriter failed writing file data/0"),
     "is the disk full?"),
])
def test_a_full_disk_anywhere_is_one_line(error, words, capsys):
    def main(argv):
        raise error
    code, err = one_line_error(capsys, main, None)
    assert code == 2 and words in err


@pytest.fixture
def tiny_disk(tmp_path):
    """A 96 KB tmpfs: a real full disk, where this machine lets the tests mount one."""
    import subprocess
    mount = tmp_path / "disk"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (not root, or no permission)")
    yield mount
    from utils.training.lock import HELD
    for lock in list(HELD.values()):   # a training's lock stays open until its process exits: close it first
        lock.release()
    subprocess.run(["umount", "-l", str(mount)])


def test_training_into_a_full_disk_is_one_line(tiny_flowers, workdir, tiny_disk, capsys):
    code, err = one_line_error(capsys, train_script.main, ["--model", "AE", "--data", str(tiny_flowers), "--threads",
                                                           "1", "--epochs", "2", "--checkpoint",
                                                           str(tiny_disk / "Best_AE.pth")])
    assert code == 2 and err.startswith(f"error: cannot write {tiny_disk}/") and "the disk is full" in err
    assert not list(tiny_disk.glob("*.tmp"))   # nothing half-written left to fill the disk


def test_evaluate_refuses_another_size_before_loading_the_data(tiny_flowers, workdir, capsys, monkeypatch):
    import evaluate
    train(tiny_flowers, "--model", "AE")
    monkeypatch.setattr(evaluate, "load_dataset", lambda *a, **k: pytest.fail("the data was loaded first"))
    code, err = one_line_error(capsys, evaluate.main, ["--model", "AE", "--image-size", "32", "--data",
                                                       str(tiny_flowers)])
    assert code == 2 and err == "error: models/Best_AE.pth was trained at 24px, not 32px"


def test_the_pid_lock_without_flock_refuses_a_live_holder_and_takes_a_stale_one(tmp_path, monkeypatch):
    from utils.training import lock
    monkeypatch.setattr(lock, "fcntl", None)   # as on Windows
    monkeypatch.setattr(lock, "HELD", {})
    path = tmp_path / "Best_AE.pth.lock"
    path.write_text(f"{os.getppid()}\n")   # a live process: pytest's parent
    with pytest.raises(UserError, match=f"another training \\(PID {os.getppid()}\\) is writing"):
        lock.TrainingLock(tmp_path / "Best_AE.pth").acquire()
    path.write_text("999999999\n")          # a dead one
    held = lock.TrainingLock(tmp_path / "Best_AE.pth").acquire()
    assert path.read_text().strip() == str(os.getpid())
    held.release()
    assert not path.exists()
