"""Part 1: the MLP autoencoder, 3*H*W -> 256 -> 128 -> encoding_dim -> 128 -> 256 -> 3*H*W."""
from torch import nn


class MLPAutoencoder(nn.Module):
    def __init__(self, image_size=24, channels=3, encoding_dim=64):
        super().__init__()
        self.image_shape = (channels, image_size, image_size)
        self.encoding_dim = encoding_dim
        pixels = channels * image_size * image_size
        self.encoder = nn.Sequential(
            nn.Flatten(),
            nn.Linear(pixels, 256), nn.ReLU(),
            nn.Linear(256, 128), nn.ReLU(),
            nn.Linear(128, encoding_dim),
        )
        self.decoder = nn.Sequential(
            nn.Linear(encoding_dim, 128), nn.ReLU(),
            nn.Linear(128, 256), nn.ReLU(),
            nn.Linear(256, pixels), nn.Sigmoid(),  # pixels live in [0, 1]
            nn.Unflatten(1, self.image_shape),
        )

    def encode(self, x):
        return self.encoder(x)

    def decode(self, z):
        return self.decoder(z)

    def forward(self, x):
        return self.decode(self.encode(x))
