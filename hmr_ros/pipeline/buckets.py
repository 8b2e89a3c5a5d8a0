"""Person buckets: static shapes for the dual path whatever the number of persons in a frame.

A captured CUDA graph, a compiled graph or a TensorRT engine is built for fixed input shapes.
The person count changes from frame to frame, so it is rounded up to a bucket (1, 2, 4, 8 ...,
and ``max_persons`` itself): one graph per bucket serves every count
(docs/performance-internals.md, "Person buckets"). Padding rows repeat the first person's box
and image (a real, finite input, so no NaN or inf can appear in them and, every step being per
person, they cannot change the valid rows); they are dropped on the host after the results'
single device-to-host copy.

Typical use in a runner::

    padded = pad_persons(boxes_xyxy, batch_index, bucket_size(len(boxes_xyxy), buckets))
    output = model(images, padded.boxes_xyxy, padded.batch_index, intrinsics)
    output = unpad_persons(output_copied_to_host, padded.num_persons)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

import torch

__all__ = ['PaddedPersons', 'bucket_size', 'pad_persons', 'person_buckets', 'unpad_persons']

OutputT = TypeVar('OutputT', bound=tuple[Any, ...])


def person_buckets(max_persons: int) -> tuple[int, ...]:
    """Bucket sizes for up to ``max_persons`` persons: powers of two below it, then itself.

    Args:
        max_persons: most persons per forward (``detection.max_persons`` times images per
            batch), at least 1.

    Returns:
        Increasing sizes, e.g. (1, 2, 4, 8) for 8 and (1, 2, 4, 6) for 6.

    Raises:
        ValueError: max_persons below 1.
    """
    if max_persons < 1:
        raise ValueError(f'max_persons must be at least 1; got {max_persons}')
    sizes = []
    size = 1
    while size < max_persons:
        sizes.append(size)
        size *= 2
    sizes.append(max_persons)
    return tuple(sizes)


def bucket_size(num_persons: int, buckets: tuple[int, ...]) -> int:
    """The smallest bucket that holds ``num_persons``.

    Raises:
        ValueError: no person, or more persons than the largest bucket.
    """
    if num_persons < 1:
        raise ValueError('no person boxes: skip the model for frames without persons')
    for size in buckets:
        if size >= num_persons:
            return size
    raise ValueError(
        f'{num_persons} persons exceed the largest bucket {max(buckets)}; keep at most '
        f'{max(buckets)} boxes (detection.max_persons)'
    )


@dataclass(frozen=True)
class PaddedPersons:
    """Person inputs padded to a bucket.

    Attributes:
        boxes_xyxy: (S, 4) boxes; rows num_persons .. S - 1 repeat row 0.
        batch_index: (S,) image of each box; padding rows repeat row 0's image.
        valid: (S,) bool, True for the real persons (the first num_persons rows).
        num_persons: the real person count (a host integer, for unpad_persons).
    """

    boxes_xyxy: torch.Tensor
    batch_index: torch.Tensor
    valid: torch.Tensor
    num_persons: int

    @property
    def size(self) -> int:
        """The bucket size S."""
        return int(self.boxes_xyxy.shape[0])


def pad_persons(boxes_xyxy: torch.Tensor, batch_index: torch.Tensor, size: int) -> PaddedPersons:
    """Pad person boxes to ``size`` rows (a bucket) with copies of the first person.

    Works on any device without reading device values: the count is the boxes' shape.

    Args:
        boxes_xyxy: (P, 4) person boxes, image pixels, P >= 1.
        batch_index: (P,) long, the image of each box.
        size: bucket size, at least P (bucket_size).

    Returns:
        PaddedPersons with S = size rows.

    Raises:
        ValueError: no box, mismatched shapes, or a bucket smaller than P.
    """
    num_persons = int(boxes_xyxy.shape[0])
    if boxes_xyxy.dim() != 2 or boxes_xyxy.shape[1] != 4:
        raise ValueError(f'boxes_xyxy must be (P, 4); got {tuple(boxes_xyxy.shape)}')
    if tuple(batch_index.shape) != (num_persons,):
        raise ValueError(
            f'batch_index must be (P,) = ({num_persons},); got {tuple(batch_index.shape)}'
        )
    if num_persons < 1:
        raise ValueError('no person boxes: skip the model for frames without persons')
    if size < num_persons:
        raise ValueError(f'bucket size {size} is smaller than the {num_persons} persons')
    extra = size - num_persons
    boxes = torch.cat((boxes_xyxy, boxes_xyxy[:1].expand(extra, 4)))
    index = torch.cat((batch_index, batch_index[:1].expand(extra)))
    valid = torch.arange(size, device=boxes_xyxy.device) < num_persons
    return PaddedPersons(boxes_xyxy=boxes, batch_index=index, valid=valid, num_persons=num_persons)


def unpad_persons(output: OutputT, num_persons: int) -> OutputT:
    """Keep the first ``num_persons`` rows of every field of a per-person NamedTuple.

    Call it on the host copy of the results (slicing is free there); every field of the
    dual path's output has persons on its first axis.

    Args:
        output: a NamedTuple of tensors (e.g. DualPathOutput) for a padded batch.
        num_persons: the real count (PaddedPersons.num_persons).

    Returns:
        The same NamedTuple type with views of the first num_persons rows.
    """
    return type(output)(*(field[:num_persons] for field in output))
