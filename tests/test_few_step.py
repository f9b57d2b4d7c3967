"""Models that jump (objectives.py's Shortcut, samplers.py's jump): the loss, the update and trained-in guidance,
checked against closed forms; a short fine-tune, resumed and under torchrun."""
import contextlib
import io
import shutil

import pytest
import torch
from torch import nn

import diffusion
import random_generation
from utils.errors import UserError
from test_distributed import failure, torchrun
from utils.generators import SamplingOptions
from utils.sampling.driver import guided_denoiser, resolved, sample
from utils.sampling.objectives import OBJECTIVES, Guidance, guided
from utils.sampling.paths import Straight
from utils.sampling.samplers import SAMPLERS, per_sample_noise, sample_generators
from utils.sampling.teacher import Teacher

SHORTCUT, DISTILL, PATH = OBJECTIVES["shortcut"], OBJECTIVES["distill"], Straight("uniform")


class GaussianOracle(nn.Module):
    """The exact average velocity of the straight path's flow when every pixel of the data is N(mu, sigma^2): the
    flow keeps z = (x - m(t)) / S(t), m(t) = (1 - t) mu, S(t)^2 = (1 - t)^2 sigma^2 + t^2, so the step from t to
    r lands on m(r) + S(r) z and u = (x - that) / (t - r) (the velocity itself when r = t)."""
    num_classes = 0

    def __init__(self, mu=0.7, sigma=0.3):
        super().__init__()
        self.mu, self.sigma = mu, sigma

    def m(self, t):
        return (1 - t) * self.mu

    def S(self, t):
        return ((1 - t) ** 2 * self.sigma ** 2 + t ** 2).sqrt()

    def velocity(self, x, t):
        dS = ((t - 1) * self.sigma ** 2 + t) / self.S(t)
        return -self.mu + dS * (x - self.m(t)) / self.S(t)

    def forward(self, x, t, labels=None, interval=None):
        t = (t / 1000).view(-1, 1, 1, 1)
        h = torch.zeros_like(t) if interval is None else (interval / 1000).view(-1, 1, 1, 1)
        r = t - h
        landing = self.m(r) + self.S(r) * (x - self.m(t)) / self.S(t)
        jump = (x - landing) / h.clamp(min=1e-12)
        return torch.where(h > 1e-6, jump, self.velocity(x, t))


@pytest.mark.parametrize("steps", [1, 2, 3])
def test_jumps_with_the_exact_average_velocity_land_on_the_exact_sample(steps):
    oracle, z = GaussianOracle(), torch.randn(5, 1, 2, 2, generator=torch.Generator().manual_seed(0))
    denoise = guided_denoiser(oracle, PATH, "shortcut", clip=None)
    x = SAMPLERS["jump"](denoise, z.clone(), PATH, steps)
    assert torch.allclose(x, oracle.mu + oracle.sigma * z, atol=1e-5)        # the data's quantile of the noise's


def test_a_jump_the_wrong_way_misses():
    """The update is x_r = x_t - (t - r) u; going with +u instead lands far off (what the test above would catch)."""
    oracle, z = GaussianOracle(), torch.randn(5, 1, 2, 2, generator=torch.Generator().manual_seed(0))
    u = oracle(z, torch.full((5,), 1000.0), None, torch.full((5,), 1000.0))
    assert torch.allclose(z - u, oracle.mu + oracle.sigma * z, atol=1e-5)
    assert (z + u - (oracle.mu + oracle.sigma * z)).abs().mean() > 0.5


def test_the_jump_sampler_is_ddim_on_a_model_of_instantaneous_velocities():
    model = diffusion.Diffuser(8, 3, base=8, mults=(1, 2)).eval()
    torch.nn.init.normal_(model.head[-1].weight, std=0.1)
    denoise, z = guided_denoiser(model, PATH, "flow"), torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(SAMPLERS["jump"](denoise, z, PATH, 3), SAMPLERS["ddim"](denoise, z, PATH, 3), atol=1e-6)


def test_the_exact_average_velocity_is_the_fixed_point_of_the_loss():
    """With the exact flow as the network and the teacher, every target is the network's own answer: two exact
    half jumps make the exact jump; Heun's step over the shortest jump is exact up to its third-order error."""
    oracle = GaussianOracle()
    shortest = 0.5 ** SHORTCUT.levels
    h, t = torch.tensor([0.0, shortest, 0.25, 0.5, 1.0]), torch.tensor([0.3, 0.5, 0.75, 0.5, 1.0])
    x_t = torch.randn(5, 1, 2, 2, generator=torch.Generator().manual_seed(2)) * t.view(-1, 1, 1, 1)
    target = SHORTCUT.jump_target(oracle, oracle, x_t, t, h, None, None, PATH, Guidance())
    exact = oracle(x_t, t * 1000, None, h * 1000)
    assert torch.allclose(target[[0, 2, 3, 4]], exact[[0, 2, 3, 4]], atol=1e-5)
    assert torch.allclose(target[1], exact[1], atol=3e-3)
    assert not torch.allclose(oracle(x_t, t * 1000)[1], exact[1], atol=3e-3)   # Euler's step: the velocity at t
    wrong_way = oracle(x_t + 0.5 * exact, (t - 0.5) * 1000, None, torch.full((5,), 500.0))   # a half jump with +u
    assert not torch.allclose((exact + wrong_way)[3] / 2, exact[3], atol=1e-2)


class Linear(nn.Module):
    """u = A x + b t + c h (+ 0.25 without a class) per pixel, t and h in the network's units."""
    num_classes = 2

    def __init__(self, A=0.5, b=2e-4, c=-3e-4):
        super().__init__()
        self.A, self.b, self.c = A, b, c

    def forward(self, x, t, labels=None, interval=None):
        shift = 0.25 if labels is None else 0.25 * (labels == self.num_classes).float().view(-1, 1, 1, 1)
        h = torch.zeros_like(t) if interval is None else interval
        return self.A * x + (self.b * t + self.c * h).view(-1, 1, 1, 1) + shift

    def null_labels(self, n, device):
        return torch.full((n,), self.num_classes, device=device, dtype=torch.long)


def test_the_loss_on_known_tensors(monkeypatch):
    """One image of each kind, worked by hand: h = 0 (the teacher's guided velocity), the shortest jump (Heun's step
    on it) and a long jump (the network's two half jumps)."""
    student, teacher, w = Linear(), Linear(A=-0.3, b=1e-4, c=0.0), 2.0
    x0, eps = torch.full((3, 1, 1, 1), 0.5), torch.tensor([1.0, -1.0, 0.3]).view(3, 1, 1, 1)
    shortest = 0.5 ** SHORTCUT.levels
    h, t, labels = torch.tensor([0.0, shortest, 0.5]), torch.tensor([0.3, 0.5, 1.0]), torch.tensor([0, 1, 0])
    monkeypatch.setattr(SHORTCUT, "step_lengths", lambda times: (h, t))
    x_t = (1 - t.view(-1, 1, 1, 1)) * x0 + t.view(-1, 1, 1, 1) * eps

    def v(x, time):       # the teacher's guided velocity: conditional shift 0, unconditional 0.25
        return teacher.A * x + teacher.b * 1000 * time + (1 - w) * 0.25

    def u(x, time, length):
        return student.A * x + student.b * 1000 * time + student.c * 1000 * length

    heun = (v(x_t[1], 0.5) + v(x_t[1] - shortest * v(x_t[1], 0.5), 0.5 - shortest)) / 2
    half = u(x_t[2], 1.0, 0.25)
    halves = (half + u(x_t[2] - 0.25 * half, 0.75, 0.25)) / 2
    target = torch.stack([v(x_t[0], 0.3), heun, halves])
    expected = (torch.stack([u(x_t[i], t[i], h[i]) for i in range(3)]) - target).square().flatten()
    got = SHORTCUT.squared_error(student, x0, eps, torch.rand(3), labels, PATH, Guidance(w), teacher)
    assert torch.allclose(got, expected, atol=1e-6) and len(set(got.tolist())) == 3


def test_a_batch_without_jumps_of_some_kind_trains(monkeypatch):
    """Every image at h = 0: the other groups are empty, which a network on 2x2 pixel blocks cannot take."""
    model = diffusion.Diffuser(8, 3, num_classes=2, base=8, mults=(1, 2), patch=2, interval=True)
    monkeypatch.setattr(SHORTCUT, "step_lengths", lambda times: (torch.zeros(2), times))
    x0, eps, labels = torch.rand(2, 3, 8, 8) * 2 - 1, torch.randn(2, 3, 8, 8), torch.tensor([0, 1])
    loss = SHORTCUT.squared_error(model, x0, eps, torch.tensor([0.3, 0.7]), labels, PATH, Guidance(2.0), model)
    assert loss.shape == (2,) and torch.isfinite(loss).all()


class Pool:
    """A teacher whose trajectories are given: states at Distill's times and labels."""
    def __init__(self, states, labels):
        self.states, self.labels, self.asked = states, labels, []

    def trajectories(self, times, held_out=False):
        self.asked.append((tuple(times), held_out))
        return self.states, self.labels


def test_the_distilling_loss_on_known_tensors(monkeypatch):
    """Each jump's target is the teacher's own move between two of its states, as an average velocity: (x_from -
    x_to) / (t_from - t_to), at the sampler's grid times; the network sees the start state, its time and the jump."""
    student = Linear(A=0.2, b=1e-4, c=3e-4)
    states = torch.arange(2 * 5, dtype=torch.float).view(2, 5, 1, 1, 1) ** 1.5 / 10   # 2 trajectories, 5 times
    teacher = Pool(states, torch.tensor([0, 1]))
    monkeypatch.setattr(torch, "multinomial", lambda weights, n, replacement: torch.tensor([0, 2, 3]))
    monkeypatch.setattr(torch, "randint", lambda high, size, **kw: torch.tensor([1, 0, 1]))
    got = DISTILL.squared_error(student, torch.zeros(3, 1, 1, 1), None, None, None, PATH, Guidance(), teacher)
    expected = []
    for row, (i, j) in zip([1, 0, 1], [(0, 4), (2, 4), (0, 1)]):
        t_i, t_j = DISTILL.times[i], DISTILL.times[j]
        target = (states[row, i] - states[row, j]) / (t_i - t_j)
        u = student.A * states[row, i] + student.b * 1000 * t_i + student.c * 1000 * (t_i - t_j)
        expected.append((u - target).square().item())
    assert torch.allclose(got, torch.tensor(expected), atol=1e-6) and len(set(got.tolist())) == 3
    assert teacher.asked == [(DISTILL.times, False)]


def test_the_distilling_loss_validates_on_held_out_trajectories():
    model = diffusion.Diffuser(8, 3, num_classes=2, base=8, mults=(1, 2), interval=True).eval()
    teacher = Pool(torch.randn(3, 5, 3, 8, 8), torch.tensor([0, 1, 2]))
    DISTILL.squared_error(model, torch.zeros(4, 3, 8, 8), None, None, None, PATH, Guidance(), teacher)
    assert teacher.asked == [(DISTILL.times, True)]


def test_the_teachers_trajectories_pass_the_sampler_grid_and_end_on_its_samples(flow_model):
    """The pool's states are the teacher's own DPM-Solver++ states at 1, 0.75, 0.5, 0.25 and its samples (the same
    as driver.sample draws from the same seed), one per training label up to `most`, drawn once, the same on a
    second Teacher (a resumed run)."""
    net, ckpt = diffusion.load(checkpoint=flow_model)
    labels = torch.tensor([0, 1, 0, 1, 1, 0, 0, 1, 1])
    make = lambda: Teacher(net, ckpt["config"], labels, Guidance(1.5), 0.0, 3, "cpu", most=8)   # noqa: E731
    teacher = make()
    states, pool_labels = teacher.trajectories(DISTILL.times)
    assert states.shape == (8, 5, 3, 24, 24) and teacher.trajectories(DISTILL.times)[0] is states
    samples = sample(net, ckpt["config"], 8, pool_labels, SamplingOptions(guidance=1.5, precision="fp32"), seed=3)
    assert torch.allclose((states[:, -1] + 1) / 2, samples, atol=1e-5)
    assert torch.equal(states[:, 0], per_sample_noise(sample_generators(3, 0, 8), (3, 24, 24)))
    assert torch.equal(make().trajectories(DISTILL.times)[0], states)
    held_out = teacher.trajectories(DISTILL.times, held_out=True)[0]
    assert len(held_out) == 1 and not torch.equal(held_out[0, 0], states[0, 0])


def test_distilling_needs_a_teacher(workdir, tiny_flowers):
    with pytest.raises(UserError, match="--init"):
        diffusion.main(["--data", str(tiny_flowers), "--objective", "distill", "--epochs", "1"])


@pytest.mark.parametrize("objective", ["shortcut", "distill"])
def test_min_snr_is_refused_where_a_jump_spans_several_noise_levels(objective):
    # the weight would be read at a time the jump never starts from: a random rescaling of each image's loss
    with pytest.raises(UserError, match="--min-snr"):
        diffusion.get_args(["--objective", objective, "--min-snr", "5", "--epochs", "1"])
    assert diffusion.get_args(["--objective", "flow", "--min-snr", "5"]).min_snr == 5


def test_guidance_identities():
    net, x, time = Linear(), torch.randn(3, 1, 2, 2), torch.full((3,), 500.0)
    labels = torch.tensor([0, 1, 2])                  # 2 = "no class"
    conditional, unconditional = net(x, time, labels), net(x, time, net.null_labels(3, "cpu"))
    assert torch.allclose(guided(net, x, time, labels, 1.0, net), conditional)
    assert torch.allclose(guided(net, x, time, labels, 0.0, net), unconditional)
    assert torch.allclose(guided(net, x, time, labels, 3.0, net), unconditional + 3 * (conditional - unconditional))
    assert torch.allclose(guided(net, x, time, labels, 3.0, net)[2], unconditional[2])   # no class: unguided
    v, rows = torch.randn(3, 1, 2, 2), torch.arange(3)
    for w in (0.0, 1.0, 2.5):   # from scratch: the image's velocity, guided by the network's own unconditional one
        got = SHORTCUT.guided_sample(net, x, time / 1000, v, labels, rows, PATH, Guidance(w))
        assert torch.allclose(got[:2], w * v[:2] + (1 - w) * unconditional[:2]) and torch.equal(got[2], v[2])


def test_trained_in_guidance_stops_where_the_sampler_stops_guiding():
    """max_noise 1 on the straight path: guided where s/a = t / (1 - t) <= 1, that is t <= 0.5."""
    weights = Guidance(3.0, max_noise=1.0).at(torch.tensor([0.1, 0.5, 0.6, 1.0]), PATH).flatten()
    assert weights.tolist() == [3.0, 3.0, 1.0, 1.0]
    assert Guidance(3.0).at(torch.tensor([0.2, 1.0]), PATH).flatten().tolist() == [3.0, 3.0]


def test_a_jumping_model_samples_in_two_guided_steps_by_default():
    options = resolved(dict(objective="shortcut", image_size=24, channels=3))
    assert (options.sampler, options.steps, options.guidance) == ("jump", 2, 1.0)
    assert resolved(dict(objective="flow", image_size=24, channels=3)).steps == 20


def test_a_fresh_interval_embedding_leaves_a_flow_model_as_it_was(tmp_path):
    flow = diffusion.Diffuser(8, 3, num_classes=2, base=8, mults=(1, 2))
    torch.nn.init.normal_(flow.head[-1].weight, std=0.1)
    jumps = diffusion.Diffuser(8, 3, num_classes=2, base=8, mults=(1, 2), interval=True)
    missing, _ = jumps.load_state_dict(flow.state_dict(), strict=False)
    assert missing and all(key.startswith("interval_mlp.") for key in missing)
    x, t, labels = torch.randn(2, 3, 8, 8), torch.tensor([300.0, 900.0]), torch.tensor([0, 1])
    assert torch.allclose(jumps(x, t, labels, torch.tensor([300.0, 500.0])), flow(x, t, labels))


FINE_TUNE = ["--objective", "shortcut", "--trajectories", "8", "--minutes", "0", "--steps", "1", "--film-steps", "2",
             "--preview-every", "0", "--threads", "1", "--seed", "4"]


@pytest.fixture(scope="module")
def flow_model(tiny_flowers, tmp_path_factory):
    folder = tmp_path_factory.mktemp("flow")
    with contextlib.chdir(folder), contextlib.redirect_stdout(io.StringIO()):
        diffusion.main(["--data", str(tiny_flowers), "--minutes", "0", "--epochs", "1", "--base", "8", "--mults", "1",
                        "2", "--steps", "2", "--film-steps", "2", "--preview-every", "0", "--threads", "1",
                        "--checkpoint", str(folder / "Best_flow.pth")])
    return folder / "Best_flow.pth"


@pytest.mark.parametrize("objective", ["shortcut", "distill"])
def test_a_fine_tune_resumes_exactly(flow_model, tiny_flowers, workdir, objective):
    flags = ["--data", str(tiny_flowers), "--init", str(flow_model), *FINE_TUNE, "--objective", objective]
    diffusion.main(flags + ["--epochs", "2"])
    straight = torch.load("models/last_diffusion.pth", weights_only=True)["state"]
    diffusion.main(flags + ["--epochs", "1"])
    diffusion.main(flags + ["--epochs", "2", "--resume"])
    resumed = torch.load("models/last_diffusion.pth", weights_only=True)["state"]
    assert [h["train_loss"] for h in resumed["history"]] == [h["train_loss"] for h in straight["history"]]
    assert all(torch.equal(resumed["model"][k], straight["model"][k]) for k in straight["model"])
    saved = torch.load("models/Best_diffusion.pth", weights_only=True)
    assert saved["config"]["init"] == str(flow_model) and saved["config"]["base"] == 8
    assert any(k.startswith("interval_mlp.") for k in saved["model"])


def test_a_fine_tune_refuses_other_data_or_network_flags_than_its_teachers(flow_model, tiny_flowers, workdir):
    # No --data and no ./flowers: the synthetic set, with the same class names but not the teacher's images
    with pytest.raises(UserError, match=f"pass --data {tiny_flowers}"):
        diffusion.main(["--init", str(flow_model), *FINE_TUNE, "--epochs", "1"])
    two_classes = workdir / "two"
    for name in sorted(p.name for p in tiny_flowers.iterdir())[:2]:
        shutil.copytree(tiny_flowers / name, two_classes / name)
    with pytest.raises(UserError, match=r"\(2 classes\)"):
        diffusion.main(["--data", str(two_classes), "--init", str(flow_model), *FINE_TUNE, "--epochs", "1"])
    for flag, value in (("--image-size", "32"), ("--base", "16"), ("--mults", "1")):   # the network is the teacher's
        with pytest.raises(UserError, match=f"{flag} .* contradicts --init"):
            diffusion.main(["--data", str(tiny_flowers), "--init", str(flow_model), *FINE_TUNE, "--epochs", "1",
                            flag, value])
    assert not (workdir / "models").exists()   # refused before anything was written
    args = diffusion.get_args(["--init", str(flow_model), "--base", "8", "--mults", "1", "2", "--image-size", "24"])
    assert (args.base, list(args.mults), args.image_size) == (8, [1, 2], 24)   # the same values typed: no contradiction


def test_a_fine_tune_under_torchrun(flow_model, tiny_flowers, workdir):
    """diffusion.py under torchrun, as a distillation: its teacher draws the trajectories in every process, and the
    files (the EMA's weights too) are written once, without DDP's "module." prefix."""
    result = torchrun("diffusion.py", "--data", str(tiny_flowers), "--init", str(flow_model), *FINE_TUNE[:-4],
                      "--epochs", "1", "--batch-size", "8", "--objective", "distill", "--ema", "0.9", cwd=workdir)
    assert result.returncode == 0, failure(result)
    assert result.stdout.count("model      Diffuser") == 1 and "batch 16 (2 processes x 8)" in result.stdout
    assert "objective distill" in result.stdout
    assert result.stdout.count("teacher    8 trajectories of") == 1   # the wait is logged, once
    assert sorted(p.name for p in (workdir / "models").iterdir()) == ["Best_diffusion.pth", "last_diffusion.pth"]
    saved = torch.load(workdir / "models/Best_diffusion.pth", weights_only=True)
    assert saved["ema"] and not any(k.startswith(("module.", "model.")) for k in [*saved["model"], *saved["ema"]])
    assert (workdir / "vis/denoise_process_diffusion.png").exists()
    assert (workdir / "vis/random_images_diffusion.png").exists()


def test_the_scripts_sample_a_distilled_model_in_its_own_jumps(flow_model, tiny_flowers, workdir):
    diffusion.main(["--data", str(tiny_flowers), "--init", str(flow_model), *FINE_TUNE, "--objective", "distill",
                    "--epochs", "1"])
    config = torch.load("models/Best_diffusion.pth", weights_only=True)["config"]
    options = resolved(config)
    assert (config["objective"], options.sampler, options.steps, options.guidance) == ("distill", "jump", 2, 1.0)
    # (the fine-tune itself drew its grid of samples as random_generation.py does)
    random_generation.main(["--model", "diffusion", "--data", str(tiny_flowers), "--threads", "1", "--interpolate"])
    assert (workdir / "vis/interpolation_diffusion.png").exists()
