"""The dual path is sync-free and static: no host reads, and it compiles and exports whole.

docs/performance-internals.md states the rules; hmr_ros.models.sync_audit records their
violations (every op that would make the host wait for a CUDA device or break graph capture).
Before this was enforced the tiny dual path had 97 such ops per forward (54 of them in smplx's
forward kinematics), the same for 1 and 4 persons.
"""

import copy

import pytest
import torch

from hmr_ros.models.sync_audit import SyncAudit, audited_tiny_dual_path

WIDTH, HEIGHT = 320, 240
INTRINSICS = torch.tensor([[[300.0, 0.0, 159.5], [0.0, 310.0, 119.5], [0.0, 0.0, 1.0]]])


@pytest.fixture(scope='module')
def dual_path(smplx_body_model):
    """Tiny dual path with both adapters giving non-zero outputs, every hand fused."""
    return audited_tiny_dual_path(smplx_body_model, seed=21)


def _inputs(num_persons):
    image = torch.rand(1, 3, HEIGHT, WIDTH, generator=torch.Generator().manual_seed(5))
    x1 = torch.linspace(10.0, 200.0, num_persons)
    boxes = torch.stack([x1, torch.full_like(x1, 20.0), x1 + 110.0, torch.full_like(x1, 230.0)], 1)
    return image, boxes, torch.zeros(num_persons, dtype=torch.long), INTRINSICS


@pytest.mark.parametrize('num_persons', [1, 4])
def test_forward_has_no_op_that_synchronises_on_cuda(dual_path, num_persons):
    inputs = _inputs(num_persons)
    with torch.no_grad(), SyncAudit() as audit:
        output = dual_path(*inputs)
    assert output.vertices.shape[0] == num_persons
    assert not audit.events, 'sync points in the forward:\n' + audit.summary()


def test_forward_on_the_meta_device_copies_nothing_to_the_host(dual_path):
    """On the meta device (no data) a copy to the host is a device transfer the audit records,
    and reading a value (.item(), .tolist(), .numpy()) raises: the 4-person forward does
    neither. (On the CPU such copies are no-ops the audit cannot see.)"""
    on_meta = copy.deepcopy(dual_path).to('meta')
    inputs = tuple(tensor.to('meta') for tensor in _inputs(4))
    with torch.no_grad(), SyncAudit() as audit:
        output = on_meta(*inputs)
    assert output.vertices.device.type == 'meta'
    assert not audit.events, 'sync points in the forward:\n' + audit.summary()


def test_audit_sees_the_sync_points_it_forbids():
    """The audit is not blind: each kind of forbidden op is recorded."""
    x = torch.randn(4, 3)
    system = torch.eye(3).expand(4, 3, 3)
    with SyncAudit() as audit:
        float(x.sum())  # scalar read
        x.nonzero()  # data-dependent shape
        x[x > 0]  # boolean-mask indexing
        torch.linalg.solve(system, x[..., None])  # host-checked linalg
        x * x.new_tensor((1.0, 2.0, 3.0))  # tensor from Python data
        torch.linalg.solve_ex(system, x[..., None])  # allowed
        x.to('meta')  # device transfer
    kinds = [event.kind for event in audit.events]
    assert kinds[0] == 'scalar read'
    assert {'data-dependent shape', 'boolean-mask indexing', 'host-checked linalg'} <= set(kinds)
    assert kinds[-2:] == ['tensor from Python data', 'device transfer']


@pytest.mark.slow
def test_compiles_as_one_graph_and_exports(dual_path):
    """torch.compile(fullgraph=True) (backend 'eager': Dynamo's capture without Inductor's
    code generation, for CI time) and torch.export.export trace the whole forward with no
    graph break, and both reproduce eager on a 4-person batch."""
    inputs = _inputs(4)
    with torch.no_grad():
        eager = dual_path(*inputs)
        torch._dynamo.reset()
        compiled = torch.compile(dual_path, fullgraph=True, backend='eager')(*inputs)
        exported = torch.export.export(dual_path, inputs).module()(*inputs)
    for name, expected, got_compiled, got_exported in zip(
        eager._fields, eager, compiled, exported, strict=True
    ):
        torch.testing.assert_close(got_compiled, expected, msg=name)
        torch.testing.assert_close(got_exported, expected, msg=name)
