"""Evaluation metrics for generated images: pure functions on torch tensors.

Distribution metrics (Fréchet distance, KID, precision/recall) take N x D feature sets,
whatever network produced them; image metrics (PSNR, SSIM) take N x C x H x W images.
Statistics are computed in float64: covariances, kernel sums and squared distances
lose digits to cancellation in float32.
"""
import math

import torch
import torch.nn.functional as F


def _as_float64(x):
    return x.detach().to(torch.float64)


# ---------------------------------------------------------------- Fréchet distance

def _mean_and_covariance(feats):
    feats = _as_float64(feats)
    # Unbiased (N - 1) covariance, as numpy.cov in the reference FID code.
    return feats.mean(0), torch.cov(feats.T).reshape(feats.shape[1], feats.shape[1])


def _psd_sqrt(matrix):
    """Square root of a symmetric PSD matrix; round-off negatives are clamped to 0."""
    eigvals, eigvecs = torch.linalg.eigh(matrix)
    return (eigvecs * eigvals.clamp(min=0).sqrt()) @ eigvecs.T


def _trace_sqrt_product(cov_a, cov_b):
    """Tr((Ca Cb)^1/2) without scipy.

    Ca Cb is not symmetric, but it is similar to sqrt(Ca) Cb sqrt(Ca), which is symmetric PSD:
    eigh is then stable and its eigenvalues real, unlike a general sqrtm on the product.
    """
    sqrt_a = _psd_sqrt(cov_a)
    inner = sqrt_a @ cov_b @ sqrt_a
    inner = (inner + inner.T) / 2  # remove round-off asymmetry before eigh
    return torch.linalg.eigvalsh(inner).clamp(min=0).sqrt().sum()


def frechet_distance(feats_a, feats_b):
    """Fréchet distance between Gaussians fitted to two N x D feature sets (FID on Inception features).

    |mu_a - mu_b|^2 + Tr(Ca + Cb - 2 (Ca Cb)^1/2). Near 0 (round-off only) for identical sets.
    """
    mu_a, cov_a = _mean_and_covariance(feats_a)
    mu_b, cov_b = _mean_and_covariance(feats_b)
    mean_term = (mu_a - mu_b).square().sum()
    cov_term = cov_a.trace() + cov_b.trace() - 2 * _trace_sqrt_product(cov_a, cov_b)
    return (mean_term + cov_term).item()


# ---------------------------------------------------------------- Kernel inception distance

def _polynomial_kernel(x, y):
    # Binkowski et al. 2018: k(x, y) = (x.y / D + 1)^3, needs no bandwidth choice.
    return (x @ y.T / x.shape[1] + 1) ** 3


def _unbiased_mmd2(x, y):
    """Unbiased MMD^2 of two equal-size samples: the diagonals k(x_i, x_i) are left out."""
    m = x.shape[0]
    k_xx, k_yy, k_xy = _polynomial_kernel(x, x), _polynomial_kernel(y, y), _polynomial_kernel(x, y)
    within = (k_xx.sum() - k_xx.diagonal().sum() + k_yy.sum() - k_yy.diagonal().sum()) / (m * (m - 1))
    return within - 2 * k_xy.sum() / (m * m)


def kernel_inception_distance(feats_a, feats_b, subsets=100, subset_size=1000, seed=0):
    """KID: unbiased polynomial-kernel MMD^2 averaged over random subsets; returns (mean, std).

    Defaults follow torch-fidelity. Subsets are drawn without replacement within each subset and
    shrink to the smaller set's size. Unbiased, so two samples of one distribution give about 0,
    possibly slightly negative. std is over subsets (population std, as torch-fidelity reports).
    """
    a, b = _as_float64(feats_a), _as_float64(feats_b)
    size = min(subset_size, a.shape[0], b.shape[0])
    if size < 2:
        raise ValueError("KID needs at least 2 samples in each set")
    rng = torch.Generator().manual_seed(seed)  # local: never disturbs the caller's global RNG
    scores = torch.stack([
        _unbiased_mmd2(a[torch.randperm(a.shape[0], generator=rng)[:size]],
                       b[torch.randperm(b.shape[0], generator=rng)[:size]])
        for _ in range(subsets)
    ])
    return scores.mean().item(), scores.std(unbiased=False).item()


# ---------------------------------------------------------------- Nearest-neighbour based

def _kth_neighbour_radii(feats, k, batch_size):
    """Distance from each point to its k-th nearest neighbour in the same set, itself excluded."""
    radii = []
    for chunk in feats.split(batch_size):
        dists = torch.cdist(chunk, feats)
        # The k+1 smallest include the point itself (distance 0), so the last is the k-th neighbour.
        radii.append(dists.topk(k + 1, dim=1, largest=False).values[:, -1])
    return torch.cat(radii)


def _inside_manifold(queries, points, radii, batch_size):
    """Whether each query lies in the union of balls of the given radii around the points."""
    inside = [(torch.cdist(chunk, points) <= radii).any(dim=1) for chunk in queries.split(batch_size)]
    return torch.cat(inside)


def precision_recall(real_feats, fake_feats, k=3, batch_size=1024):
    """Improved precision and recall (Kynkäänniemi et al. 2019); returns (precision, recall).

    A set's manifold is the union of balls around its points, each with the radius of the
    point's k-th nearest neighbour. Precision: fraction of fake points inside the real manifold
    (are samples realistic?). Recall: fraction of real points inside the fake manifold
    (is the real variety covered?).
    """
    real, fake = _as_float64(real_feats), _as_float64(fake_feats)
    if min(real.shape[0], fake.shape[0]) <= k:
        raise ValueError(f"precision/recall with k={k} needs more than {k} points in each set")
    real_radii = _kth_neighbour_radii(real, k, batch_size)
    fake_radii = _kth_neighbour_radii(fake, k, batch_size)
    precision = _inside_manifold(fake, real, real_radii, batch_size).double().mean()
    recall = _inside_manifold(real, fake, fake_radii, batch_size).double().mean()
    return precision.item(), recall.item()


def _nearest_distances(queries, refs, batch_size):
    """L2 distance from each query to its nearest ref; both sides batched to bound memory."""
    nearest = []
    for q in queries.split(batch_size):
        q = _as_float64(q)  # float32 |a|^2 + |b|^2 - 2ab would leave ~1e-2 for exact copies
        best = torch.full((q.shape[0],), math.inf, dtype=torch.float64)
        for r in refs.split(batch_size):
            best = torch.minimum(best, torch.cdist(q, _as_float64(r)).min(dim=1).values)
        nearest.append(best)
    return torch.cat(nearest)


def nearest_neighbour_distance(samples, train, batch_size=512):
    """Mean L2 distance from each (flattened) sample to its closest training item.

    A memorisation check: near 0 means the generator reproduces training images.
    """
    distances = _nearest_distances(samples.flatten(1), train.flatten(1), batch_size)
    return distances.mean().item()


# ---------------------------------------------------------------- Image fidelity

def psnr(x, y, data_range=1.0):
    """Per-image PSNR in dB of two N x C x H x W batches; a tensor of N.

    Identical images have zero error and give +inf (left as is: it is the honest value).
    """
    mse = (_as_float64(x) - _as_float64(y)).square().flatten(1).mean(dim=1)
    return 10 * torch.log10(data_range ** 2 / mse)


def _gaussian_window(size, sigma, channels):
    """Normalised 2-D Gaussian as a depthwise conv weight: channels x 1 x size x size."""
    offsets = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-offsets.square() / (2 * sigma ** 2))
    g = g / g.sum()
    return torch.outer(g, g).expand(channels, 1, size, size)


def ssim(x, y, data_range=1.0, window_size=7, sigma=1.5):
    """Per-image mean SSIM (Wang et al. 2004) of two N x C x H x W batches; a tensor of N.

    Local statistics come from a Gaussian window (sigma 1.5, as Wang et al.) applied per channel
    with 'valid' padding, so border pixels are not made up. The window is 7 x 7 rather than the
    paper's 11 x 11: on 24 x 24 images an 11 window leaves only 14 x 14 positions (a third of the
    image), 7 leaves 18 x 18, and a 7 window still holds 97% of the Gaussian's mass.
    """
    if window_size > min(x.shape[-2:]):
        raise ValueError(f"SSIM window {window_size} does not fit images of size {tuple(x.shape[-2:])}")
    x, y = _as_float64(x), _as_float64(y)
    window = _gaussian_window(window_size, sigma, x.shape[1]).to(x.device)

    def local_mean(t):
        return F.conv2d(t, window, groups=x.shape[1])

    mu_x, mu_y = local_mean(x), local_mean(y)
    var_x = local_mean(x * x) - mu_x.square()
    var_y = local_mean(y * y) - mu_y.square()
    cov_xy = local_mean(x * y) - mu_x * mu_y
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)
                / ((mu_x.square() + mu_y.square() + c1) * (var_x + var_y + c2)))
    return ssim_map.flatten(1).mean(dim=1)


def compression_ratio(image_shape, encoding_dim):
    """How many numbers describe an image per number in its code, e.g. (3, 24, 24) and 64 -> 27.

    encoding_dim may be an int or a shape (for convolutional codes).
    """
    code_size = encoding_dim if isinstance(encoding_dim, int) else math.prod(encoding_dim)
    return math.prod(image_shape) / code_size
