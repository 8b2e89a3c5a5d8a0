"""Tests for hmr_ros.pipeline.buckets (person buckets, padding and unpadding)."""

import pytest
import torch

from hmr_ros.models.dual_path import DualPathConfig, DualPathModel
from hmr_ros.models.hand_expert import build_hand_expert
from hmr_ros.models.whole_body import build_whole_body
from hmr_ros.pipeline.buckets import bucket_size, pad_persons, person_buckets, unpad_persons

INTRINSICS = torch.tensor([[[300.0, 0.0, 159.5], [0.0, 310.0, 119.5], [0.0, 0.0, 1.0]]])


def test_buckets_are_powers_of_two_up_to_the_maximum():
    assert person_buckets(1) == (1,)
    assert person_buckets(4) == (1, 2, 4)
    assert person_buckets(6) == (1, 2, 4, 6)
    assert person_buckets(8) == (1, 2, 4, 8)
    assert [bucket_size(n, (1, 2, 4, 6)) for n in range(1, 7)] == [1, 2, 4, 4, 6, 6]
    with pytest.raises(ValueError, match='exceed the largest bucket 6'):
        bucket_size(7, (1, 2, 4, 6))
    with pytest.raises(ValueError, match='no person'):
        bucket_size(0, (1, 2))
    with pytest.raises(ValueError, match='at least 1'):
        person_buckets(0)


def test_padding_repeats_the_first_person_and_marks_it_invalid():
    boxes = torch.tensor([[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0], [9.0, 8.0, 12.0, 14.0]])
    index = torch.tensor([0, 1, 1])
    padded = pad_persons(boxes, index, 4)
    assert padded.size == 4 and padded.num_persons == 3
    assert torch.equal(padded.boxes_xyxy, torch.cat((boxes, boxes[:1])))
    assert padded.batch_index.tolist() == [0, 1, 1, 0]
    assert padded.valid.tolist() == [True, True, True, False]
    with pytest.raises(ValueError, match='smaller than the 3 persons'):
        pad_persons(boxes, index, 2)
    with pytest.raises(ValueError, match=r'batch_index must be \(P,\)'):
        pad_persons(boxes, index[:2], 4)


def test_padded_rows_are_finite_and_leave_the_real_persons_unchanged(smplx_body_model):
    """Every step of the dual path is per person: three persons padded to a bucket of four
    give bit-identical rows whatever the fourth row holds (the first person again, or another
    person), a finite fourth row, and, after unpad_persons, the three-person results up to the
    float rounding of another batch size (not compared for the RANSAC registration, which
    that rounding can flip between near-equal hypotheses on these random networks)."""
    torch.manual_seed(3)
    model = DualPathModel(
        build_whole_body('smplerx_tiny').eval(),
        build_hand_expert('hamer_tiny').eval(),
        smplx_body_model,
        config=DualPathConfig(hand_confidence_threshold=0.0),
    ).eval()
    image = torch.rand(1, 3, 240, 320, generator=torch.Generator().manual_seed(2))
    boxes = torch.tensor(
        [[10.0, 20.0, 120.0, 230.0], [100.0, 10.0, 220.0, 200.0], [200.0, 30.0, 310.0, 235.0]]
    )
    index = torch.zeros(3, dtype=torch.long)
    padded = pad_persons(boxes, index, bucket_size(3, person_buckets(8)))
    other = torch.cat((boxes, torch.tensor([[50.0, 60.0, 90.0, 140.0]])))
    with torch.no_grad():
        exact = model(image, boxes, index, INTRINSICS)
        bucketed = model(image, padded.boxes_xyxy, padded.batch_index, INTRINSICS)
        with_other = model(image, other, padded.batch_index, INTRINSICS)
    for name, field, field_other in zip(bucketed._fields, bucketed, with_other, strict=True):
        assert field.shape[0] == 4, name
        assert torch.equal(field[:3], field_other[:3]), name
        if field.is_floating_point():
            assert torch.isfinite(field).all(), name
    result = unpad_persons(bucketed, padded.num_persons)
    assert type(result) is type(exact)
    for name, got, expected in zip(exact._fields, result, exact, strict=True):
        assert got.shape == expected.shape, name
        if name.startswith('hand_r'):  # hand_root_registered, hand_registration_*
            continue
        if expected.is_floating_point():
            torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-3, msg=name)
        else:
            assert torch.equal(got, expected), name
