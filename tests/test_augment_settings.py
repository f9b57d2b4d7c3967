"""--augment's settings: the three this version has, and a checkpoint's boolean of an earlier version refused."""
import pytest

from utils.data.augment import described
from utils.errors import UserError


def test_the_log_words_of_each_setting_and_the_refusal_of_an_old_one():
    assert [described(s) for s in ("none", "flip", "crop")] == ["", ", augmented (flips)", ", augmented (flips, crops)"]
    for old in (True, False):
        with pytest.raises(UserError, match=f"augment setting {old} was written by an earlier version"):
            described(old)
