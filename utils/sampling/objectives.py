"""What the diffusion network predicts: each objective is one small part with the same answers.

    path                         the noising path it trains on (paths.py): "discrete" (DDPM) or "straight" (flow)
    target(x0, eps, a, s)        the regression target of the loss, for x_t = a x0 + s eps
    eps_and_x0(output, x_t, a, s)  the network's output turned into (noise, clean image): what samplers need
    snr_weight(snr, gamma)       min-SNR-gamma weighting (Hang et al. 2023; snr = a^2 / s^2) in this target's units

A new objective is one more class registered in OBJECTIVES; the loss, the samplers and guidance take it as is.
"""


class Eps:
    """The DDPM paper's (Ho et al. 2020): predict the noise."""
    path = "discrete"

    def target(self, x0, eps, a, s):
        return eps

    def eps_and_x0(self, output, x_t, a, s):
        return output, (x_t - s * output) / a

    def snr_weight(self, snr, gamma):
        return snr.clamp(max=gamma) / snr


class V:
    """v = a eps - s x0 (Salimans & Ho 2022; a^2 + s^2 = 1): well scaled at every noise level."""
    path = "discrete"

    def target(self, x0, eps, a, s):
        return a * eps - s * x0

    def eps_and_x0(self, output, x_t, a, s):
        return a * output + s * x_t, a * x_t - s * output

    def snr_weight(self, snr, gamma):
        return snr.clamp(max=gamma) / (snr + 1)


class X0:
    """Predict the clean image itself."""
    path = "discrete"

    def target(self, x0, eps, a, s):
        return x0

    def eps_and_x0(self, output, x_t, a, s):
        return (x_t - a * output) / s, output

    def snr_weight(self, snr, gamma):
        return snr.clamp(max=gamma)


class Flow:
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


OBJECTIVES = {"eps": Eps(), "v": V(), "x0": X0(), "flow": Flow()}
