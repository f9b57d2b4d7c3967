"""evaluate.py scores models only against the data they were trained on."""
import pytest

import evaluate
import train_script
from utils import cli


def test_a_model_trained_on_another_split_is_refused_in_one_line(tiny_flowers, workdir, capsys):
    common = ["--data", str(tiny_flowers), "--epochs", "1", "--threads", "1"]
    train_script.main(["--model", "MLPAE", *common])
    train_script.main(["--model", "AE", "--split-seed", "1", *common])
    with pytest.raises(SystemExit) as exit_info:
        cli.run(lambda: evaluate.main(["--model", "MLPAE", "AE", "--n", "10", "--threads", "1"]))
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and len(err.splitlines()) == 1
    assert "models/Best_AE.pth was trained on" in err and "split seed 1" in err and "split seed 0" in err
    assert not list(workdir.glob("models/Evaluator*"))
