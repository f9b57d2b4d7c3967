"""The frozen model a fine-tune learns from (diffusion.py --init): called like its network, and asked once, its own
sampling trajectories, which objectives.py's Distill learns to jump along.
"""
import torch

from utils.errors import UserError
from utils.sampling import driver
from utils.sampling.samplers import SAMPLERS, per_sample_noise, sample_generators
from utils.sampling.spaces import make_space
from utils.seeds import stable_seed


class Teacher:
    """`net`, a trained model with its `config`; `labels`: the training images' classes (None: unconditional),
    which the trajectories draw theirs from, a `p_uncond` share of them "no class"; `guidance`: the classifier-free
    guidance its samples follow (objectives.py's Guidance), as its sampler would apply it; `most`: how many
    trajectories at most (diffusion.py --trajectories)."""

    def __init__(self, net, config, labels, guidance, p_uncond, seed, device, most=1024):
        self.net, self.config, self.labels, self.guidance = net, config, labels, guidance
        self.p_uncond, self.seed, self.device, self.most = p_uncond, seed, device, most
        self.pools = {}

    def __call__(self, *inputs):
        return self.net(*inputs)

    def trajectories(self, times, held_out=False):
        """(states, labels): n trajectories of the teacher's own sampler from fresh noise, the state at each of
        `times` (n x len(times) x C x H x W; time 0: the sample), and the labels they were drawn for. One
        trajectory per training image, at most `most`; held out: an eighth as many others, for validation. Drawn once
        (the first call), from seeded noise: the same after a --resume and in every torchrun process."""
        if held_out not in self.pools:
            n = min(self.most, len(self.labels) if self.labels is not None else self.most)
            count, first = (max(1, n // 8), n) if held_out else (n, 0)
            self.pools[held_out] = self.draw(times, count, first)
        return self.pools[held_out]

    @torch.no_grad()
    def draw(self, times, count, first):
        labels = self.pool_labels(count, first)
        path, space = driver.make_path(self.config), make_space(self.config, self.device)
        options = driver.resolved(self.config)
        states = []
        for start in range(0, count, 64):
            end = min(count, start + 64)
            x = per_sample_noise(sample_generators(self.seed, first + start, end - start), space.shape).to(self.device)
            chunk = None if labels is None else labels[start:end]
            denoise = driver.guided_denoiser(self.net, path, self.config["objective"], chunk, self.guidance.weight,
                                             space.clip, self.guidance.max_noise)
            seen = {}
            final = SAMPLERS[options.sampler](denoise, x, path, options.steps,
                                              trace=lambda t, x_t, x0: seen.setdefault(round(float(t), 6), x_t))
            missing = [t for t in times[:-1] if round(t, 6) not in seen]
            if missing or times[-1] != 0:
                raise UserError(f"the teacher's {options.steps} {options.sampler} steps never pass t = {missing}: "
                                "distil a flow model whose sampler takes a multiple of 4 steps")
            states.append(torch.stack([seen[round(t, 6)] for t in times[:-1]] + [final], dim=1))
        return torch.cat(states), labels

    def pool_labels(self, count, first):
        """The trajectories' labels: training labels drawn at random, a p_uncond share replaced by "no class"."""
        if self.labels is None:
            return None
        generator = torch.Generator().manual_seed(stable_seed(self.seed, first))
        labels = self.labels[torch.randint(len(self.labels), (count,), generator=generator)].to(self.device)
        drop = (torch.rand(count, generator=generator) < self.p_uncond).to(self.device)
        drop = drop.view(-1, *[1] * (labels.dim() - 1))
        return torch.where(drop, self.net.null_labels(count, self.device), labels)
