"""The shared linear probe: picks C on validation, finds the informative feature, refuses bad splits."""

import numpy as np
import pytest

from radford.errors import RadfordError
from radford.eval.probe import linear_probe


def splits(n: int = 600, d: int = 40, informative: int = 7, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    y = (x[:, informative] + 0.3 * rng.normal(size=n) > 0).astype(int)
    return (x[:400], y[:400]), (x[400:500], y[400:500]), (x[500:], y[500:])


@pytest.mark.parametrize("penalty", ["l1", "l2"])
def test_probe_finds_the_informative_feature(penalty):
    result = linear_probe(*splits(), penalty=penalty)
    assert result.test_accuracy > 0.85
    assert result.top_feature == 7
    assert result.predict(splits()[2][0]).shape == (100,)


def test_l1_probe_is_sparse_where_l2_is_not():
    assert linear_probe(*splits(), penalty="l1").nonzero_weights < 5
    assert linear_probe(*splits(), penalty="l2").nonzero_weights == 40


def test_probe_on_noise_is_near_chance():
    train, val, test = splits()
    rng = np.random.default_rng(1)
    noise = tuple((rng.normal(size=x.shape), y) for x, y in (train, val, test))
    assert linear_probe(*noise).test_accuracy < 0.65


def test_bad_splits_are_one_line_errors():
    train, val, test = splits()
    with pytest.raises(RadfordError, match="train split: expected features of shape"):
        linear_probe((train[0][:, 0], train[1]), val, test)
    with pytest.raises(RadfordError, match="single class"):
        linear_probe((train[0], np.zeros(400)), val, test)
