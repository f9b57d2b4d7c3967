"""Part 2: the convolutional autoencoder.

3xHxW -> 32xH/2xW/2 -> 64xH/4xW/4 -> 128xH/4xW/4 -> encoding_dim (Linear)
      -> 128xH/4xW/4 -> 64xH/4xW/4 -> 32xH/2xW/2 -> 3xHxW
"""
from torch import nn


def conv_encoder(channels):
    """The shared trunk of the AE and the VAE: two max-pooled conv stages, then a 128-channel conv."""
    return nn.Sequential(
        nn.Conv2d(channels, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 32 x H/2
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),        # 64 x H/4
        nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(),                        # 128 x H/4
    )


def conv_decoder(channels, kernel=4):
    """Mirror of conv_encoder; stride-2 transposed convolutions undo the two poolings.

    Kernel 4 (padding 1) lets neighbouring code positions overlap in the output. With kernel 2 each of the
    H/4 x W/4 positions decodes into its own 4x4 block, and the seams between blocks show as a grid in samples.
    """
    pad = kernel // 2 - 1
    return nn.Sequential(
        nn.Conv2d(128, 64, 3, padding=1), nn.ReLU(),                               # 64 x H/4
        nn.ConvTranspose2d(64, 32, kernel, stride=2, padding=pad), nn.ReLU(),      # 32 x H/2
        nn.ConvTranspose2d(32, channels, kernel, stride=2, padding=pad), nn.Sigmoid(),  # C x H, in [0, 1]
    )


class Autoencoder(nn.Module):
    def __init__(self, image_size=24, channels=3, encoding_dim=64, upsample_kernel=4):
        super().__init__()
        if image_size % 4:
            raise ValueError(f"image size must be a multiple of 4 (two 2x poolings), got {image_size}")
        self.image_shape = (channels, image_size, image_size)
        self.encoding_dim = encoding_dim
        self.feature_shape = (128, image_size // 4, image_size // 4)
        features = 128 * (image_size // 4) ** 2
        self.encoder = nn.Sequential(conv_encoder(channels), nn.Flatten(), nn.Linear(features, encoding_dim))
        self.decoder = nn.Sequential(
            nn.Linear(encoding_dim, features), nn.ReLU(), nn.Unflatten(1, self.feature_shape),
            conv_decoder(channels, upsample_kernel),
        )

    def encode(self, x):
        return self.encoder(x)

    def decode(self, z):
        return self.decoder(z)

    def forward(self, x):
        return self.decode(self.encode(x))
