"""A procedural stand-in for the flower photos, so a fresh clone runs end to end without downloading data.

Each class is painted with soft masks on coordinate grids at a few times the target resolution and then
downsampled with antialiasing, which gives the smooth, slightly blurry look of real photos shrunk to a
few dozen pixels. Everything is batched over images; only the handful of flowers per image is a loop.
Coordinates are in [-1, 1] with y pointing down, so shapes do not depend on the resolution.
"""
import math
from contextlib import contextmanager

import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF

CLASSES = ["astilbe", "bellflower", "calendula"]
SUPPORTED_SIZES = (16, 24, 32, 48, 64)

FOLIAGE = [(0.13, 0.26, 0.08), (0.24, 0.40, 0.12), (0.33, 0.36, 0.13), (0.40, 0.50, 0.18),
           (0.32, 0.24, 0.13), (0.20, 0.15, 0.09), (0.10, 0.18, 0.07)]
ASTILBE = [(0.96, 0.55, 0.70), (0.90, 0.30, 0.52), (0.78, 0.12, 0.22), (0.62, 0.08, 0.20),
           (0.97, 0.93, 0.88), (1.00, 0.76, 0.84), (0.86, 0.52, 0.78)]
ASTILBE_STEM = [(0.45, 0.22, 0.15), (0.30, 0.40, 0.15)]
BELLFLOWER = [(0.50, 0.50, 0.96), (0.62, 0.42, 0.90), (0.56, 0.30, 0.78), (0.66, 0.70, 1.00),
              (0.38, 0.38, 0.90), (0.76, 0.64, 0.98)]
STEM = [(0.22, 0.48, 0.14), (0.30, 0.55, 0.20), (0.18, 0.38, 0.12)]
CALENDULA = [(1.00, 0.55, 0.05), (0.96, 0.42, 0.02), (1.00, 0.70, 0.10), (1.00, 0.84, 0.20)]
CALENDULA_DISC = [(0.34, 0.17, 0.05), (0.55, 0.28, 0.05), (0.80, 0.40, 0.04)]

# Working set per batch: a few million pixels keeps temporaries small even at 64 px.
PIXELS_PER_BATCH = 1 << 20


def synthetic_flowers(n_per_class=400, image_size=24, seed=0):
    """-> (images uint8 tensor N x 3 x image_size x image_size, labels int64 tensor N, CLASSES list).

    Deterministic in its arguments; labels are sorted by class.
    """
    if image_size not in SUPPORTED_SIZES:
        raise ValueError(f"image_size must be one of {SUPPORTED_SIZES}, got {image_size}")
    if n_per_class < 1:
        raise ValueError(f"n_per_class must be at least 1, got {n_per_class}")
    g = torch.Generator().manual_seed(seed)  # never the global RNG: callers' seeding stays untouched
    # Masks are already antialiased analytically, so 2x (at least 48 px) is enough to resolve the
    # sub-pixel florets and stems; more would multiply the cost for no visible gain after resizing.
    grid = _Grid(image_size * max(2, math.ceil(48 / image_size)))
    batch = max(1, PIXELS_PER_BATCH // grid.size ** 2)
    images = []
    with _one_thread():
        for paint in (_astilbe, _bellflower, _calendula):  # in CLASSES order
            for start in range(0, n_per_class, batch):
                canvas = paint(g, min(batch, n_per_class - start), grid)
                small = TF.resize(canvas, [image_size, image_size], antialias=True)
                images.append(small.clamp_(0, 1).mul_(255).round_().to(torch.uint8))
    labels = torch.arange(len(CLASSES)).repeat_interleave(n_per_class)
    return torch.cat(images), labels, list(CLASSES)


@contextmanager
def _one_thread():
    """Run intra-op work on one thread, restoring the caller's setting afterwards.

    The painters issue hundreds of small element-wise ops; splitting each across threads gains little,
    and on a busy machine every op waits for a descheduled worker (measured 7 s instead of 0.6 s).
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class _Grid:
    """Pixel-centre coordinates of a square canvas, and the width of one pixel for soft edges."""

    def __init__(self, size):
        coords = (torch.arange(size) + 0.5) * (2 / size) - 1
        self.y, self.x = torch.meshgrid(coords, coords, indexing="ij")
        self.size = size
        self.edge = 2 / size

    def soft(self, distance):
        """Signed distance (positive inside) -> coverage, antialiased over about a pixel."""
        return torch.sigmoid(distance / self.edge)

    def frame(self, cx, cy, angle):
        """Coordinates along (u) and across (w) an axis from (cx, cy); angle 0 points down, pi up."""
        dx, dy = self.x - cx, self.y - cy
        c, s = torch.cos(angle), torch.sin(angle)
        return dx * s + dy * c, dx * c - dy * s


# ---------------------------------------------------------------- random helpers

def _uniform(g, n, lo, hi):
    """n values in [lo, hi), shaped to broadcast against an N x 1 x H x W canvas."""
    return (lo + (hi - lo) * torch.rand(n, generator=g)).view(n, 1, 1, 1)


def _chance(g, n, p):
    """Per image 1.0 with probability p, else 0.0: multiplies an optional flower's coverage."""
    return (torch.rand(n, generator=g) < p).float().view(n, 1, 1, 1)


def _colour(g, palette, n, jitter=0.05):
    """A palette entry per image, with brightness and hue nudged so colours vary continuously."""
    table = torch.tensor(palette)
    pick = table[torch.randint(len(table), (n,), generator=g)]
    pick = pick * (0.85 + 0.3 * torch.rand(n, 1, generator=g)) + jitter * torch.randn(n, 3, generator=g)
    return pick.clamp(0, 1).view(n, 3, 1, 1)


def _smooth_noise(g, n, size, cells):
    """Zero-mean noise with blobs about size/cells wide: bicubic upsampling of a coarse random grid."""
    coarse = torch.randn(n, 1, cells, cells, generator=g)
    return F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)


def _dots(g, n, grid, radius, spacing):
    """Soft round dots at random places: sparse impulses blurred by a Gaussian that peaks at 1."""
    sigma = radius / grid.edge
    density = (grid.edge / spacing) ** 2
    impulses = (torch.rand(n, 1, grid.size, grid.size, generator=g) < density).float()
    half = max(1, math.ceil(2.5 * sigma))
    kernel = torch.exp(-0.5 * (torch.arange(-half, half + 1) / sigma) ** 2)
    blurred = F.conv2d(impulses, kernel.view(1, 1, 1, -1), padding=(0, half))
    blurred = F.conv2d(blurred, kernel.view(1, 1, -1, 1), padding=(half, 0))
    return blurred.clamp_(max=1)


# ---------------------------------------------------------------- painters

def _background(g, n, grid):
    """Out-of-focus foliage or soil: a gradient between two greens/browns, mottled by blurred noise."""
    near, far = _colour(g, FOLIAGE, n), _colour(g, FOLIAGE, n)
    angle = _uniform(g, n, 0, 2 * math.pi)
    ramp = (grid.x * torch.cos(angle) + grid.y * torch.sin(angle)).mul(0.5).add(0.5).clamp(0, 1)
    mottle = (_uniform(g, n, 0.05, 0.35) * _smooth_noise(g, n, grid.size, 4)
              + _uniform(g, n, 0.0, 0.25) * _smooth_noise(g, n, grid.size, 9))
    return torch.lerp(near, far, ramp) * (1 + mottle).clamp(min=0.3)


def _astilbe(g, n, grid):
    """One to five upright, feathery cones of tiny florets on thin stems, all from one plant."""
    canvas = _background(g, n, grid)
    plant = _colour(g, ASTILBE, n, jitter=0.04)
    stem_colour = _colour(g, ASTILBE_STEM, n)
    florets = _dots(g, n, grid, radius=0.025, spacing=0.06)
    for k in range(5):
        present = _chance(g, n, 1.0 if k == 0 else 0.5)
        height = _uniform(g, n, 1.0, 1.6) if k == 0 else _uniform(g, n, 0.6, 1.4)
        base_x, base_y = _uniform(g, n, -0.75, 0.75), _uniform(g, n, -0.1, 0.7) + 0.4 * height
        width = height * _uniform(g, n, 0.18, 0.3)
        u, w = grid.frame(base_x, base_y, math.pi + _uniform(g, n, -0.3, 0.3))
        stem = grid.soft(0.012 - w.abs()) * grid.soft(-u)
        canvas = torch.lerp(canvas, stem_colour, present * stem)
        t = u / height
        body = _plume_body(t, w / width, _uniform(g, n, 4, 8))
        # Florets are what the eye reads: dense in the core, scattered at the fuzzy edges, paler at the tip.
        alpha = present * (0.4 * body + florets * body.sqrt()).clamp(max=1)
        colour = (plant + 0.05 * torch.randn(n, 3, 1, 1, generator=g)).clamp(0, 1)
        colour = torch.lerp(colour * (0.7 + 0.4 * florets), torch.ones(()), 0.25 * t.clamp(0, 1))
        canvas = torch.lerp(canvas, colour, alpha)
    return canvas


def _plume_body(t, across, branches):
    """Coverage of a cone in plume coordinates (t: 0 base .. 1 tip, across: +-1 at full width).

    Side branches sweep upwards as chevrons; the edge fades over 40% of the width to look feathery.
    """
    taper = (1 - t).clamp(0, 1) * (t * 6).clamp(0, 1).sqrt()
    chevrons = 0.8 + 0.2 * torch.cos(2 * math.pi * (branches * t + 1.2 * across.abs()))
    return ((taper * chevrons - across.abs()) / 0.4).clamp(0, 1)


def _bellflower(g, n, grid):
    """One or two arching green stems with flared, five-lobed bells hanging off them."""
    canvas = _background(g, n, grid)
    stem_colour = _colour(g, STEM, n)
    stems = [(_uniform(g, n, -0.6, 0.6), _uniform(g, n, -0.5, 0.5), torch.ones(n, 1, 1, 1)),
             (_uniform(g, n, -0.8, 0.8), _uniform(g, n, -0.5, 0.5), _chance(g, n, 0.5))]
    for top_x, bend, present in stems:
        centre = top_x + bend * ((grid.y + 1) / 2) ** 2
        canvas = torch.lerp(canvas, stem_colour, present * grid.soft(0.018 - (grid.x - centre).abs()))
    plant = _colour(g, BELLFLOWER, n, jitter=0.04)
    for k in range(4):
        top_x, bend, stem_present = stems[k % 2]
        present = stem_present * _chance(g, n, 1.0 if k < 2 else 0.7)
        attach_y = _uniform(g, n, -0.8, 0.4)
        attach_x = top_x + bend * ((attach_y + 1) / 2) ** 2
        # Mostly hang towards the middle of the frame, as a photographer would have framed them.
        inward = torch.where(attach_x > 0, -1.0, 1.0)
        side = torch.where(_chance(g, n, 0.75) > 0, inward, -inward)
        angle = side * _uniform(g, n, 0.2, 1.3)  # hanging down to sideways, away from the stem
        length = _uniform(g, n, 0.6, 0.95) if k == 0 else _uniform(g, n, 0.4, 0.75)
        side_mask, side_shade = _bell(grid, attach_x, attach_y, angle, length)
        face_mask, face_shade = _bell_face(g, n, grid, attach_x, attach_y, angle, length)
        facing = _chance(g, n, 0.25) > 0  # some bells open towards the camera and show a star
        mask, shade = torch.where(facing, face_mask, side_mask), torch.where(facing, face_shade, side_shade)
        colour = (plant + 0.04 * torch.randn(n, 3, 1, 1, generator=g)).clamp(0, 1)
        canvas = torch.lerp(canvas, colour * shade, present * mask)
    return canvas


def _bell(grid, x, y, angle, length):
    """Mask and shading of a bell seen from the side: narrow at the stem, flaring to a scalloped rim."""
    u, w = grid.frame(x, y, angle)
    s = (u / length).clamp(0, 1.2)
    half_width = length * (0.2 + 0.42 * s ** 2.5)
    rim = length * (1 + 0.13 * torch.cos(3 * math.pi * w / (0.62 * length)))
    mask = grid.soft(half_width - w.abs()) * grid.soft(u) * grid.soft(rim - u)
    across = (w / half_width).clamp(-1, 1)
    # Light from one side, grooves along the petal seams, and a shadowed mouth give the cup its depth.
    shade = (0.85 + 0.25 * across) * (0.9 + 0.1 * torch.cos(2.5 * math.pi * across))
    shade = shade * (1 - 0.3 * grid.soft(u - 0.88 * length))
    return mask, shade


def _bell_face(g, n, grid, x, y, angle, length):
    """Mask and shading of a bell seen mouth-on: a five-pointed star with a pale, shadowed throat."""
    u, w = grid.frame(x, y, angle)
    u = (u - 0.6 * length) / _uniform(g, n, 0.6, 1.0)  # centred on the mouth, foreshortened along the axis
    r, theta = torch.sqrt(u ** 2 + w ** 2), torch.atan2(w, u)
    tips = 1 - torch.sin(2.5 * theta + _uniform(g, n, 0, math.pi)).abs()  # sharp at the tips, round between
    radius = 0.55 * length
    mask = grid.soft(radius * (0.62 + 0.38 * tips) - r)
    spread = (r / radius).clamp(max=1)
    throat = (1 + 0.5 * grid.soft(0.2 * radius - r)) * (1 - 0.35 * grid.soft(0.1 * radius - r))
    shade = (0.75 + 0.35 * spread) * throat
    return mask, shade


def _calendula(g, n, grid):
    """A large rayed flower head, sometimes with a smaller one behind it, seen at a slight tilt."""
    canvas = _background(g, n, grid)
    behind = (_uniform(g, n, -0.9, 0.9), _uniform(g, n, -0.9, 0.9), _uniform(g, n, 0.25, 0.45))
    canvas = _flower_head(g, n, grid, canvas, *behind, present=_chance(g, n, 0.4))
    main = (_uniform(g, n, -0.35, 0.35), _uniform(g, n, -0.35, 0.35), _uniform(g, n, 0.45, 0.85))
    return _flower_head(g, n, grid, canvas, *main, present=torch.ones(n, 1, 1, 1))


def _flower_head(g, n, grid, canvas, cx, cy, radius, present):
    """Paints petals, then the disc, over canvas where present is 1."""
    u, w = grid.frame(cx, cy, _uniform(g, n, 0, 2 * math.pi))
    w = w / _uniform(g, n, 0.6, 1.0)  # foreshortening of a head that faces slightly away
    r, theta = torch.sqrt(u ** 2 + w ** 2), torch.atan2(w, u)
    count = torch.randint(13, 22, (n, 1, 1, 1), generator=g).float()
    phase = _uniform(g, n, 0, 1)
    petal = _colour(g, CALENDULA, n, jitter=0.04)
    # Two rings of petals, the inner one offset by half a petal and a shade deeper, as in a double bloom.
    for ring_radius, offset, depth in ((1.0, 0.0, 1.0), (0.75, 0.5, 0.85)):
        edge, seam = _petal_ring(g, n, theta, count, phase + offset)
        mask = grid.soft(ring_radius * radius * edge - r)
        shade = depth * (0.7 + 0.3 * seam) * (0.85 + 0.2 * (r / radius).clamp(max=1))
        canvas = torch.lerp(canvas, petal * shade, present * mask)
    disc_radius = radius * _uniform(g, n, 0.25, 0.36)
    disc = _colour(g, CALENDULA_DISC, n, jitter=0.03)
    disc_shade = 0.75 + 0.35 * (r / disc_radius).clamp(max=1)
    return torch.lerp(canvas, disc * disc_shade, present * grid.soft(disc_radius - r))


def _petal_ring(g, n, theta, count, phase):
    """Radius profile (1 at petal tips) and seam brightness of `count` strap petals with ragged lengths."""
    position = theta * count / (2 * math.pi) + phase
    index = torch.remainder(position.floor(), count).long()
    within = position - position.floor()
    lengths = 0.88 + 0.12 * torch.rand(n, 32, generator=g)
    length = lengths[torch.arange(n).view(n, 1, 1, 1), index]
    bulge = torch.sin(math.pi * within)
    return length * (0.78 + 0.22 * bulge.sqrt()), bulge
