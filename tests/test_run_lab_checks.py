"""run_lab.py checks every step's flags, as that step's script will, before the first one trains: a setting one model
cannot take stops the lab in one line, not after the models before it have replaced their files."""
from pathlib import Path

import pytest

import run_lab
from utils import cli


@pytest.mark.parametrize("size, message", [
    ("18", "--image-size must be a multiple of 4 for AE, got 18"),          # the MLP before it takes any size
    ("20", "--image-size must be a multiple of 8 (--patch 1 and 4 levels), got 20"),   # diffusion, the last step
])
def test_a_size_one_step_refuses_stops_the_lab_before_any_training(size, message, tiny_flowers, workdir, capsys,
                                                                    monkeypatch):
    monkeypatch.setattr("sys.argv", ["run_lab.py", "--data", str(tiny_flowers), "--quick", "--threads", "1",
                                     "--image-size", size])
    with pytest.raises(SystemExit) as exit_info:
        cli.run(run_lab.main)
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and err == f"error: {message}"
    assert not [path for path in Path(".").rglob("*") if path.is_file()]   # no model, figure or log written
