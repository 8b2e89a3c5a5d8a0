"""Tests for hmr_ros.geometry.constants (constants without host-to-device copies)."""

import pytest
import torch

from hmr_ros.geometry.constants import constant_like, divide_last_dim, scale_last_dim, take
from hmr_ros.models.sync_audit import SyncAudit


def test_helpers_equal_the_tensor_forms_bit_for_bit_without_host_copies():
    """Each helper gives exactly what the new_tensor form gives (the same float32 operations,
    each Python number rounded to float32 once), and none builds a tensor from Python data."""
    x = torch.randn(5, 4, 3) * 100
    with SyncAudit() as audit:
        scaled = scale_last_dim(x, (0.1, -3.7, 1 / 3))
        divided = divide_last_dim(x, (12.0, 7.0, 0.3))
        taken = take(x, (2, 0, 2), dim=1)
        constant = constant_like((0.485, 2, -1.5), x)
        index = constant_like((3, 1), x, dtype=torch.long)
    assert not audit.events, audit.summary()
    assert torch.equal(scaled, x * x.new_tensor((0.1, -3.7, 1 / 3)))
    assert torch.equal(divided, x / x.new_tensor((12.0, 7.0, 0.3)))
    assert torch.equal(taken, x[:, [2, 0, 2]])
    assert torch.equal(constant, x.new_tensor((0.485, 2, -1.5)))
    assert index.dtype == torch.long and index.tolist() == [3, 1]


def test_new_tensor_is_what_the_audit_flags():
    """The pattern the helpers replace is recorded (so the audit's silence above means
    something)."""
    x = torch.randn(2, 3)
    with SyncAudit() as audit:
        x * x.new_tensor((1.0, 2.0, 3.0))
    assert [e.kind for e in audit.events] == ['tensor from Python data']


def test_component_counts_must_match():
    with pytest.raises(ValueError, match='3 components'):
        scale_last_dim(torch.zeros(2, 3), (1.0, 2.0))
    with pytest.raises(ValueError, match='2 divisors'):
        divide_last_dim(torch.zeros(2, 3), (1.0, 2.0))
