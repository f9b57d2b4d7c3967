"""A Gaussian mixture fitted to an autoencoder's training codes: ex-post density estimation (Ghosh et al. 2020).

Nothing shapes a plain autoencoder's codes like N(0, I), so z ~ N(0, I) decodes to noise; a density fitted to
where its codes actually lie gives it a prior to sample from.
"""
import math
from dataclasses import dataclass

import torch


@dataclass
class GaussianMixture:
    weights: torch.Tensor        # K
    means: torch.Tensor          # K x D
    covariances: torch.Tensor    # K x D x D

    def log_likelihoods(self, x):
        """N x K: log(weight_k) + log N(x | mean_k, covariance_k)."""
        chol = torch.linalg.cholesky(self.covariances)
        diff = (x[None] - self.means[:, None]).transpose(1, 2)                   # K x D x N: one solve per component
        mahalanobis = torch.linalg.solve_triangular(chol, diff, upper=False).square().sum(1).T   # N x K
        log_det = 2 * chol.diagonal(dim1=-2, dim2=-1).log().sum(-1)
        return self.weights.log() - 0.5 * (mahalanobis + log_det + x.shape[1] * math.log(2 * math.pi))

    def sample(self, generators):
        """One code per generator: its component, then its Gaussian draw, both from that sample's own generator."""
        chol = torch.linalg.cholesky(self.covariances)
        codes = []
        for g in generators:
            k = torch.multinomial(self.weights, 1, generator=g).item()
            eps = torch.randn(self.means.shape[1], generator=g, dtype=self.means.dtype)
            codes.append(self.means[k] + chol[k] @ eps)
        return torch.stack(codes)


def fit_gmm(x, components=10, iterations=100, seed=0, ridge=1e-4):
    """EM for a full-covariance mixture, in float64; starts from random points and the data's covariance."""
    x = x.double()
    n, d = x.shape
    g = torch.Generator().manual_seed(seed)
    components = min(components, n)
    eye = torch.eye(d, dtype=x.dtype) * ridge * torch.cov(x.T).diagonal().mean()   # keeps every covariance invertible
    gmm = GaussianMixture(torch.full((components,), 1 / components, dtype=x.dtype),
                          x[torch.randperm(n, generator=g)[:components]].clone(),
                          (torch.cov(x.T).reshape(d, d) + eye).expand(components, d, d).clone())
    for _ in range(iterations):
        responsibilities = gmm.log_likelihoods(x).softmax(1)                    # E step: N x K
        counts = responsibilities.sum(0) + 1e-12                                 # M step
        means = responsibilities.T @ x / counts[:, None]
        diff = x[None] - means[:, None]                                          # K x N x D
        covariances = (responsibilities.T[:, :, None] * diff).transpose(1, 2) @ diff / counts[:, None, None] + eye
        gmm = GaussianMixture(counts / n, means, covariances)
    return gmm
