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
