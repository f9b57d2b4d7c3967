"""Data: image folders, torchvision sets and the synthetic sets -> cached uint8 tensors, labels and the fixed split."""
