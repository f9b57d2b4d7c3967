"""The handout's layer dimensions, the shared interface, and VAE_loss_function against a hand computation."""
import math

import pytest
import torch
from torch import nn

from Autoencoder import Autoencoder
from MLPAutoencoder import MLPAutoencoder
from VarAutoencoder import VarAutoencoder, VAE_loss_function
from utils.models import build_model, describe, loss_fn_for


def shapes_after(layers, x, kinds):
    """The shape after each layer of the given kinds, in order."""
    out = []
    leaves = [m for m in layers.modules() if not list(m.children())]  # nested Sequentials run in order
    for layer in leaves:
        x = layer(x)
        if isinstance(layer, kinds):
            out.append(tuple(x.shape[1:]))
    return out, x


@pytest.mark.parametrize("size", [24, 64])
def test_mlp_dimensions(size):
    model = MLPAutoencoder(image_size=size, encoding_dim=64)
    x = torch.rand(2, 3, size, size)
    enc, z = shapes_after(model.encoder, x, nn.Linear)
    dec, y = shapes_after(model.decoder, z, nn.Linear)
    assert enc == [(256,), (128,), (64,)]
    assert dec == [(128,), (256,), (3 * size * size,)]
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1


@pytest.mark.parametrize("cls", [Autoencoder, VarAutoencoder])
@pytest.mark.parametrize("size", [24, 64])
@pytest.mark.parametrize("kernel", [2, 4])
def test_conv_dimensions(cls, size, kernel):
    model = cls(image_size=size, encoding_dim=64, upsample_kernel=kernel)
    h, q = size // 2, size // 4
    x = torch.rand(2, 3, size, size)
    # After each stage (the ReLU or pooling that closes it): 32xH/2 -> 64xH/4 -> 128xH/4.
    stages, features = shapes_after(model.encoder[0], x, (nn.MaxPool2d,))
    assert stages == [(32, h, h), (64, q, q)]
    assert tuple(features.shape[1:]) == (128, q, q)
    assert model.encode(x).shape == (2, 64)
    # Decoder: Linear -> 128xH/4 -> 64xH/4 -> 32xH/2 -> 3xH.
    decoded, y = shapes_after(model.decoder, model.encode(x), (nn.Unflatten, nn.Conv2d, nn.ConvTranspose2d))
    assert decoded == [(128, q, q), (64, q, q), (32, h, h), (3, size, size)]
    assert y.min() >= 0 and y.max() <= 1


@pytest.mark.parametrize("cls", [MLPAutoencoder, Autoencoder, VarAutoencoder])
def test_shared_interface(cls):
    model = cls(image_size=32, encoding_dim=16).eval()
    z = model.encode(torch.rand(3, 3, 32, 32))
    assert z.shape == (3, model.encoding_dim) == (3, 16)
    assert model.decode(torch.randn(5, 16)).shape == (5, 3, 32, 32)


def test_a_checkpoint_from_an_earlier_version_is_refused_in_one_line(tiny_flowers, workdir):
    import train_script
    from utils.errors import UserError
    from utils.models import load
    from utils.training.checkpoint import save_checkpoint
    train_script.main(["--model", "VAE", "--data", str(tiny_flowers), "--epochs", "1", "--stages", "1",
                       "--threads", "1"])
    ckpt = torch.load("models/Best_VAE.pth", weights_only=True)
    del ckpt["config"]["upsample_kernel"]   # as an earlier version saved it
    save_checkpoint("models/Best_VAE.pth", ckpt)
    with pytest.raises(UserError, match=r"earlier version of this project \(its configuration has no "
                                        r"'upsample_kernel'.*retrain it: python train_script.py --model VAE"):
        load("VAE")


def test_the_vae_decodes_with_overlapping_kernels_by_default_and_the_ae_with_the_handouts():
    import train_script
    kernels = {model: train_script.get_args(["--model", model]).upsample_kernel for model in ("AE", "VAE")}
    assert kernels == {"AE": 2, "VAE": 4}
    assert train_script.get_args(["--model", "VAE", "--upsample-kernel", "2"]).upsample_kernel == 2


def test_the_training_log_describes_each_model_by_its_own_settings():
    import train_script
    lines = {}
    for model in ("MLPAE", "AE", "VAE", "LatentAE"):
        config = vars(train_script.get_args(["--model", model, "--image-size", "24"]))
        lines[model] = describe(config, build_model(dict(config, channels=3)))
    assert [len(lines[m]) for m in lines] == [1, 1, 2, 2]    # the VAE's loss and the LatentAE's objective
    assert "decoder kernel 2" in lines["AE"][0] and "decoder kernel 4" in lines["VAE"][0]
    assert "kernel" not in lines["MLPAE"][0] + lines["LatentAE"][0]    # no transposed convolutions of that kind
    assert lines["VAE"][1].startswith("vae loss   sigma reconstruction") and "2 stage(s)" in lines["VAE"][1]
    assert lines["LatentAE"][1].endswith("code 8 x 6 x 6")


def test_image_size_must_be_multiple_of_4():
    with pytest.raises(ValueError, match="multiple of 4"):
        Autoencoder(image_size=30)


def test_vae_loss_by_hand():
    x = torch.tensor([[[[0.0, 0.5], [1.0, 0.25]]]])          # 1 image, 1 channel, 2x2
    recon = torch.tensor([[[[0.5, 0.5], [0.5, 0.5]]]])
    mu = torch.tensor([[1.0, 0.0]])
    logvar = torch.tensor([[0.0, math.log(4.0)]])
    sse = 0.25 + 0 + 0.25 + 0.0625
    kl = 0.5 * ((1 + 1 - 1 - 0) + (0 + 4 - 1 - math.log(4.0)))   # 0.5 * sum(mu^2 + var - 1 - logvar)
    assert VAE_loss_function(recon, x, mu, logvar).item() == pytest.approx(sse + kl, rel=1e-6)
    assert VAE_loss_function(recon, x, mu, logvar, beta=0.5).item() == pytest.approx(sse + 0.5 * kl, rel=1e-6)
    bce = -sum(t * math.log(0.5) + (1 - t) * math.log(0.5) for t in [0.0, 0.5, 1.0, 0.25])
    assert VAE_loss_function(recon, x, mu, logvar, recon="bce").item() == pytest.approx(bce + kl, rel=1e-6)
    # the calibrated decoder: its variance is the mean squared error 0.140625, D = 4 pixels: D/2 log(MSE) + KL
    calibrated = 4 / 2 * math.log(sse / 4) + kl
    assert VAE_loss_function(recon, x, mu, logvar, recon="sigma").item() == pytest.approx(calibrated, rel=1e-6)


def test_calibrated_vae_reports_the_handouts_loss():
    """recon="sigma" trains D/2 log(MSE) + KL but reports (and validates on) squared error + KL, the handout's."""
    torch.manual_seed(0)
    model = build_model(dict(model="VAE", image_size=8, channels=3, encoding_dim=4, upsample_kernel=2))
    x = torch.rand(5, 3, 8, 8)
    losses = {}
    for recon in ("mse", "sigma"):
        torch.manual_seed(1)
        losses[recon] = loss_fn_for(dict(model="VAE", recon=recon, beta=1.0, kl_warmup=0))(model, x, None, 1)
    assert torch.equal(losses["sigma"][1], losses["mse"][1]) and losses["mse"][0] is losses["mse"][1]
    assert losses["sigma"][0].item() < 0 < losses["sigma"][1].item()   # log(MSE) of an error below 1


def test_vae_loss_is_per_image():
    x, recon = torch.rand(4, 3, 8, 8), torch.rand(4, 3, 8, 8)
    mu, logvar = torch.randn(4, 5), torch.randn(4, 5)
    one = torch.stack([VAE_loss_function(recon[i:i + 1], x[i:i + 1], mu[i:i + 1], logvar[i:i + 1]) for i in range(4)])
    assert VAE_loss_function(recon, x, mu, logvar).item() == pytest.approx(one.mean().item(), rel=1e-5)


def test_vae_samples_in_training_and_is_deterministic_in_eval():
    model = VarAutoencoder(image_size=24, encoding_dim=8)
    x = torch.rand(2, 3, 24, 24)
    model.train()
    assert not torch.equal(model(x)[0], model(x)[0])
    model.eval()
    assert torch.equal(model(x)[0], model(x)[0])
    assert torch.equal(model(x)[0], model.decode(model.encode(x)))
