"""What the diffusion network predicts: each objective is one small part with the same three answers.

    target(x0, eps, ab)          the regression target of the loss, for clean images x0, noise eps, alpha_bar ab
    eps_and_x0(output, x_t, ab)  the network's output turned into (noise, clean image): what samplers need
    snr_weight(snr, gamma)       min-SNR-gamma weighting (Hang et al. 2023) expressed for this target

A new objective is one more class registered in OBJECTIVES; the loss, the samplers and guidance take it as is.
"""


class Eps:
    """The DDPM paper's (Ho et al. 2020): predict the noise."""

    def target(self, x0, eps, ab):
        return eps

    def eps_and_x0(self, output, x_t, ab):
        return output, (x_t - (1 - ab).sqrt() * output) / ab.sqrt()

    def snr_weight(self, snr, gamma):
        return snr.clamp(max=gamma) / snr


class V:
    """v = sqrt(ab) eps - sqrt(1 - ab) x0 (Salimans & Ho 2022): well scaled at every noise level."""

    def target(self, x0, eps, ab):
        return ab.sqrt() * eps - (1 - ab).sqrt() * x0

    def eps_and_x0(self, output, x_t, ab):
        return ab.sqrt() * output + (1 - ab).sqrt() * x_t, ab.sqrt() * x_t - (1 - ab).sqrt() * output

    def snr_weight(self, snr, gamma):
        return snr.clamp(max=gamma) / (snr + 1)


class X0:
    """Predict the clean image itself."""

    def target(self, x0, eps, ab):
        return x0

    def eps_and_x0(self, output, x_t, ab):
        return (x_t - ab.sqrt() * output) / (1 - ab).sqrt(), output

    def snr_weight(self, snr, gamma):
        return snr.clamp(max=gamma)


OBJECTIVES = {"eps": Eps(), "v": V(), "x0": X0()}
