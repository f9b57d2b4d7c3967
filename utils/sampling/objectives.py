"""What the diffusion network predicts: each objective is one small part with the same answers.

    path                         the noising path it trains on (paths.py): "discrete" (DDPM) or "straight" (flow)
    target(x0, eps, a, s)        the regression target of the loss, for x_t = a x0 + s eps
    eps_and_x0(output, x_t, a, s)  the network's output turned into (noise, clean image): what samplers need
    snr_weight(snr, gamma)       min-SNR-gamma weighting (Hang et al. 2023; snr = a^2 / s^2) in this target's units;
                                 None where an image's loss is not at one noise level (a jump spans several)
    squared_error(model, x0, eps, t, labels, path, guidance, teacher)  the loss of each image (Regression's: the
                                 output's squared error from the target; a teacher is Shortcut's)
    interval                     whether the network also sees the length of the step (Diffuser's `interval`)
    guidance_trained_in          whether it learns to follow guided velocities (diffusion.py --train-guidance)
    sampling                     the sampling defaults it brings (a few-step model's), over its space's
    recipe                       the training settings it brings (its learning rate), over its space's
    needs_teacher                whether it only fine-tunes a trained model (diffusion.py --init), learning from it

A new objective is one more class registered in OBJECTIVES; the loss, the samplers and guidance take it as is.
"""
import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Guidance:
    """Classifier-free guidance, as the samplers apply it (driver.guided_denoiser) and Shortcut trains it in: `weight`
    at the times whose noise-to-signal ratio s/a is at most `max_noise`, none (weight 1) at the noisier ones; weight
    0 (unconditional) at every time."""
    weight: float = 1.0
    max_noise: float = math.inf

    def at(self, time, path):
        """The weight at each of these times, shaped to broadcast over images."""
        a, s = (c.reshape(-1, 1, 1, 1) for c in path.coefficients(time))
        # (inf * 0 at pure noise would be nan)
        guided = (s <= self.max_noise * a) | math.isinf(self.max_noise) | (self.weight == 0)
        return torch.where(guided, self.weight, 1.0)


class Regression:
    """An objective whose loss regresses the network's output on target() at one random time of the path."""
    interval = False
    needs_teacher = False
    guidance_trained_in = False
    sampling = {}
    recipe = {}   # training settings of its own, over the space's (diffusion.py's flags left at None)

    def squared_error(self, model, x0, eps, t, labels, path, guidance=Guidance(), teacher=None):
        a, s = path.coefficients(t)
        output = model(a * x0 + s * eps, path.network_time(t), labels)
        return (output - self.target(x0, eps, a, s)).square().mean(dim=(1, 2, 3))


class Eps(Regression):
    """The DDPM paper's (Ho et al. 2020): predict the noise."""
    path = "discrete"

    def target(self, x0, eps, a, s):
        return eps

    def eps_and_x0(self, output, x_t, a, s):
        return output, (x_t - s * output) / a

    def snr_weight(self, snr, gamma):
        return snr.clamp(max=gamma) / snr


class V(Regression):
    """v = a eps - s x0 (Salimans & Ho 2022; a^2 + s^2 = 1): well scaled at every noise level."""
    path = "discrete"

    def target(self, x0, eps, a, s):
        return a * eps - s * x0

    def eps_and_x0(self, output, x_t, a, s):
        return a * output + s * x_t, a * x_t - s * output

    def snr_weight(self, snr, gamma):
        return snr.clamp(max=gamma) / (snr + 1)


class X0(Regression):
    """Predict the clean image itself."""
    path = "discrete"

    def target(self, x0, eps, a, s):
        return x0

    def eps_and_x0(self, output, x_t, a, s):
        return (x_t - a * output) / s, output

    def snr_weight(self, snr, gamma):
        return snr.clamp(max=gamma)


class Flow(Regression):
    """Flow matching (Lipman et al. 2023; rectified flow, Liu et al. 2022): on the straight path
    x_t = (1 - t) x0 + t eps, predict the velocity dx_t/dt = eps - x0."""
    path = "straight"

    def target(self, x0, eps, a, s):
        return eps - x0

    def eps_and_x0(self, output, x_t, a, s):
        return (x_t + a * output) / (a + s), (x_t - s * output) / (a + s)

    def snr_weight(self, snr, gamma):
        # The velocity's error is the clean image's divided by t, and t = 1 / (1 + sqrt(snr)) on this path.
        return snr.clamp(max=gamma) / (1 + snr.sqrt()) ** 2


class Shortcut(Flow):
    """Shortcut models (Frans et al. 2025): the network also sees a step length h and predicts the average velocity
    u(x_t, t, h) = (x_t - x_{t-h}) / h of the straight path's flow over the step, so that one call takes the whole
    step, x_{t-h} = x_t - h u (samplers.py's jump). At h = 0 it is flow matching's velocity: every sampler works.

    Two jumps of h/2 make one of h: the target of a jump is the mean of the network's own two half jumps (held
    fixed), and the shortest jumps follow the guided velocity with one Heun step, so the long jumps are built from
    short ones level by level. The jumps start at multiples of their length (the 1-, 2-, 4-... step samplers'
    grids). Classifier-free guidance is trained in, so samples need no second, unconditional pass. Fine-tuning a
    flow model (diffusion.py --init), that model is the teacher whose guided velocity is followed; from scratch it
    is the training image's eps - x0 at h = 0 and the network's own velocity below the shortest jump."""
    interval = True
    guidance_trained_in = True
    levels = 4           # jump lengths 1, 1/2, ..., 1/2^levels
    flow_share = 0.25    # the share of training images at h = 0: flow matching
    sampling = dict(sampler="jump", steps=2, guidance=1.0)   # guidance 1: the trained-in guidance, nothing more
    # a fine-tune of a trained flow model: at the flow's 3e-3 its 1-, 2- and 4-step FD were 11.5 / 7.2 / 5.4, at
    # 1e-3 10.1 / 6.2 / 5.0 (4 epochs; bench/few_step.py, docs/few_step.md)
    recipe = dict(lr=1e-3, clip_grad=0.0)   # (its fine-tunes were measured with unclipped gradients)
    snr_weight = None   # a jump spans the noise levels from t to t - h: no one SNR to weigh it by

    def squared_error(self, model, x0, eps, t, labels, path, guidance=Guidance(), teacher=None):
        h, t = self.step_lengths(t)
        x_t = (1 - t.view(-1, 1, 1, 1)) * x0 + t.view(-1, 1, 1, 1) * eps
        target = self.jump_target(model, teacher, x_t, t, h, eps - x0, labels, path, guidance)
        output = model(x_t, path.network_time(t), labels, path.network_time(h))
        return (output - target).square().mean(dim=(1, 2, 3))

    def step_lengths(self, t):
        """(h, t): for flow_share of the images h = 0 at the given time; for the others a level's h = 2^-k (every
        level equally often) and a time among its multiples h, 2h, ..., 1."""
        level = torch.randint(0, self.levels + 1, t.shape, device=t.device)
        h = 0.5 ** level.float()
        start = (torch.rand(t.shape, device=t.device) * 2.0 ** level).floor().add(1) * h
        flow = torch.rand(t.shape, device=t.device) < self.flow_share
        return torch.where(flow, torch.zeros_like(h), h), torch.where(flow, t, start)

    @torch.no_grad()
    def jump_target(self, model, teacher, x_t, t, h, sample_velocity, labels, path, guidance):
        def velocity(x, time, rows):   # the guided velocity followed: the teacher's, or the network's own at h = 0
            lab = None if labels is None else labels[rows]
            return guided(teacher or model, x, path.network_time(time), lab, guidance.at(time, path), model)

        def half_jump(x, time, length, rows):
            lab = None if labels is None else labels[rows]
            return model(x, path.network_time(time), lab, path.network_time(length)).float()

        def flow_rule(x, time, length, rows):   # h = 0: the velocity itself
            if teacher is not None:
                return velocity(x, time, rows)
            return self.guided_sample(model, x, time, sample_velocity[rows], labels, rows, path, guidance)

        def heun_rule(x, time, length, rows):   # the shortest jump: Heun's step along the followed velocity
            first = velocity(x, time, rows)
            return (first + velocity(x - length.view(-1, 1, 1, 1) * first, time - length, rows)) / 2

        def halves_rule(x, time, length, rows):   # the others: two half jumps of the network's own
            half = length / 2
            first = half_jump(x, time, half, rows)
            return (first + half_jump(x - half.view(-1, 1, 1, 1) * first, time - half, half, rows)) / 2

        target = torch.empty_like(x_t)
        flow, shortest = h == 0, h == 0.5 ** self.levels
        for chosen, rule in ((flow, flow_rule), (shortest, heun_rule), (~flow & ~shortest, halves_rule)):
            rows = chosen.nonzero().flatten()
            if len(rows):   # (an empty batch would break the network's pixel unshuffle)
                target[rows] = rule(x_t[rows], t[rows], h[rows], rows)
        return target

    def guided_sample(self, model, x_t, t, velocity, labels, rows, path, guidance):
        """From scratch, at h = 0: the image's eps - x0, guided by the network's own unconditional velocity for
        images with a class (the unconditional ones, label dropped, keep it as it is)."""
        if labels is None or guidance.weight == 1:
            return velocity
        lab, null = labels[rows], model.null_labels(len(rows), x_t.device)
        unconditional = model(x_t, path.network_time(t), null).float()
        conditioned = ~(lab == null).view(len(rows), -1).all(dim=1).view(-1, 1, 1, 1)
        guided_velocity = unconditional + guidance.at(t, path) * (velocity - unconditional)
        return torch.where(conditioned, guided_velocity, velocity)


class Distill(Shortcut):
    """Solver distillation: the jumps learn the teacher's own sampling trajectories (teacher.py's Teacher), drawn
    once from fresh noise with its default sampler and guidance: from the state at one time of the 1-, 2- and
    4-step samplers' grids to the state at a later one, the whole way, so the target is the teacher's 20-step answer
    itself and no error builds up from level to level. The same network as Shortcut's (sampled by `jump`), started
    from the teacher's weights (diffusion.py --init, which it needs); the data's images only set the batch size."""
    times = (1.0, 0.75, 0.5, 0.25, 0.0)
    time_grid = torch.tensor(times)
    # (from, to) indices into times: the one jump of 1 step, the two of 2 steps, the four of 4 steps. The long jumps
    # are the hard ones: drawn 3 : 2 : 0.5 times as often, FD at 1 / 2 / 4 steps was 1.42 / 1.16 / 0.96x the
    # teacher's 20 steps, against 1.47 / 1.21 / 0.99x at 3 : 2 : 1 (12 epochs; docs/few_step.md)
    jumps = torch.tensor([(0, 4), (0, 2), (2, 4), (0, 1), (1, 2), (2, 3), (3, 4)])
    weights = torch.tensor([3.0, 2, 2, 0.5, 0.5, 0.5, 0.5])
    # batches of 64 train 1.4x the images per second of 16 on two cores (measured); lr 2e-3 suits the bigger batch
    recipe = dict(lr=2e-3, clip_grad=0.0, batch_size=64)
    needs_teacher = True

    def squared_error(self, model, x0, eps, t, labels, path, guidance=Guidance(), teacher=None):
        states, conditions = teacher.trajectories(self.times, held_out=not model.training)
        n = len(x0)
        rows = torch.randint(len(states), (n,))
        start, end = self.jumps[torch.multinomial(self.weights, n, replacement=True)].unbind(1)
        times = self.time_grid
        x_start, x_end = states[rows, start], states[rows, end]
        h = (times[start] - times[end]).to(x0.device)
        target = (x_start - x_end) / h.view(-1, 1, 1, 1)
        output = model(x_start, path.network_time(times[start].to(x0.device)),
                       None if conditions is None else conditions[rows], path.network_time(h))
        return (output.float() - target).square().mean(dim=(1, 2, 3))


def guided(net, x, time, labels, guidance, model, interval=None):
    """The classifier-free guided prediction of `net` (unconditional + guidance * (conditional - unconditional);
    guidance: a number, or one per image), in float32; labels None: the unconditional one. `model` gives the "no
    class" labels; `interval`: the step length asked of a network that jumps (none for the others)."""
    jump = [] if interval is None else [interval]
    if labels is None:
        return net(x, time, None, *jump).float()
    null = model.null_labels(len(x), x.device)
    twice = [torch.cat([v, v]) for v in (x, time, *jump)]
    both = net(twice[0], twice[1], torch.cat([labels, null]), *twice[2:]).float()
    conditional, unconditional = both.chunk(2)
    return unconditional + guidance * (conditional - unconditional)


OBJECTIVES = {"eps": Eps(), "v": V(), "x0": X0(), "flow": Flow(), "shortcut": Shortcut(), "distill": Distill()}
