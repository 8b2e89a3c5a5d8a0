"""Fixed-size training tensors from canonical samples, and the DataLoader factory.

Two kinds of items, one per adapter (HMR-Adapter section 3.5: the adapters train separately):

- 'body' (whole-body adapter): the person crop of SMPLer-X (box sanitised, grown to the crop
  aspect, then scaled by 1.25; `geometry.crops.body_crop_boxes`), default 512 x 384, with the
  SMPL-X targets, body keypoints in one fixed layout, both hands' keypoints and boxes in crop
  pixels (the body adapter samples hand features at ground-truth MCP keypoints during training).
- 'hand' (hand-expert adapter): HaMeR's square hand crop (keypoint box x 2.0, grown to 3:4,
  squared; `geometry.crops.hand_crop_boxes`), default 256 x 256, one item per hand with a box.
  Left hands are presented as right hands: the whole sample is flipped first
  (`augmentation.flip_sample`), which mirrors the image, the MANO targets and the SMPL-X body,
  so the hand's arm guidance is the mirrored left arm, as the hand adapter expects
  (docs/architecture.md, dataflow step 4). Flip augmentation is therefore not drawn in this mode.

Every item has the same keys and shapes; what a sample lacks is zero with a `has_*` flag, so
batches mix data sets. Crops are cut with `geometry.crops.crop_images` (bilinear, zero border)
from a window of the image around the crop, which gives the same pixels as cropping the whole
image without converting all of it to float. Images are RGB in [0, 1]; per-checkpoint
normalisation (ImageNet statistics for HaMeR, none for SMPLer-X) belongs to the model side.
Augmentation (flip, rotation on the sample; scale on the crop size; colour on the crop) is
drawn with torch's RNG, which the DataLoader seeds per worker and epoch from `seed`; without
workers the dataset's own generator, seeded with `seed`, makes runs repeatable.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, TypedDict, get_args

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, get_worker_info

from hmr_ros.body_models.joint_names import (
    NUM_BODY_JOINTS,
    NUM_HAND_JOINTS,
    NUM_HAND_KEYPOINTS,
    SIDES,
    Side,
)
from hmr_ros.body_models.smplx_layers import (
    MANO_NUM_VERTICES,
    NUM_BETAS,
    NUM_EXPRESSION_COEFFS,
    SMPLX_NUM_VERTICES,
)
from hmr_ros.datasets.augmentation import (
    AugmentationConfig,
    AugmentationParams,
    augment_sample,
    draw_augmentation,
    flip_sample,
    scale_colours,
)
from hmr_ros.datasets.sample import KEYPOINT_LAYOUTS, Sample, layout_names, with_image
from hmr_ros.geometry.crops import (
    apply_affine,
    body_crop_boxes,
    crop_images,
    crop_to_image_affine,
    hand_crop_boxes,
    invert_affine,
)

CropMode = Literal['body', 'hand']
CROP_MODES: tuple[str, ...] = get_args(CropMode)

BODY_CROP_HW = (512, 384)
"""SMPLer-X's person crop (input_img_shape), height x width."""
HAND_CROP_HW = (256, 256)
"""HaMeR's hand crop (MODEL.IMAGE_SIZE)."""

_WINDOW_MARGIN_PX = 2
"""Extra pixels around a crop's footprint so bilinear sampling sees all its neighbours."""


@dataclass(frozen=True)
class LoaderConfig:
    """What the loader produces and how it batches.

    Attributes:
        mode: 'body' (person crops) or 'hand' (hand crops, left hands flipped).
        crop_hw: crop (height, width) pixels; None uses BODY_CROP_HW or HAND_CROP_HW.
        body_keypoint_layout: layout of the items' body keypoints (`sample.KEYPOINT_LAYOUTS`);
            each sample's keypoints are matched into it by name, missing ones get confidence 0.
        augmentation: None for evaluation (no augmentation).
        batch_size: items per batch.
        num_workers: DataLoader worker processes (0 loads in the calling process).
        shuffle: reshuffle every epoch.
        drop_last: drop an incomplete last batch.
        seed: seeds shuffling and augmentation.
        timeout_s: how long to wait for a worker's batch before failing (0 waits forever).
    """

    mode: CropMode = 'body'
    crop_hw: tuple[int, int] | None = None
    body_keypoint_layout: str = 'smplx'
    augmentation: AugmentationConfig | None = None
    batch_size: int = 32
    num_workers: int = 4
    shuffle: bool = True
    drop_last: bool = True
    seed: int = 0
    timeout_s: float = 0.0

    def __post_init__(self) -> None:
        if self.mode not in CROP_MODES:
            raise ValueError(f'mode must be one of {CROP_MODES}; got {self.mode!r}')
        layout_names(self.body_keypoint_layout)
        if self.crop_hw is not None and min(self.crop_hw) < 1:
            raise ValueError(f'crop_hw must be positive; got {self.crop_hw}')
        if self.batch_size < 1 or self.num_workers < 0 or self.timeout_s < 0:
            raise ValueError('batch_size must be >= 1, num_workers and timeout_s >= 0')

    @property
    def out_hw(self) -> tuple[int, int]:
        """The crop size in use."""
        if self.crop_hw is not None:
            return self.crop_hw
        return BODY_CROP_HW if self.mode == 'body' else HAND_CROP_HW


class SMPLXTargets(TypedDict):
    """SMPL-X targets of an item (zeros when has_smplx is False); see `sample.SMPLXParams`."""

    smplx_global_orient_aa: torch.Tensor  # (3,)
    smplx_body_pose_aa: torch.Tensor  # (21, 3)
    smplx_left_hand_pose_aa: torch.Tensor  # (15, 3)
    smplx_right_hand_pose_aa: torch.Tensor  # (15, 3)
    smplx_jaw_pose_aa: torch.Tensor  # (3,)
    smplx_betas: torch.Tensor  # (10,)
    smplx_expression: torch.Tensor  # (10,)
    smplx_transl_m: torch.Tensor  # (3,) camera frame
    has_smplx: torch.Tensor  # () bool


class BodyCropItem(SMPLXTargets):
    """One person crop. Pixel coordinates are crop pixels; 3D is the camera frame, metres.

    Keys beyond SMPLXTargets: image (3, h, w) RGB [0, 1]; crop_to_image (2, 3) affine from crop
    to (augmented) image pixels; intrinsics (3, 3) of the augmented image, has_intrinsics;
    body_keypoints_2d (K, 3) x, y, confidence and body_keypoints_3d (K, 4) in the loader's
    layout; hand_keypoints_2d (2, 21, 3) and hand_keypoints_3d (2, 21, 4), left then right;
    hand_boxes_xyxy (2, 4), has_hand_box (2,); vertices (10475, 3) SMPL-X, has_vertices;
    sample_index () int64 into the sample list.
    """

    image: torch.Tensor
    crop_to_image: torch.Tensor
    intrinsics: torch.Tensor
    has_intrinsics: torch.Tensor
    body_keypoints_2d: torch.Tensor
    body_keypoints_3d: torch.Tensor
    hand_keypoints_2d: torch.Tensor
    hand_keypoints_3d: torch.Tensor
    hand_boxes_xyxy: torch.Tensor
    has_hand_box: torch.Tensor
    vertices: torch.Tensor
    has_vertices: torch.Tensor
    sample_index: torch.Tensor


class HandCropItem(SMPLXTargets):
    """One hand crop, always a right hand (left hands flipped; is_left says which it was).

    Keys beyond SMPLXTargets (the body of the flipped sample for left hands): image (3, h, w);
    crop_to_image (2, 3) to the (flipped, augmented) image; intrinsics (3, 3), has_intrinsics;
    hand_keypoints_2d (21, 3) crop pixels, hand_keypoints_3d (21, 4); mano_global_orient_aa
    (3,), mano_hand_pose_aa (15, 3), mano_betas (10,), has_mano; vertices (778, 3) right MANO,
    has_vertices; is_left () bool; sample_index () int64.
    """

    image: torch.Tensor
    crop_to_image: torch.Tensor
    intrinsics: torch.Tensor
    has_intrinsics: torch.Tensor
    hand_keypoints_2d: torch.Tensor
    hand_keypoints_3d: torch.Tensor
    mano_global_orient_aa: torch.Tensor
    mano_hand_pose_aa: torch.Tensor
    mano_betas: torch.Tensor
    has_mano: torch.Tensor
    vertices: torch.Tensor
    has_vertices: torch.Tensor
    is_left: torch.Tensor
    sample_index: torch.Tensor


def _tensor(value: np.ndarray | None, shape: tuple[int, ...]) -> torch.Tensor:
    if value is None:
        return torch.zeros(shape, dtype=torch.float32)
    return torch.from_numpy(np.array(value, dtype=np.float32)).reshape(shape)


def _flag(value: bool) -> torch.Tensor:
    return torch.tensor(bool(value))


def _smplx_targets(sample: Sample) -> SMPLXTargets:
    params = sample.smplx

    def get(name: str, shape: tuple[int, ...]) -> torch.Tensor:
        return _tensor(None if params is None else getattr(params, name), shape)

    return SMPLXTargets(
        smplx_global_orient_aa=get('global_orient_aa', (3,)),
        smplx_body_pose_aa=get('body_pose_aa', (NUM_BODY_JOINTS, 3)),
        smplx_left_hand_pose_aa=get('left_hand_pose_aa', (NUM_HAND_JOINTS, 3)),
        smplx_right_hand_pose_aa=get('right_hand_pose_aa', (NUM_HAND_JOINTS, 3)),
        smplx_jaw_pose_aa=get('jaw_pose_aa', (3,)),
        smplx_betas=get('betas', (NUM_BETAS,)),
        smplx_expression=get('expression', (NUM_EXPRESSION_COEFFS,)),
        smplx_transl_m=get('transl_m', (3,)),
        has_smplx=_flag(params is not None),
    )


@functools.cache
def _layout_map(source: str, target: str) -> tuple[int, ...]:
    """For each target keypoint name, its index in the source layout or -1."""
    index = {name: i for i, name in enumerate(KEYPOINT_LAYOUTS[source])}
    return tuple(index.get(name, -1) for name in KEYPOINT_LAYOUTS[target])


def _body_keypoints(sample: Sample, target: str, name: str, width: int) -> np.ndarray:
    """Keypoints of field `name` re-ordered into the target layout; missing rows are zero."""
    out = np.zeros((len(KEYPOINT_LAYOUTS[target]), width), dtype=np.float32)
    values = getattr(sample, name)
    if values is None or sample.body_keypoint_layout is None:
        return out
    mapping = np.array(_layout_map(sample.body_keypoint_layout, target))
    found = mapping >= 0
    out[found] = values[mapping[found]]
    return out


def _to_crop(points: np.ndarray, image_to_crop: torch.Tensor) -> torch.Tensor:
    """(K, 2+) image-pixel points with extra columns -> same layout with crop-pixel x, y."""
    moved = torch.from_numpy(np.array(points, dtype=np.float32))
    moved[:, :2] = apply_affine(moved[None, :, :2], image_to_crop[None])[0]
    return moved


def _box_to_crop(box: np.ndarray | None, image_to_crop: torch.Tensor) -> torch.Tensor:
    if box is None:
        return torch.zeros(4)
    corners = _to_crop(np.asarray(box, dtype=np.float32).reshape(2, 2), image_to_crop)
    return torch.cat((corners.amin(dim=0), corners.amax(dim=0)))


def _crop(
    image: np.ndarray, center: torch.Tensor, size: torch.Tensor, out_hw: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Crop (3, h, w) in [0, 1] and its (2, 3) crop-to-image affine.

    Only the window of the image under the crop (plus a margin) is converted and sampled;
    outside the image the crop is zero either way.
    """
    affine = crop_to_image_affine(center[None], size[None], out_hw)[0]
    out_h, out_w = out_hw
    corners = torch.tensor(
        ((0.0, 0.0), (out_w - 1.0, 0.0), (0.0, out_h - 1.0), (out_w - 1.0, out_h - 1.0))
    )
    footprint = apply_affine(corners[None], affine[None])[0]
    height, width = image.shape[:2]
    x0 = max(math.floor(float(footprint[:, 0].min())) - _WINDOW_MARGIN_PX, 0)
    y0 = max(math.floor(float(footprint[:, 1].min())) - _WINDOW_MARGIN_PX, 0)
    x1 = min(math.ceil(float(footprint[:, 0].max())) + _WINDOW_MARGIN_PX + 1, width)
    y1 = min(math.ceil(float(footprint[:, 1].max())) + _WINDOW_MARGIN_PX + 1, height)
    if x1 <= x0 or y1 <= y0:
        return torch.zeros(3, out_h, out_w), affine
    window = torch.from_numpy(np.array(image[y0:y1, x0:x1])).permute(2, 0, 1)
    shift = torch.tensor((float(x0), float(y0)))
    crop = crop_images(window[None], (center - shift)[None], size[None], out_hw)[0]
    return crop / 255.0, affine


class CropDataset(Dataset):
    """Map-style dataset of body or hand crops over canonical samples (see module docstring).

    Args:
        samples: canonical samples (images loaded from image_path on access).
        config: mode, crop size, layout and augmentation.

    Raises:
        ValueError: no sample has a box for the mode.
    """

    def __init__(self, samples: Sequence[Sample], config: LoaderConfig) -> None:
        self.samples = list(samples)
        self.config = config
        self._rng = torch.Generator().manual_seed(config.seed)
        self.items: list[tuple[int, Side | None]] = []
        for index, sample in enumerate(self.samples):
            if config.mode == 'body':
                if sample.person_box_xyxy is not None:
                    self.items.append((index, None))
            else:
                for side in SIDES:
                    if getattr(sample, f'{side}_hand_box_xyxy') is not None:
                        self.items.append((index, side))
        if not self.items:
            wanted = 'person_box_xyxy' if config.mode == 'body' else 'a hand box'
            raise ValueError(f'no sample has {wanted}; nothing to load in {config.mode} mode')

    def __len__(self) -> int:
        return len(self.items)

    def _draw(self) -> AugmentationParams:
        if self.config.augmentation is None:
            return AugmentationParams()
        # Workers draw from torch's RNG, which the DataLoader seeds per worker and epoch; in
        # the calling process the dataset's own generator keeps runs reproducible.
        in_worker = get_worker_info() is not None
        params = draw_augmentation(self.config.augmentation, None if in_worker else self._rng)
        if self.config.mode == 'hand':
            # Every hand is shown as a right hand, so a flip would be undone (module docstring).
            params = AugmentationParams(
                False, params.rotation_rad, params.scale, params.colour_factors
            )
        return params

    def __getitem__(self, item: int) -> BodyCropItem | HandCropItem:
        index, side = self.items[item]
        params = self._draw()
        sample = with_image(self.samples[index])
        if side == 'left':
            sample = flip_sample(sample)
        sample = augment_sample(sample, params)
        if side is None:
            return self._body_item(sample, index, params)
        return self._hand_item(sample, index, params, is_left=side == 'left')

    def _common(
        self, sample: Sample, center: torch.Tensor, size: torch.Tensor, params: AugmentationParams
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        assert sample.image is not None  # loaded by __getitem__
        crop, crop_to_image = _crop(sample.image, center, size * params.scale, self.config.out_hw)
        crop = scale_colours(crop, params.colour_factors)
        return crop, crop_to_image, invert_affine(crop_to_image[None])[0]

    def _body_item(self, sample: Sample, index: int, params: AugmentationParams) -> BodyCropItem:
        out_h, out_w = self.config.out_hw
        box = torch.from_numpy(np.array(sample.person_box_xyxy, dtype=np.float32))[None]
        centers, sizes = body_crop_boxes(
            box,
            aspect_wh=(float(out_w), float(out_h)),
            image_wh=torch.tensor(sample.image_size_wh),
        )
        image, crop_to_image, image_to_crop = self._common(sample, centers[0], sizes[0], params)
        layout = self.config.body_keypoint_layout
        body_2d = _to_crop(
            _body_keypoints(sample, layout, 'body_keypoints_2d_px', 3), image_to_crop
        )
        body_3d = torch.from_numpy(_body_keypoints(sample, layout, 'body_keypoints_3d_cam_m', 4))
        hands_2d, hands_3d, boxes = [], [], []
        for side in SIDES:
            keypoints = getattr(sample, f'{side}_hand_keypoints_2d_px')
            hands_2d.append(
                torch.zeros(NUM_HAND_KEYPOINTS, 3)
                if keypoints is None
                else _to_crop(keypoints, image_to_crop)
            )
            hands_3d.append(
                _tensor(
                    getattr(sample, f'{side}_hand_keypoints_3d_cam_m'), (NUM_HAND_KEYPOINTS, 4)
                )
            )
            boxes.append(_box_to_crop(getattr(sample, f'{side}_hand_box_xyxy'), image_to_crop))
        smplx_vertices = sample.vertices_model == 'smplx'
        return BodyCropItem(
            **_smplx_targets(sample),
            image=image,
            crop_to_image=crop_to_image,
            intrinsics=_tensor(sample.intrinsics, (3, 3)),
            has_intrinsics=_flag(sample.intrinsics is not None),
            body_keypoints_2d=body_2d,
            body_keypoints_3d=body_3d,
            hand_keypoints_2d=torch.stack(hands_2d),
            hand_keypoints_3d=torch.stack(hands_3d),
            hand_boxes_xyxy=torch.stack(boxes),
            has_hand_box=torch.tensor(
                [getattr(sample, f'{side}_hand_box_xyxy') is not None for side in SIDES]
            ),
            vertices=_tensor(
                sample.vertices_cam_m if smplx_vertices else None, (SMPLX_NUM_VERTICES, 3)
            ),
            has_vertices=_flag(smplx_vertices),
            sample_index=torch.tensor(index),
        )

    def _hand_item(
        self, sample: Sample, index: int, params: AugmentationParams, is_left: bool
    ) -> HandCropItem:
        box = torch.from_numpy(np.array(sample.right_hand_box_xyxy, dtype=np.float32))[None]
        centers, sides = hand_crop_boxes(box)
        image, crop_to_image, image_to_crop = self._common(sample, centers[0], sides[0], params)
        keypoints = sample.right_hand_keypoints_2d_px
        mano = sample.right_mano
        mano_vertices = sample.vertices_model == 'mano_right'
        return HandCropItem(
            **_smplx_targets(sample),
            image=image,
            crop_to_image=crop_to_image,
            intrinsics=_tensor(sample.intrinsics, (3, 3)),
            has_intrinsics=_flag(sample.intrinsics is not None),
            hand_keypoints_2d=(
                torch.zeros(NUM_HAND_KEYPOINTS, 3)
                if keypoints is None
                else _to_crop(keypoints, image_to_crop)
            ),
            hand_keypoints_3d=_tensor(
                sample.right_hand_keypoints_3d_cam_m, (NUM_HAND_KEYPOINTS, 4)
            ),
            mano_global_orient_aa=_tensor(None if mano is None else mano.global_orient_aa, (3,)),
            mano_hand_pose_aa=_tensor(
                None if mano is None else mano.hand_pose_aa, (NUM_HAND_JOINTS, 3)
            ),
            mano_betas=_tensor(None if mano is None else mano.betas, (NUM_BETAS,)),
            has_mano=_flag(mano is not None),
            vertices=_tensor(
                sample.vertices_cam_m if mano_vertices else None, (MANO_NUM_VERTICES, 3)
            ),
            has_vertices=_flag(mano_vertices),
            is_left=_flag(is_left),
            sample_index=torch.tensor(index),
        )


def _init_worker(worker_id: int) -> None:
    """Keep each worker single-threaded: the workers are the parallelism."""
    del worker_id
    cv2.setNumThreads(0)
    torch.set_num_threads(1)


def make_data_loader(samples: Sequence[Sample], config: LoaderConfig) -> DataLoader:
    """A DataLoader of `CropDataset(samples, config)` batches (dicts of stacked tensors).

    Args:
        samples: canonical samples.
        config: mode, crop, augmentation, batching, workers and seed.

    Returns:
        torch DataLoader; worker processes are started when iteration begins.
    """
    return DataLoader(
        CropDataset(samples, config),
        batch_size=config.batch_size,
        shuffle=config.shuffle,
        num_workers=config.num_workers,
        drop_last=config.drop_last,
        generator=torch.Generator().manual_seed(config.seed),
        worker_init_fn=_init_worker if config.num_workers > 0 else None,
        timeout=config.timeout_s if config.num_workers > 0 else 0.0,
    )
