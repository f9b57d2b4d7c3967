"""Train the MLP autoencoder (Part 1): the same as python train_script.py --model MLPAE, with the same flags."""
import train_script
from utils import cli

if __name__ == "__main__":
    cli.run(lambda: train_script.main(default_model="MLPAE"))
