"""Part 4: schedules, the forward process, the loss, the samplers, guidance, training and the two commands."""
import pytest
import torch

import diffusion
import random_generation
from diffusion import Diffuser, diffusion_loss_fn, eps_and_x0, guided_denoiser, make_betas, q_sample
from utils.errors import UserError
from utils.sampling.objectives import OBJECTIVES
from utils.sampling.samplers import SAMPLERS, timesteps_for


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_schedules(schedule):
    betas = make_betas(schedule, 1000)
    alpha_bar = torch.cumprod(1 - betas, 0)
    assert betas.shape == (1000,) and (betas > 0).all() and (betas < 1).all()
    assert (alpha_bar[1:] < alpha_bar[:-1]).all()              # monotone: every step adds noise
    assert alpha_bar[0] > 0.999 and alpha_bar[-1] < 1e-3       # from (almost) clean to (almost) pure noise


def test_linear_schedule_endpoints_match_the_ddpm_paper():
    betas = make_betas("linear", 1000)
    assert betas[0].item() == pytest.approx(1e-4) and betas[-1].item() == pytest.approx(0.02)


def test_forward_process_statistics():
    torch.manual_seed(0)
    x0 = torch.full((20000, 1, 1, 1), 0.6)
    ab = torch.tensor(0.3)
    x_t = q_sample(x0, ab, torch.randn_like(x0))
    assert x_t.mean().item() == pytest.approx(0.6 * 0.3 ** 0.5, abs=0.02)
    assert x_t.var().item() == pytest.approx(0.7, abs=0.02)


class Zero(torch.nn.Module):
    num_classes = 0

    def forward(self, x, t, labels=None):
        return torch.zeros_like(x)


class Oracle(torch.nn.Module):
    """Knows the only training image x0, so it can answer every question exactly."""
    num_classes = 0

    def __init__(self, x0, alpha_bar, objective):
        super().__init__()
        self.x0, self.alpha_bar, self.objective = x0, alpha_bar, objective

    def forward(self, x, t, labels=None):
        ab = self.alpha_bar[t].view(-1, 1, 1, 1)
        eps = (x - ab.sqrt() * self.x0) / (1 - ab).sqrt()
        return OBJECTIVES[self.objective].target(self.x0, eps, ab)


def test_loss_on_known_tensors():
    alpha_bar = torch.cumprod(1 - make_betas("linear"), 0)
    x0 = torch.rand(4, 3, 8, 8) * 2 - 1
    torch.manual_seed(0)
    loss = diffusion_loss_fn(Zero(), x0, None, alpha_bar, objective="eps", min_snr=0)
    torch.manual_seed(0)
    torch.randint(0, 1000, (4,))
    assert loss.item() == pytest.approx(torch.randn_like(x0).square().mean().item(), rel=1e-6)
    torch.manual_seed(1)
    weighted = diffusion_loss_fn(Zero(), x0, None, alpha_bar, objective="v", min_snr=5)
    torch.manual_seed(1)
    ab = alpha_bar[torch.randint(0, 1000, (4,))].view(-1, 1, 1, 1)
    v = ab.sqrt() * torch.randn_like(x0) - (1 - ab).sqrt() * x0
    snr = (ab / (1 - ab)).flatten()
    by_hand = (v.square().mean(dim=(1, 2, 3)) * snr.clamp(max=5) / (snr + 1)).mean()
    assert weighted.item() == pytest.approx(by_hand.item(), rel=1e-5)
    for objective in ("eps", "v"):
        for min_snr in (0, 5):
            exact = diffusion_loss_fn(Oracle(x0, alpha_bar, objective), x0, None, alpha_bar, objective, min_snr)
            assert exact.item() < 1e-8


def draw_with(sampler, denoise, alpha_bar, shape, steps, seed=0, trace=None):
    g = torch.Generator().manual_seed(seed)
    return sampler(denoise, torch.randn(shape, generator=g), alpha_bar, steps,
                   lambda size: torch.randn(size, generator=g), trace)


@pytest.mark.parametrize("objective", ["eps", "v", "x0"])
def test_samplers_recover_the_single_training_image(objective):
    alpha_bar = torch.cumprod(1 - make_betas("cosine", 200), 0)
    x0 = torch.rand(1, 3, 4, 4) * 1.6 - 0.8
    oracle = Oracle(x0, alpha_bar, objective)
    denoise = lambda x, t: eps_and_x0(oracle(x, torch.full((len(x),), t)), x, alpha_bar[t], objective)  # noqa: E731
    for sampler in SAMPLERS.values():
        assert torch.allclose(draw_with(sampler, denoise, alpha_bar, (2, 3, 4, 4), 10), x0.expand(2, -1, -1, -1),
                              atol=1e-3)


def gaussian_denoiser(alpha_bar, mu, sigma):
    """The exact denoiser of data N(mu, sigma^2 I): x0's posterior mean given x_t, in closed form."""
    def denoise(x, t):
        ab = alpha_bar[t]
        x0 = mu + ab.sqrt() * sigma ** 2 / (ab * sigma ** 2 + 1 - ab) * (x - ab.sqrt() * mu)
        return (x - ab.sqrt() * x0) / (1 - ab).sqrt(), x0
    return denoise


def flipped_ddim(denoise, x, alpha_bar, steps=50, fresh_noise=None, trace=None):
    """DDIM with one sign wrong: the test below must catch it."""
    timesteps = timesteps_for(len(alpha_bar), steps)
    for i, t in enumerate(timesteps):
        eps, x0 = denoise(x, t)
        ab_next = alpha_bar[timesteps[i + 1]] if i + 1 < len(timesteps) else torch.tensor(1.0)
        x = ab_next.sqrt() * x0 - (1 - ab_next).sqrt() * eps
    return x


def reproduces_the_data(sampler, steps):
    alpha_bar = torch.cumprod(1 - make_betas("cosine", 1000), 0)
    mu, sigma = 0.3, 0.5
    x = draw_with(sampler, gaussian_denoiser(alpha_bar, mu, sigma), alpha_bar, (20000, 1, 1, 1), steps)
    return abs(x.mean().item() - mu) < 0.02 and abs(x.std().item() / sigma - 1) < 0.03


@pytest.mark.parametrize("name", ["ddpm", "ddim", "dpm"])
def test_samplers_reproduce_gaussian_data_with_its_exact_denoiser(name):
    assert reproduces_the_data(SAMPLERS[name], 100)   # the ODE samplers' step error: about 1 % of sigma at 100


def test_a_wrong_sign_in_ddim_fails_the_gaussian_test():
    assert reproduces_the_data(SAMPLERS["ddim"], 100) and not reproduces_the_data(flipped_ddim, 100)


def test_dpm_solver_and_ddim_solve_the_same_ode():
    torch.manual_seed(0)
    model = Diffuser(8, 3, base=8, mults=(1, 2)).eval()
    torch.nn.init.normal_(model.head[-1].weight, std=0.05)
    alpha_bar = torch.cumprod(1 - make_betas("cosine", 1000), 0)
    denoise = guided_denoiser(model, alpha_bar, "v")
    draw = lambda name, steps: draw_with(SAMPLERS[name], denoise, alpha_bar, (2, 3, 8, 8), steps)  # noqa: E731
    fine = draw("ddim", 500)
    assert (draw("dpm", 500) - fine).abs().max() < 0.02
    # Second order: at 10 steps the solver is closer to the converged answer than DDIM.
    assert (draw("dpm", 10) - fine).abs().mean() < (draw("ddim", 10) - fine).abs().mean()


def test_min_snr_weights_by_hand():
    # gamma = 5 at SNR 1, 5 and 20: eps min(snr, 5)/snr, v min(snr, 5)/(snr + 1), x0 min(snr, 5)
    snr = torch.tensor([1.0, 5.0, 20.0])
    assert OBJECTIVES["eps"].snr_weight(snr, 5).tolist() == pytest.approx([1.0, 1.0, 0.25])
    assert OBJECTIVES["v"].snr_weight(snr, 5).tolist() == pytest.approx([0.5, 5 / 6, 5 / 21])
    assert OBJECTIVES["x0"].snr_weight(snr, 5).tolist() == pytest.approx([1.0, 5.0, 5.0])


def test_a_new_objective_plugs_in_without_edits(monkeypatch):
    class Halved:
        """Predicts x0 / 2: nothing else in the code base knows it."""
        def target(self, x0, eps, ab):
            return x0 / 2

        def eps_and_x0(self, output, x_t, ab):
            x0 = 2 * output
            return (x_t - ab.sqrt() * x0) / (1 - ab).sqrt(), x0

        def snr_weight(self, snr, gamma):
            return snr.clamp(max=gamma)

    monkeypatch.setitem(OBJECTIVES, "halved", Halved())
    alpha_bar = torch.cumprod(1 - make_betas("cosine", 50), 0)
    x0 = torch.rand(1, 3, 4, 4) * 1.6 - 0.8

    class Knows(torch.nn.Module):
        num_classes = 0

        def forward(self, x, t, labels=None):
            return (x0 / 2).expand(len(x), -1, -1, -1)
    assert diffusion_loss_fn(Knows(), x0, None, alpha_bar, objective="halved").item() < 1e-12
    config = dict(schedule="cosine", timesteps=50, objective="halved", channels=3, image_size=4)
    images = diffusion.sample(Knows(), config, 3, None, 0, "dpm", 5, seed=0)
    assert torch.allclose(images, ((x0 + 1) / 2).expand(3, -1, -1, -1), atol=1e-5)


def test_sampler_is_deterministic_for_a_seed():
    model = Diffuser(8, 3, num_classes=2, base=8, mults=(1, 2)).eval()
    config = dict(schedule="cosine", timesteps=50, objective="v", channels=3, image_size=8)
    draw = lambda seed: diffusion.sample(model, config, 3, torch.tensor([0, 1, 0]), 2.0, "ddim", 5, seed)  # noqa: E731
    assert torch.equal(draw(1), draw(1)) and not torch.equal(draw(1), draw(2))


def test_guidance_weights():
    torch.manual_seed(0)
    model = Diffuser(8, 3, num_classes=3, base=8, mults=(1, 2)).eval()
    torch.nn.init.normal_(model.head[-1].weight, std=0.1)        # the zero-initialised head would hide labels
    alpha_bar = torch.cumprod(1 - make_betas("cosine", 100), 0)
    x, labels = torch.randn(2, 3, 8, 8), torch.tensor([0, 2])
    t = torch.full((2,), 40)
    with torch.no_grad():
        cond, uncond = model(x, t, labels), model(x, t)
        for w in (0.0, 1.0, 3.0):
            eps, x0 = guided_denoiser(model, alpha_bar, "v", labels, w)(x, 40)
            assert torch.allclose((eps, x0)[0], eps_and_x0(uncond + w * (cond - uncond), x, alpha_bar[40], "v")[0],
                                  atol=1e-5)
    assert not torch.allclose(cond, uncond)


def test_overfitting_eight_images_drives_the_loss_down():
    torch.manual_seed(0)
    model = Diffuser(16, 3, num_classes=0, base=16, mults=(1, 2))
    alpha_bar = torch.cumprod(1 - make_betas("cosine"), 0)
    from utils.data.synthetic import synthetic_flowers
    x0 = synthetic_flowers(n_per_class=3, image_size=16)[0][:8].float() / 127.5 - 1
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)

    def fixed_noise_loss():
        with torch.random.fork_rng(), torch.no_grad():
            torch.manual_seed(123)
            return sum(diffusion_loss_fn(model, x0, None, alpha_bar).item() for _ in range(8))

    before = fixed_noise_loss()
    for _ in range(150):
        loss = diffusion_loss_fn(model, x0, None, alpha_bar)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert fixed_noise_loss() < 0.5 * before


def run_diffusion(tiny, *flags):
    diffusion.main(["--data", str(tiny), "--minutes", "0", "--epochs", "1", "--steps", "3", "--film-steps", "3",
                    "--base", "8", "--threads", "1", "--batch-size", "16", *flags])


def test_train_command_and_checkpoint(tiny_flowers, workdir, capsys):
    run_diffusion(tiny_flowers, "--preview-every", "1")
    for path in ("models/Best_diffusion.pth", "models/last_diffusion.pth", "vis/loss_diffusion.png",
                 "vis/preview_diffusion.png", "vis/random_images_diffusion.png", "vis/denoise_process_diffusion.png"):
        assert (workdir / path).exists(), path
    out = capsys.readouterr().out
    assert "img/s" in out and "ETA" in out and "conditional on 3 classes" in out
    model, ckpt = diffusion.load()
    assert ckpt["config"]["classes"] == ["astilbe", "bellflower", "calendula"] and ckpt["config"]["base"] == 8
    saved = torch.load("models/Best_diffusion.pth", weights_only=True)
    assert all(torch.equal(model.state_dict()[k], saved["ema"][k]) for k in saved["ema"])
    assert any(not torch.equal(saved["ema"][k], saved["model"][k]) for k in saved["ema"])  # EMA is its own copy


def test_resume_matches_an_uninterrupted_run(tiny_flowers, workdir):
    run_diffusion(tiny_flowers, "--epochs", "2", "--seed", "5")
    straight = torch.load("models/last_diffusion.pth", weights_only=True)["state"]["history"]
    run_diffusion(tiny_flowers, "--epochs", "1", "--seed", "5")
    run_diffusion(tiny_flowers, "--epochs", "2", "--seed", "5", "--resume")
    resumed = torch.load("models/last_diffusion.pth", weights_only=True)["state"]["history"]
    assert [h["train_loss"] for h in resumed] == pytest.approx([h["train_loss"] for h in straight], rel=1e-5)
    assert [h["valid_loss"] for h in resumed] == pytest.approx([h["valid_loss"] for h in straight], rel=1e-5)


def test_generation_command(tiny_flowers, workdir):
    run_diffusion(tiny_flowers)
    random_generation.main(["--model", "diffusion", "--steps", "2", "--n", "6", "--out-dir", "out", "--threads", "1"])
    assert sorted(p.name for p in (workdir / "out").iterdir()) == ["astilbe", "bellflower", "calendula"]
    assert all(len(list((workdir / "out" / c).iterdir())) == 2 for c in ("astilbe", "bellflower", "calendula"))
    random_generation.main(["--model", "diffusion", "--class", "calendula", "--steps", "2", "--n", "3",
                            "--out-dir", "one", "--threads", "1"])
    assert len(list((workdir / "one" / "calendula").iterdir())) == 3
    with pytest.raises(UserError, match="unknown class 'rose' \\(choose from astilbe, bellflower, calendula\\)"):
        random_generation.main(["--model", "diffusion", "--class", "rose"])
    with pytest.raises(UserError, match="trained at 24px, not 32px"):
        random_generation.main(["--model", "diffusion", "--image-size", "32"])


def test_non_diffusion_checkpoint_is_refused(tiny_flowers, workdir):
    import train_script
    train_script.main(["--model", "AE", "--data", str(tiny_flowers), "--epochs", "1", "--threads", "1"])
    with pytest.raises(UserError, match="is a checkpoint of AE, not diffusion"):
        diffusion.load(checkpoint="models/Best_AE.pth")
