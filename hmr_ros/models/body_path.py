"""The interface between the dual path and its body model (docs/seed-models.md, 'Interfaces').

DualPathModel needs from its body side, per person crop: SMPL-X root + 21 body rotations (in an
interleaved 6D space it may offset: the body adapter's), shape, a translation in the crop's
virtual camera (whole_body.virtual_crop_intrinsics) and hand boxes in crop pixels. SMPLer-X
(models/whole_body.WholeBodyModel) is the reference implementation; FastMETRO
(models/alternatives/fastmetro_body.FastMetroWholeBody) derives its hand boxes from its projected
wrist and hand joints because it predicts none. Any body model registered in
models/registry.py plugs in by implementing this protocol.
"""

from __future__ import annotations

from typing import Any, Protocol

from torch import Tensor

from hmr_ros.models.whole_body import WholeBodyOutput, WholeBodyPreprocessing

__all__ = ['BodyModelConfig', 'BodyPathModel', 'EncoderWidth']


class EncoderWidth(Protocol):
    """Width of the hand features the body adapter reads (0: none)."""

    @property
    def embed_dim(self) -> int:
        """Channels (0 when the model has no such features)."""
        ...


class BodyModelConfig(Protocol):
    """What the dual path reads of a body model's config."""

    @property
    def name(self) -> str:
        """Registered variant name."""
        ...

    @property
    def preprocessing(self) -> WholeBodyPreprocessing:
        """The crop the model wants (size, aspect, scale around the person box)."""
        ...

    @property
    def encoder(self) -> EncoderWidth:
        """Width of the hand features for the body adapter."""
        ...


class BodyPathModel(Protocol):
    """A body model the dual path can drive (an nn.Module in practice)."""

    @property
    def config(self) -> BodyModelConfig:
        """Name, crop contract and feature width."""
        ...

    def run_stages(self, crops: Tensor) -> Any:
        """Everything before the body pose is converted; ``.body_pose_6d`` (B, 22, 6)."""
        ...

    def assemble(self, stages: Any, body_pose_6d: Tensor) -> WholeBodyOutput:
        """The outputs from (possibly offset) interleaved 6D body rotations."""
        ...
