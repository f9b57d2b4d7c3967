"""The frozen model a fine-tune learns from (diffusion.py --init): called like its network, and asked once, its own
sampling trajectories, which objectives.py's Distill learns to jump along.
"""
import time
from collections import defaultdict

import torch

from utils.errors import UserError
from utils.generators import SamplingOptions
from utils.sampling import driver
from utils.sampling.samplers import SAMPLERS
from utils.seeds import stable_seed

TRAJECTORIES = 1024   # at most, by default (diffusion.py --trajectories): ~40 s of the 24 px teacher on two cores


class Teacher:
    """`net`, a trained model with its `config`; `labels`: the training images' classes (None: unconditional),
    which the trajectories draw theirs from, a `p_uncond` share of them "no class"; `guidance`: the classifier-free
    guidance its samples follow (objectives.py's Guidance), as its sampler would apply it; `most`: how many
    trajectories at most (diffusion.py --trajectories)."""

    def __init__(self, net, config, labels, guidance, p_uncond, seed, device, most=TRAJECTORIES):
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
        """`count` trajectories from the noise of samples first, first + 1, ... (as driver.sample draws them): their
        states at `times` and their labels."""
        labels = self.pool_labels(count, first)
        options = SamplingOptions(guidance=self.guidance.weight, guidance_max_noise=self.guidance.max_noise)
        sampler = driver.resolved(self.config, options)
        evaluated = [round(t, 6) for t in SAMPLERS[sampler.sampler].times(driver.make_path(self.config), sampler.steps)]
        wanted = {round(t, 6): i for i, t in enumerate(times[:-1])}
        missing = [t for t in wanted if t not in evaluated]
        if missing or times[-1] != 0:
            raise UserError(f"the teacher's {sampler.steps} {sampler.sampler} steps never pass t = {missing}: "
                            "distil a flow model whose sampler takes a multiple of 4 steps")
        kept = defaultdict(list)   # index into times -> its states, a batch at a time

        def keep(t, x_t, x0):
            t = round(float(t), 6)
            if t in wanted:
                kept[wanted[t]].append(x_t)
            if t == evaluated[-1]:   # every sampler ends on its last step's clean prediction: the sample
                kept[len(times) - 1].append(x0)
        started = time.perf_counter()
        driver.sample(self.net, self.config, count, labels, options, self.seed, self.device, trace=keep, first=first)
        # The log's line for the first epoch's long wait (stdout is silent on torchrun's other processes)
        print(f"teacher    {count:,} {'held-out ' if first else ''}trajectories of {sampler.steps} {sampler.sampler} "
              f"steps, guidance {self.guidance.weight:g}, in {time.perf_counter() - started:.0f} s", flush=True)
        return torch.stack([torch.cat(kept[i]) for i in range(len(times))], dim=1), labels

    def pool_labels(self, count, first):
        """The trajectories' labels: training labels drawn at random, a p_uncond share replaced by "no class"."""
        if self.labels is None:
            return None
        generator = torch.Generator().manual_seed(stable_seed(self.seed, first))
        labels = self.labels[torch.randint(len(self.labels), (count,), generator=generator)].to(self.device)
        drop = (torch.rand(count, generator=generator) < self.p_uncond).to(self.device)
        drop = drop.view(-1, *[1] * (labels.dim() - 1))
        return torch.where(drop, self.net.null_labels(count, self.device), labels)
