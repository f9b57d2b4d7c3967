"""The diffusion model as a kind (utils/generators.py): its saved network (diffusion.py's), sampled by the driver
(utils/sampling/driver.py) and drawn by utils/sampling/diffusion_figures.py."""
from diffusion import load  # noqa: F401  (the generator interface)
from utils.generators import SamplingOptions
from utils.sampling.diffusion_figures import interpolation, sample_grid  # noqa: F401  (interpolation: the interface)
from utils.sampling.driver import balanced_labels, resolved, sample


def generate(model, config, n, labels=None, seed=0, device="cpu", options=SamplingOptions(), first=0):
    """The generator interface (utils/generators.py): sample() with the --guidance, --sampler and --steps options."""
    return sample(model, config, n, labels, options, seed, device, first=first)


def figure(model, ckpt, path, seed, device, options=SamplingOptions()):
    sample_grid(model, ckpt["config"], path, seed, device, options)


def sampling(config, options=SamplingOptions()):
    """How evaluation_samples draws (the report's sampling column): the sampler, its steps and the guidance."""
    options = resolved(config, options)
    guidance = f", guidance {options.guidance:g}" if config["conditional"] else ""
    return f"{options.sampler}, {options.steps} steps{guidance}"


def evaluation_samples(model, config, n, seed, device, label_sets=None, options=SamplingOptions()):
    """Class-balanced conditional samples (with their labels) or unconditional ones, for evaluate.py.
    A multi-label model draws the given label sets (the validation split's) in turn."""
    labels = balanced_labels(len(config["classes"]), n) if config["conditional"] else None
    if config.get("multi_label"):
        labels = label_sets[balanced_labels(len(label_sets), n)]
    return generate(model, config, n, labels, seed, device, options), labels
