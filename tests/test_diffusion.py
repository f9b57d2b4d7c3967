"""Part 4: schedules, the forward process, the loss, the samplers, guidance, training and the two commands."""
import types

import pytest
import torch

import diffusion
import random_generation
from diffusion import Diffuser, diffusion_loss_fn
from utils.generators import SamplingOptions
from utils.sampling.driver import eps_and_x0, guided_denoiser, padded, resolved, sample
from utils.errors import UserError
from utils.sampling.objectives import OBJECTIVES, Regression
from utils.sampling.paths import Discrete, Straight, make_betas
from utils.sampling.samplers import SAMPLERS
from utils.sampling.spaces import LatentSpace, PixelSpace, space_kind
from utils.training.train import EMA


def ddpm_path(schedule="cosine", timesteps=1000):
    return Discrete(torch.cumprod(1 - make_betas(schedule, timesteps), 0))


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


def test_paths_coefficients():
    a, s = ddpm_path("linear").coefficients(torch.tensor([0, 999]))
    assert a.shape == (2, 1, 1, 1) and torch.allclose(a.square() + s.square(), torch.ones(2, 1, 1, 1))
    a, s = Straight().coefficients(torch.tensor([0.0, 0.25, 1.0]))
    assert a.flatten().tolist() == [1.0, 0.75, 0.0] and s.flatten().tolist() == [0.0, 0.25, 1.0]
    assert Straight().sampling_times(4) == [1.0, 0.75, 0.5, 0.25]   # the samplers then land on t = 0
    torch.manual_seed(0)
    t = Straight("logit-normal").training_times(20000)
    assert 0 < t.min() and t.max() < 1 and abs(t.mean().item() - 0.5) < 0.01 and t.std() < 0.25  # < uniform's 0.29


class Zero(torch.nn.Module):
    num_classes = 0

    def forward(self, x, t, labels=None, interval=None):
        return torch.zeros_like(x)


class Oracle(torch.nn.Module):
    """Knows the only training image x0, so it can answer every question exactly."""
    num_classes = 0

    def __init__(self, x0, path, objective):
        super().__init__()
        self.x0, self.path, self.objective = x0, path, objective

    def forward(self, x, t, labels=None, interval=None):
        a, s = self.path.coefficients(t / 1000 if isinstance(self.path, Straight) else t)
        eps = (x - a * self.x0) / s
        return OBJECTIVES[self.objective].target(self.x0, eps, a, s)


def path_of(objective):
    return Straight() if OBJECTIVES[objective].path == "straight" else ddpm_path("cosine", 200)


def test_loss_on_known_tensors():
    path = ddpm_path("linear")
    x0 = torch.rand(4, 3, 8, 8) * 2 - 1
    torch.manual_seed(0)
    loss = diffusion_loss_fn(Zero(), x0, None, path, objective="eps", min_snr=0)
    torch.manual_seed(0)
    torch.randint(0, 1000, (4,))
    assert loss.item() == pytest.approx(torch.randn_like(x0).square().mean().item(), rel=1e-6)
    torch.manual_seed(1)
    weighted = diffusion_loss_fn(Zero(), x0, None, path, objective="v", min_snr=5)
    torch.manual_seed(1)
    ab = path.alpha_bar[torch.randint(0, 1000, (4,))].view(-1, 1, 1, 1)
    v = ab.sqrt() * torch.randn_like(x0) - (1 - ab).sqrt() * x0
    snr = (ab / (1 - ab)).flatten()
    by_hand = (v.square().mean(dim=(1, 2, 3)) * snr.clamp(max=5) / (snr + 1)).mean()
    assert weighted.item() == pytest.approx(by_hand.item(), rel=1e-5)
    for objective in (name for name, parts in OBJECTIVES.items() if not parts.interval):
        for min_snr in (0, 5):
            exact = diffusion_loss_fn(Oracle(x0, path_of(objective), objective), x0, None, path_of(objective),
                                      objective, min_snr)
            assert exact.item() < 1e-8


def test_flow_loss_on_known_tensors():
    """Flow matching: x_t = (1 - t) x0 + t eps, target eps - x0, the network sees 1000 t."""
    x0 = torch.rand(4, 3, 8, 8) * 2 - 1
    seen = []

    class Records(torch.nn.Module):
        num_classes = 0

        def forward(self, x, t, labels=None, interval=None):
            seen.append((x, t))
            return torch.zeros_like(x)

    torch.manual_seed(0)
    loss = diffusion_loss_fn(Records(), x0, None, Straight("uniform"), objective="flow", min_snr=0)
    torch.manual_seed(0)
    t = torch.rand(4)
    eps = torch.randn_like(x0)
    tt = t.view(-1, 1, 1, 1)
    assert torch.allclose(seen[0][0], (1 - tt) * x0 + tt * eps) and torch.allclose(seen[0][1], 1000 * t)
    assert loss.item() == pytest.approx((eps - x0).square().mean().item(), rel=1e-6)


def draw_with(sampler, denoise, path, shape, steps, seed=0, trace=None):
    g = torch.Generator().manual_seed(seed)
    return sampler(denoise, torch.randn(shape, generator=g), path, steps,
                   lambda size: torch.randn(size, generator=g), trace)


def gaussian_denoiser(path, mu, sigma):
    """The exact denoiser of data N(mu, sigma^2 I) on a path x_t = a x0 + s eps: x0's posterior mean, in closed
    form (so the exact velocity eps - x0 on the straight path, too)."""
    def denoise(x, t, until=None):
        a, s = path.coefficients(t)
        x0 = mu + a * sigma ** 2 / (a * a * sigma ** 2 + s * s) * (x - a * mu)
        return (x - a * x0) / s, x0
    return denoise


def flipped_ddim(denoise, x, path, steps=50, fresh_noise=None, trace=None):
    """DDIM with one sign wrong: the test below must catch it."""
    times = path.sampling_times(steps)
    for i, t in enumerate(times):
        eps, x0 = denoise(x, t)
        a_next, s_next = path.coefficients(times[i + 1]) if i + 1 < len(times) else (1.0, 0.0)
        x = a_next * x0 - s_next * eps
    return x


def reproduces_the_data(sampler, steps, path=None, denoiser=gaussian_denoiser):
    path = path or ddpm_path()
    mu, sigma = 0.3, 0.5
    x = draw_with(sampler, denoiser(path, mu, sigma), path, (20000, 1, 1, 1), steps)
    return abs(x.mean().item() - mu) < 0.02 and abs(x.std().item() / sigma - 1) < 0.03


def answered_as(objective):
    """gaussian_denoiser's exact answer given as this objective's network output and read back through it, as
    guided_denoiser reads a network (unclipped: Gaussian data has tails beyond [-1, 1])."""
    def denoiser(path, mu, sigma):
        exact = gaussian_denoiser(path, mu, sigma)

        def denoise(x, t, until=None):
            a, s = path.coefficients(t)
            return eps_and_x0(OBJECTIVES[objective].target(*reversed(exact(x, t)), a, s), x, a, s, objective, None)
        return denoise
    return denoiser


@pytest.mark.parametrize("objective", sorted(OBJECTIVES))
def test_every_sampler_reproduces_gaussian_data_through_every_objective(objective):
    """Unlike a one-image oracle, x0's posterior mean depends on x_t at every step, the last one too: a wrong
    update rule, or an objective read back wrongly, moves the samples' mean or spread."""
    for name, sampler in SAMPLERS.items():
        assert reproduces_the_data(sampler, 100, path_of(objective), answered_as(objective)), name
    assert not reproduces_the_data(flipped_ddim, 100, path_of(objective), answered_as(objective))


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_samplers_reproduce_gaussian_data_with_its_exact_denoiser(name):
    assert reproduces_the_data(SAMPLERS[name], 100)   # the ODE samplers' step error: about 1 % of sigma at 100
    assert reproduces_the_data(SAMPLERS[name], 100, Straight())


def test_a_wrong_sign_in_ddim_fails_the_gaussian_test():
    assert reproduces_the_data(SAMPLERS["ddim"], 100) and not reproduces_the_data(flipped_ddim, 100)
    assert not reproduces_the_data(flipped_ddim, 100, Straight())


def test_sampling_clips_pixels_but_not_codes():
    """Unit-variance codes reach beyond the pixels' [-1, 1]: clipped there, their samples lose the tails."""
    path, sigma = Straight(), 1.0
    exact = gaussian_denoiser(path, 0.0, sigma)

    def spread(clip):   # the exact x0 prediction, through the clipping that sample() applies for a space
        denoise = lambda x, t: eps_and_x0(exact(x, t)[1], x, *path.coefficients(t), "x0", clip)  # noqa: E731
        return draw_with(SAMPLERS["heun"], denoise, path, (20000, 1, 1, 1), 50).std().item()
    assert spread(LatentSpace.clip) == pytest.approx(sigma, rel=0.03)
    assert spread(PixelSpace.clip) < 0.8 * sigma


def test_euler_on_the_straight_path_is_eulers_method_in_t():
    path, mu, sigma = Straight(), 0.3, 0.5
    denoise = gaussian_denoiser(path, mu, sigma)
    x = start = torch.randn(50, 1, 1, 1, generator=torch.Generator().manual_seed(0))
    times = path.sampling_times(8) + [0.0]
    for t, t_next in zip(times, times[1:]):
        eps, x0 = denoise(x, t)
        x = x + (t_next - t) * (eps - x0)                        # dx/dt = the velocity eps - x0
    assert torch.allclose(SAMPLERS["euler"](denoise, start, path, 8), x, atol=1e-6)


def test_heun_is_second_order_on_the_straight_path():
    """With the exact velocity field of Gaussian data the ODE's solution is known: x0 = mu + sigma * x1 (the
    flow maps quantiles to quantiles). Heun's error must fall about 4x when its steps double; Euler's, 2x."""
    path, mu, sigma = Straight(), 0.3, 0.5
    start = torch.linspace(-2, 2, 9).view(-1, 1, 1, 1)
    error = lambda name, steps: (SAMPLERS[name](gaussian_denoiser(path, mu, sigma), start, path, steps)  # noqa: E731
                                 - (mu + sigma * start)).abs().max().item()
    assert error("heun", 8) / error("heun", 16) > 3.0
    assert 1.5 < error("euler", 8) / error("euler", 16) < 2.5
    assert error("heun", 8) < error("euler", 15)                  # fewer network calls, smaller error


def test_dpm_solver_and_ddim_solve_the_same_ode():
    torch.manual_seed(0)
    model = Diffuser(8, 3, base=8, mults=(1, 2)).eval()
    torch.nn.init.normal_(model.head[-1].weight, std=0.05)
    for path, objective in [(ddpm_path(), "v"), (Straight(), "flow")]:
        denoise = guided_denoiser(model, path, objective)
        draw = lambda name, steps: draw_with(SAMPLERS[name], denoise, path, (2, 3, 8, 8), steps)  # noqa: E731
        fine = draw("ddim", 200)
        assert (draw("dpm", 200) - fine).abs().max() < 0.02 and (draw("heun", 100) - fine).abs().max() < 0.02
        # Second order: at 10 steps the solvers are closer to the converged answer than DDIM.
        assert (draw("dpm", 10) - fine).abs().mean() < (draw("ddim", 10) - fine).abs().mean()
        assert (draw("heun", 10) - fine).abs().mean() < (draw("ddim", 10) - fine).abs().mean()


def test_min_snr_weights_by_hand():
    # gamma = 5 at SNR 1, 5 and 20: eps min(snr, 5)/snr, v min(snr, 5)/(snr + 1), x0 min(snr, 5)
    snr = torch.tensor([1.0, 5.0, 20.0])
    assert OBJECTIVES["eps"].snr_weight(snr, 5).tolist() == pytest.approx([1.0, 1.0, 0.25])
    assert OBJECTIVES["v"].snr_weight(snr, 5).tolist() == pytest.approx([0.5, 5 / 6, 5 / 21])
    assert OBJECTIVES["x0"].snr_weight(snr, 5).tolist() == pytest.approx([1.0, 5.0, 5.0])
    # flow at t = 1/2, 1/3, 1/5 (snr = ((1 - t) / t)^2 = 1, 4, 16): min(snr, 5) t^2
    assert OBJECTIVES["flow"].snr_weight(torch.tensor([1.0, 4.0, 16.0]), 5).tolist() == pytest.approx(
        [1 / 4, 4 / 9, 5 / 25])


def test_a_new_objective_plugs_in_without_edits(monkeypatch):
    class Halved(Regression):
        """Predicts x0 / 2: nothing else in the code base knows it."""
        path = "discrete"

        def target(self, x0, eps, a, s):
            return x0 / 2

        def eps_and_x0(self, output, x_t, a, s):
            x0 = 2 * output
            return (x_t - a * x0) / s, x0

        def snr_weight(self, snr, gamma):
            return snr.clamp(max=gamma)

    monkeypatch.setitem(OBJECTIVES, "halved", Halved())
    x0 = torch.rand(1, 3, 4, 4) * 1.6 - 0.8

    class Knows(torch.nn.Module):
        num_classes = 0

        def forward(self, x, t, labels=None, interval=None):
            return (x0 / 2).expand(len(x), -1, -1, -1)
    assert diffusion_loss_fn(Knows(), x0, None, ddpm_path("cosine", 50), objective="halved").item() < 1e-12
    config = dict(schedule="cosine", timesteps=50, objective="halved", channels=3, image_size=4)
    images = sample(Knows(), config, 3, None, SamplingOptions(0, "dpm", 5), seed=0)
    assert torch.allclose(images, ((x0 + 1) / 2).expand(3, -1, -1, -1), atol=1e-5)


def test_sampler_is_deterministic_for_a_seed():
    model = Diffuser(8, 3, num_classes=2, base=8, mults=(1, 2)).eval()
    config = dict(schedule="cosine", timesteps=50, objective="v", channels=3, image_size=8)
    draw = lambda seed: sample(model, config, 3, torch.tensor([0, 1, 0]), SamplingOptions(2.0, "ddim", 5), seed)  # noqa: E731
    assert torch.equal(draw(1), draw(1)) and not torch.equal(draw(1), draw(2))


def test_pixels_sample_with_dpm_solver_unless_told_otherwise(samplers_used):
    """(Codes with Heun's method: test_latent.py.)"""
    model = Diffuser(8, 3, num_classes=2, base=8, mults=(1, 2)).eval()
    config = dict(objective="flow", time_sampling="logit-normal", channels=3, image_size=8)
    for sampler in [None, "heun"]:
        sample(model, config, 1, torch.tensor([1]), SamplingOptions(None, sampler, 2))
    assert samplers_used == ["dpm", "heun"]


def test_pixels_at_64_px_sample_as_codes_do():
    """The 64 px defaults (utils/sampling/spaces.py) are the latent models', not the 24 px ones."""
    small, large = (dict(image_size=size, channels=3, objective="flow") for size in (24, 64))
    assert resolved(large) == resolved(dict(large, latent="ae.pth")) != resolved(small)
    assert space_kind(large).precision == "auto" and space_kind(small).precision == "fp32"


def test_padded_batches_give_the_same_outputs_in_multiples():
    sizes = []

    def model(x, t, labels=None):
        sizes.append(len(x))
        return x * t.view(-1, 1) + (0 if labels is None else labels.view(-1, 1))
    x, t, labels = torch.randn(5, 2), torch.rand(5), torch.arange(5.0)
    for multiple in (1, 4, 8):
        assert torch.equal(padded(model, multiple)(x, t, labels), model(x, t, labels))
        assert torch.equal(padded(model, multiple)(x, t), model(x, t))
    assert sizes == [5, 5, 5, 5, 8, 5, 8, 5, 8, 5, 8, 5]


def test_bf16_samples_do_not_depend_on_their_batch():
    model = Diffuser(8, 3, num_classes=2, base=8, mults=(1, 2)).eval()
    torch.nn.init.normal_(model.head[-1].weight, std=0.1)
    config = dict(objective="flow", time_sampling="logit-normal", channels=3, image_size=8)
    labels = torch.arange(13) % 2
    bf16 = SamplingOptions(2.0, "heun", 3, precision="bf16")
    alone = sample(model, config, 3, labels[:3], bf16, seed=4)
    for batch_size in (64, 5):
        among = sample(model, config, 13, labels, bf16, seed=4, batch_size=batch_size)
        assert torch.equal(alone, among[:3])
    assert not torch.equal(alone, sample(model, config, 3, labels[:3], SamplingOptions(2.0, "heun", 3, precision="fp32"),
                                         seed=4))


def test_guidance_weights():
    torch.manual_seed(0)
    model = Diffuser(8, 3, num_classes=3, base=8, mults=(1, 2)).eval()
    torch.nn.init.normal_(model.head[-1].weight, std=0.1)        # the zero-initialised head would hide labels
    x, labels = torch.randn(2, 3, 8, 8), torch.tensor([0, 2])
    for path, objective, t in [(ddpm_path("cosine", 100), "v", 40), (Straight(), "flow", 0.4)]:
        net_t = path.network_time(torch.full((2,), t))
        with torch.no_grad():
            cond, uncond = model(x, net_t, labels), model(x, net_t)
            for w in (0.0, 1.0, 3.0):
                eps, x0 = guided_denoiser(model, path, objective, labels, w)(x, t)
                expected = eps_and_x0(uncond + w * (cond - uncond), x, *path.coefficients(t), objective)
                assert torch.allclose(eps, expected[0], atol=1e-5) and torch.allclose(x0, expected[1], atol=1e-5)
        assert not torch.allclose(cond, uncond)


def test_guidance_only_up_to_its_noise_limit():
    """Straight path: s/a = t / (1 - t), so a limit of 1 guides t = 0.4 (0.67) and leaves t = 0.6 (1.5) and the
    pure noise at t = 1 purely conditional."""
    torch.manual_seed(0)
    model = Diffuser(8, 3, num_classes=3, base=8, mults=(1, 2)).eval()
    torch.nn.init.normal_(model.head[-1].weight, std=0.1)
    x, labels, path = torch.randn(2, 3, 8, 8), torch.tensor([0, 2]), Straight()
    for t, guided in [(0.4, True), (0.6, False), (1.0, False)]:
        limited = guided_denoiser(model, path, "flow", labels, 3.0, max_noise=1.0)(x, t)[1]
        expected = guided_denoiser(model, path, "flow", labels, 3.0 if guided else 1.0)(x, t)[1]
        other = guided_denoiser(model, path, "flow", labels, 1.0 if guided else 3.0)(x, t)[1]
        assert torch.allclose(limited, expected) and not torch.allclose(limited, other)
    unconditional = guided_denoiser(model, path, "flow", labels, 0.0)(x, 0.6)[1]
    assert torch.allclose(guided_denoiser(model, path, "flow", labels, 0.0, max_noise=1.0)(x, 0.6)[1], unconditional)


@pytest.mark.parametrize("upsample", ["nearest", "transposed"])
def test_overfitting_eight_images_drives_the_loss_down(upsample):
    torch.manual_seed(0)
    model = Diffuser(16, 3, num_classes=0, base=16, mults=(1, 2), upsample=upsample)
    path = ddpm_path()
    from utils.data.synthetic import synthetic_flowers
    x0 = synthetic_flowers(n_per_class=3, image_size=16)[0][:8].float() / 127.5 - 1
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)

    def fixed_noise_loss():
        with torch.random.fork_rng(), torch.no_grad():
            torch.manual_seed(123)
            return sum(diffusion_loss_fn(model, x0, None, path).item() for _ in range(8))

    before = fixed_noise_loss()
    for _ in range(150):
        loss = diffusion_loss_fn(model, x0, None, path)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert fixed_noise_loss() < 0.5 * before


def test_a_checkpoint_from_an_earlier_version_is_refused_in_one_line(tiny_flowers, workdir):
    from utils.training.checkpoint import save_checkpoint
    diffusion.main(["--data", str(tiny_flowers), "--minutes", "0", "--epochs", "1", "--steps", "2", "--film-steps",
                    "2", "--base", "8", "--threads", "1", "--preview-every", "0"])
    ckpt = torch.load("models/Best_diffusion.pth", weights_only=True)
    del ckpt["config"]["upsample"]   # as an earlier version saved it
    save_checkpoint("models/Best_diffusion.pth", ckpt)
    with pytest.raises(UserError, match=r"earlier version of this project \(its configuration has no 'upsample'.*"
                                        r"retrain it: python diffusion.py"):
        diffusion.load()


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
    # EMA 0 (the default): no averaged copy is kept, and sampling uses the trained weights themselves
    assert saved["ema"] is None
    assert all(torch.equal(model.state_dict()[k], saved["model"][k]) for k in saved["model"])


def test_a_nonzero_ema_is_saved_and_sampled_from(tiny_flowers, workdir):
    run_diffusion(tiny_flowers, "--ema", "0.5")
    model, _ = diffusion.load()
    saved = torch.load("models/Best_diffusion.pth", weights_only=True)
    assert all(torch.equal(model.state_dict()[k], saved["ema"][k]) for k in saved["ema"])
    assert any(not torch.equal(saved["ema"][k], saved["model"][k]) for k in saved["model"])


def test_ema_averages_the_weights_after_its_warm_up():
    model = torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.zeros_(model.weight)
    ema = EMA(model, decay=0.5)
    for value in (1.0, 2.0, 4.0):
        model.weight.data.fill_(value)
        ema.update(model)
    # the warm-up's decays (1 + n) / (10 + n), all under 0.5 here: 2/11, 3/12, 4/13
    first = 9 / 11
    second = 0.25 * first + 0.75 * 2
    assert ema.model.weight.item() == pytest.approx(4 / 13 * second + 9 / 13 * 4)
    last = EMA(model, decay=0.0)
    model.weight.data.fill_(7.0)
    last.update(model)
    assert last.model.weight.item() == 7.0


@pytest.mark.parametrize("objective", ["v", "flow"])
def test_resume_matches_an_uninterrupted_run(tiny_flowers, workdir, objective):
    run_diffusion(tiny_flowers, "--epochs", "2", "--seed", "5", "--objective", objective)
    straight = torch.load("models/last_diffusion.pth", weights_only=True)["state"]["history"]
    run_diffusion(tiny_flowers, "--epochs", "1", "--seed", "5", "--objective", objective)
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


def test_a_network_that_learned_nothing_is_told(tiny_flowers, workdir, capsys):
    # lr 1e-12: the zero-initialised head barely moves, so the network predicts zeros throughout -- as one thrown
    # off by too high a learning rate, whose loss stays finite, predicts next to nothing.
    fast = ["--steps", "1", "--film-steps", "1"]
    run_diffusion(tiny_flowers, "--lr", "1e-12", "--warmup", "0", *fast)
    captured = capsys.readouterr()
    assert "warning    the best validation loss" in captured.out and "too high an --lr" in captured.out
    assert captured.err.startswith("warning: the best validation loss")   # the terminal hears it: stdout is no tty
    run_diffusion(tiny_flowers, "--lr", "1e-12", *fast)   # still in its 50 warm-up steps: too early to say
    assert "warning" not in capsys.readouterr().out


def test_the_best_blind_prediction_is_found_exactly():
    # Targets T_i with per-image weights w_i: the best single prediction is the weighted mean image, sum w T / sum w.
    targets, weights = torch.randn(6, 2, 4, 4) + 3, torch.rand(6) + 0.5
    net = types.SimpleNamespace(channels=2, image_size=4, num_classes=0, null_labels=None)
    def loss_fn(model, x, labels, epoch):
        loss = (weights.view(-1, 1, 1, 1) * (model(x) - targets).square()).mean()
        return loss, loss
    best = (weights.view(-1, 1, 1, 1) * targets).sum(0) / weights.sum()
    exact = loss_fn(lambda x: best.expand_as(x), targets, None, 0)[0]
    images, labels = torch.zeros(6, 2, 4, 4, dtype=torch.uint8), torch.zeros(6, dtype=torch.long)
    assert diffusion.blind_loss(net, loss_fn, images, labels, "cpu") == pytest.approx(exact.item(), rel=1e-5)
