"""Part 4: schedules, the forward process, the loss, the samplers, guidance, training and the two commands."""
import pytest
import torch

import diffusion
import random_generation
from diffusion import Diffuser, diffusion_loss_fn, eps_and_x0, guided_denoiser, make_betas, q_sample
from utils.errors import UserError
from utils.sampling import ddim_sample, ddpm_sample, dpm_solver_sample


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
        return eps if self.objective == "eps" else ab.sqrt() * eps - (1 - ab).sqrt() * self.x0


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


@pytest.mark.parametrize("objective", ["eps", "v"])
def test_samplers_recover_the_single_training_image(objective):
    betas = make_betas("cosine", 200)
    alpha_bar = torch.cumprod(1 - betas, 0)
    x0 = torch.rand(1, 3, 4, 4) * 1.6 - 0.8
    oracle = Oracle(x0, alpha_bar, objective)
    denoise = lambda x, t: eps_and_x0(oracle(x, torch.full((len(x),), t)), x, alpha_bar[t], objective)  # noqa: E731
    for x in (ddim_sample(denoise, (2, 3, 4, 4), alpha_bar, 10, torch.Generator().manual_seed(0)),
              ddpm_sample(denoise, (2, 3, 4, 4), betas, torch.Generator().manual_seed(0)),
              dpm_solver_sample(denoise, (2, 3, 4, 4), alpha_bar, 10, torch.Generator().manual_seed(0))):
        assert torch.allclose(x, x0.expand(2, -1, -1, -1), atol=1e-3)


@pytest.mark.parametrize("sampler", ["ddpm", "ddim", "dpm"])
def test_sampler_marginals_match_the_forward_process(sampler):
    """Given the exact clean image, every sampler's x_t must follow q(x_t | x0) = N(sqrt(ab) x0, 1 - ab) mid-way."""
    betas = make_betas("cosine", 200)
    alpha_bar = torch.cumprod(1 - betas, 0)
    x0 = torch.full((1, 1, 1, 1), 0.4)
    oracle = Oracle(x0, alpha_bar, "eps")
    denoise = lambda x, t: eps_and_x0(oracle(x, torch.full((len(x),), t)), x, alpha_bar[t], "eps")  # noqa: E731
    seen = {}
    trace = lambda t, x: seen.setdefault("x", (t, x.clone())) if t <= 100 else None  # noqa: E731
    g = torch.Generator().manual_seed(0)
    shape = (20000, 1, 1, 1)
    if sampler == "ddpm":
        ddpm_sample(denoise, shape, betas, g, trace=trace)
    else:
        (ddim_sample if sampler == "ddim" else dpm_solver_sample)(denoise, shape, alpha_bar, 20, g, trace=trace)
    t, x = seen["x"]
    assert x.mean().item() == pytest.approx(0.4 * alpha_bar[t].sqrt().item(), abs=0.02)
    assert x.var().item() == pytest.approx(1 - alpha_bar[t].item(), rel=0.05)


def test_dpm_solver_and_ddim_solve_the_same_ode():
    torch.manual_seed(0)
    model = Diffuser(8, 3, base=8, mults=(1, 2)).eval()
    torch.nn.init.normal_(model.head[-1].weight, std=0.05)
    alpha_bar = torch.cumprod(1 - make_betas("cosine", 1000), 0)
    denoise = guided_denoiser(model, alpha_bar, "v")
    draw = lambda sampler, steps: sampler(denoise, (2, 3, 8, 8), alpha_bar, steps,  # noqa: E731
                                          torch.Generator().manual_seed(0))
    fine = draw(ddim_sample, 500)
    assert (draw(dpm_solver_sample, 500) - fine).abs().max() < 0.02
    # Second order: at 10 steps the solver is closer to the converged answer than DDIM.
    assert (draw(dpm_solver_sample, 10) - fine).abs().mean() < (draw(ddim_sample, 10) - fine).abs().mean()


def test_sampler_is_deterministic_for_a_seed():
    model = Diffuser(8, 3, num_classes=2, base=8, mults=(1, 2)).eval()
    config = dict(schedule="cosine", timesteps=50, objective="v", channels=3, image_size=8)
    draw = lambda seed: diffusion.sample(model, config, 3, torch.tensor([0, 1, 0]), 2.0, "ddim", 5,  # noqa: E731
                                         torch.Generator().manual_seed(seed))
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
    from utils.synthetic import synthetic_flowers
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
    model, ckpt = diffusion.load_trained()
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
        diffusion.load_trained("models/Best_AE.pth")
