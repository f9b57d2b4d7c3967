"""The bonus's latent diffusion: the first-stage autoencoder, the latent space, and the whole pipeline at 64 px."""
import json
import shutil
from types import SimpleNamespace

import pytest
import torch
from torchvision.utils import save_image

import diffusion
import evaluate
import random_generation
import run_lab
import train_script
import visualization
from LatentAutoencoder import LatentAutoencoder, latent_loss_function
from utils.errors import UserError
from utils.generators import SamplingOptions
from utils.kinds import diffusion as diffusion_kind
from utils.models import training_defaults
from utils.evaluation.metrics import compression_ratio
from utils.sampling.spaces import LatentSpace, PixelSpace, code_scale

FAST = ["--threads", "1"]


@pytest.fixture(scope="module")
def tiny_flowers64(tmp_path_factory):
    """3 classes x 8 synthetic flower PNGs at 64 px."""
    from utils.data.synthetic import synthetic_flowers
    root = tmp_path_factory.mktemp("tiny_flowers64")
    images, labels, classes = synthetic_flowers(n_per_class=8, image_size=64, seed=2)
    for i, (image, label) in enumerate(zip(images, labels)):
        (root / classes[label]).mkdir(exist_ok=True)
        save_image(image.float() / 255, root / classes[label] / f"{i:03d}.png")
    return root


def test_round_trip_shapes_and_compression():
    model = LatentAutoencoder(image_size=64, channels=3, encoding_dim=4).eval()
    x = torch.rand(5, 3, 64, 64)
    mu, logvar = model.moments(x)
    assert mu.shape == logvar.shape == (5, 4, 16, 16) and torch.equal(model.encode(x), mu)
    assert model.decode(mu).shape == x.shape and model(x)[0].shape == x.shape
    assert compression_ratio(x.shape[1:], model.encoding_dim) == 12
    with pytest.raises(ValueError, match="multiple of 4"):
        LatentAutoencoder(image_size=30)


def test_loss_rewards_edges_and_penalises_spread_codes():
    x = torch.rand(4, 3, 16, 16)
    zero = torch.zeros(4, 4, 4, 4)
    exact, mse = latent_loss_function(x, x, zero, zero)
    assert mse == 0 and exact == pytest.approx(0.0, abs=1e-12)   # codes N(0, I) cost nothing either
    # The same squared error as a noisy copy, but smooth: the edge term tells them apart.
    flat = x + 0.1
    noisy = x + 0.1 * torch.sign(torch.randn_like(x))
    flat_loss, flat_mse = latent_loss_function(flat, x, zero, zero)
    noisy_loss, noisy_mse = latent_loss_function(noisy, x, zero, zero)
    assert flat_mse == pytest.approx(noisy_mse.item()) and noisy_loss > flat_loss + 0.01
    assert latent_loss_function(x, x, zero + 3, zero)[0] > 0    # a code far from N(0, I) costs KL


def test_latent_space_scales_codes_to_unit_variance():
    torch.manual_seed(0)
    model = LatentAutoencoder(image_size=32).eval()
    images = torch.rand(300, 3, 32, 32)
    space = LatentSpace(model, code_scale(model, images))
    codes = space.encode(images)
    assert codes.shape == (300, 8, 8, 8) and codes.std().item() == pytest.approx(1.0, rel=1e-3)
    decoded = space.decode(codes)
    assert torch.allclose(decoded, model.decode(model.encode(images)).clamp(0, 1), atol=1e-5)
    assert not any(p.requires_grad for p in model.parameters())     # frozen: diffusion never trains it
    pixels = PixelSpace(3, 32)
    assert torch.allclose(pixels.decode(pixels.encode(images)), images)


def test_latent_pipeline_through_every_command(tiny_flowers64, workdir, quick_evaluator, capsys):
    data = ["--data", str(tiny_flowers64)]
    train_script.main(["--model", "LatentAE", "--epochs", "1", *data, *FAST])
    ckpt = torch.load("models/Best_LatentAE.pth", weights_only=True)
    assert ckpt["config"]["image_size"] == 64 and ckpt["config"]["encoding_dim"] == 8   # the bonus's defaults
    visualization.main(["--model", "LatentAE", *FAST])
    assert (workdir / "vis/valid_LatentAE.png").exists()

    flags = ["--latent", "models/Best_LatentAE.pth", "--minutes", "0", "--epochs", "1", "--steps", "2",
             "--film-steps", "3", "--preview-every", "0", *data, *FAST]
    diffusion.main(flags)
    config = torch.load("models/Best_diffusion.pth", weights_only=True)["config"]
    assert config["latent_code"]["shape"] == [8, 16, 16] and config["image_size"] == 64 and config["patch"] == 1
    assert config["augment"] == "flip"   # the latent model's default
    assert (workdir / "vis/denoise_process_diffusion.png").exists()
    log = capsys.readouterr().out
    assert "8x16x16 codes of models/Best_LatentAE.pth" in log

    random_generation.main(["--model", "diffusion", "--n", "6", "--steps", "2", "--out-dir", "s", *FAST])
    written = sorted(str(f.relative_to(workdir / "s")) for f in (workdir / "s").rglob("*.png"))
    assert written == [f"{c}/{c}_{i:05d}.png" for c in ("astilbe", "bellflower", "calendula") for i in (0, 1)]
    random_generation.main(["--model", "diffusion", "--interpolate", "--steps", "2", *FAST])
    assert (workdir / "vis/interpolation_diffusion.png").exists()
    model, ckpt = diffusion.load(device="cpu")
    images = diffusion_kind.generate(model, ckpt["config"], 3, torch.tensor([0, 1, 2]))
    assert images.shape == (3, 3, 64, 64) and 0 <= images.min() and images.max() <= 1   # decoded into pixels

    diffusion.main(flags[:4] + ["--resume", "--epochs", "2", *flags[6:]])
    assert torch.load("models/Best_diffusion.pth", weights_only=True)["epoch"] == 2
    evaluate.main(["--n", "10", "--steps", "2", *FAST])
    rows = {row["row"]: row for row in json.loads((workdir / "vis/report.json").read_text())["rows"]}
    assert rows["diffusion"]["n"] == 10 and rows["LatentAE"]["psnr"] > 0          # both scored at 64 px
    assert "not trained" in rows["AE"]["status"]


def test_the_first_stage_trains_for_a_number_of_images_and_latent_diffusion_augments_by_default():
    """A small set is not under-trained: LatentAE's default length is 140,000 training images, so 10 epochs of the
    16 flowers' 14,166 training photos and 61 of the lab's 2,329 (by hand); --epochs and the handout models' own
    epoch counts still rule. Latent diffusion flips its training images by default, pixel diffusion does not."""
    def epochs(flags, n_train):
        return train_script.settings(train_script.get_args(flags))(SimpleNamespace(train_idx=range(n_train)))["epochs"]
    assert epochs(["--model", "LatentAE"], 14166) == 10 and epochs(["--model", "LatentAE"], 2329) == 61
    assert epochs(["--model", "LatentAE", "--epochs", "3"], 2329) == 3
    assert epochs(["--model", "AE"], 2329) == epochs(["--model", "AE"], 14166) == training_defaults("AE")["epochs"]
    with pytest.raises(SystemExit):   # argparse's one line: "argument --epochs: must be at least 1, got 0"
        train_script.get_args(["--model", "LatentAE", "--epochs", "0"])
    augment = {flags: module.get_args(list(flags)).augment for module, flags in [
        (diffusion, ("--latent", "m.pth")), (diffusion, ()), (diffusion, ("--latent", "m.pth", "--augment", "none")),
        (diffusion, ("--augment",)), (train_script, ("--model", "LatentAE"))]}
    assert list(augment.values()) == ["flip", "none", "none", "crop", "none"]


def test_latent_model_needs_its_own_autoencoder(tiny_flowers64, workdir, samplers_used):
    data = ["--data", str(tiny_flowers64), *FAST]
    train_script.main(["--model", "LatentAE", "--epochs", "1", *data])
    diffusion.main(["--latent", "models/Best_LatentAE.pth", "--minutes", "0", "--epochs", "1", "--steps", "2",
                    "--film-steps", "2", "--preview-every", "0", *data])
    # Retrained (other seed): same shape, other codes.
    shutil.copy("models/Best_LatentAE.pth", "models/kept.pth")
    train_script.main(["--model", "LatentAE", "--epochs", "1", "--seed", "5", *data])
    with pytest.raises(UserError, match="not the autoencoder this latent diffusion model was trained on"):
        diffusion.load()
    shutil.move("models/kept.pth", "models/Best_LatentAE.pth")
    model, ckpt = diffusion.load()
    assert diffusion_kind.generate(model, ckpt["config"], 1, options=SamplingOptions(steps=2)).shape == (1, 3, 64, 64)
    # Codes sample with Heun's method unless told otherwise (pixels with DPM-Solver++: test_diffusion.py).
    samplers_used.clear()   # (training's figures and the draw above sampled too)
    for sampler in [None, "ddim"]:
        diffusion_kind.generate(model, ckpt["config"], 1, torch.zeros(1, dtype=torch.long),
                           options=SamplingOptions(sampler=sampler, steps=2))
    assert samplers_used == ["heun", "ddim"]
    shutil.move("models/Best_LatentAE.pth", "models/elsewhere.pth")
    with pytest.raises(UserError, match="checkpoint not found: models/Best_LatentAE.pth.*--model LatentAE"):
        random_generation.main(["--model", "diffusion", *FAST])
    # An autoencoder of another image size.
    train_script.main(["--model", "LatentAE", "--epochs", "1", "--image-size", "32", "--checkpoint",
                       "models/ae32.pth", *data])
    with pytest.raises(UserError, match="encodes 3x32x32 images, not the data's 3x64x64"):
        diffusion.main(["--latent", "models/ae32.pth", "--epochs", "1", "--minutes", "0", *data])


@pytest.mark.parametrize("space, last_rows", [(None, ["diffusion"]), ("latent", ["LatentAE", "diffusion"])])
def test_run_lab_bonus_writes_its_files_into_their_own_folder(space, last_rows, tiny_flowers64, workdir,
                                                              quick_evaluator, capsys, monkeypatch):
    monkeypatch.setattr("sys.argv", ["run_lab.py", "--bonus", *[space] * bool(space), "--data", str(tiny_flowers64),
                                     "--quick", *FAST])
    run_lab.main()
    out = capsys.readouterr().out
    assert "writing into bonus/" in out and "MISSING" not in out
    training, kinds, _ = run_lab.bonus(space or "pixel")
    for path in run_lab.artefacts(kinds, training):
        assert (workdir / "bonus" / path).exists(), path
    assert not (workdir / "models").exists()          # the lab's own files are left alone
    config = torch.load(workdir / "bonus/models/Best_diffusion.pth", weights_only=False)["config"]
    assert config["image_size"] == 64 and bool(config["latent"]) == (space == "latent")
    rows = [row["row"] for row in json.loads((workdir / "bonus/vis/report.json").read_text())["rows"]]
    assert rows[-len(last_rows):] == last_rows and ("LatentAE" in rows) == (space == "latent")
