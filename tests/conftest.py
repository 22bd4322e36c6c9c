import numpy as np
import pytest
import torch

torch.set_num_threads(2)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def random_params(specs, shape, gen: torch.Generator, dtype=torch.float64):
    """Physical parameters drawn uniformly in normalized space (all of each range)."""
    from automix.params import to_physical
    return to_physical(torch.rand(*shape, len(specs), generator=gen, dtype=dtype), specs)


class ArraySource:
    """A stand-in for BlockReader over an in-memory array."""

    def __init__(self, x):
        self.x, self.pos, self.channels = x, 0, x.shape[0]

    def read(self, n):
        block = self.x[:, self.pos:self.pos + n]
        self.pos += n
        return np.pad(block, ((0, 0), (0, n - block.shape[1])))
