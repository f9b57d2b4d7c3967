"""Per-sample seeds: a written-out rule, the same on every Python, so sample i of a seed is one fixed image."""
import torch

from utils.sampling import samplers
from utils.seeds import stable_seed


def test_sample_seeds_do_not_ask_pythons_hash(monkeypatch):
    def refuse(value):
        raise AssertionError("hash() is the interpreter's detail, not a seed contract")
    monkeypatch.setattr(samplers, "hash", refuse, raising=False)
    first, second = samplers.sample_generators(3, 5, 2)
    assert first.initial_seed() == stable_seed(3, 5) and second.initial_seed() == stable_seed(3, 6)


def test_the_seed_rule_is_pinned():
    """The values the documented samples and figures were drawn with (CPython's hash of the tuple, modulo 2^63)."""
    assert [stable_seed(0, 0), stable_seed(3, 1), stable_seed(0, 5, 0)] == \
        [765232833172254823, 8756109708711196808, 2683392399743319337]
    assert stable_seed(0, 1) != stable_seed(1, 0) and stable_seed(1, 2) != stable_seed(1, 2, 0)
    assert 0 <= stable_seed(-(10 ** 30), 7) < 2 ** 63


def test_sample_i_is_the_same_whatever_it_is_drawn_with():
    alone = samplers.per_sample_noise(samplers.sample_generators(7, 4, 1), (3,))
    among = samplers.per_sample_noise(samplers.sample_generators(7, 0, 6), (3,))
    assert torch.equal(alone[0], among[4]) and not torch.equal(among[3], among[4])
