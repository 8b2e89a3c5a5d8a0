"""Every data-set converter under one name, and what a converted index holds.

`CONVERTERS` maps the names `hmr-ros data convert` takes to a function reading that data set's
published layout (the modules of this package say which layout and which official loader they
follow). `summarize_index` reads a converted `.npz` index and says what it can be used for: how
many person crops (body adapter, whole-body evaluation), hand crops (hand adapter), how many of
those carry a body pose (the hand adapter's guidance), 2D MCP keypoints (the body adapter's
sampling points), which ground truth the evaluation can compare with, and whether the image
files are where the index says.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hmr_ros.body_models.joint_names import OPENPOSE_HAND_JOINT_NAMES, SIDES
from hmr_ros.body_models.smplx_layers import MANOHandModel, SMPLXBodyModel
from hmr_ros.datasets.sample import SMPL_LAYOUT, Sample, load_index

__all__ = ['CONVERTERS', 'ConverterSpec', 'IndexSummary', 'convert', 'summarize_index']

_MCP_ROWS = [
    OPENPOSE_HAND_JOINT_NAMES.index(f'{f}1') for f in ('index', 'middle', 'ring', 'pinky')
]


@dataclass(frozen=True)
class ConverterSpec:
    """One data set's converter.

    Attributes:
        splits: split names it reads (the first is the default).
        needs: 'smplx' (an SMPL-X body model), 'mano' (MANO hand means) or '' (nothing).
        read: (root, split, models, options) -> samples.
        source: where the data comes from, for messages (docs/datasets.md has the licences).
    """

    splits: tuple[str, ...]
    needs: str
    read: Callable[[Path, str, Any, dict[str, Any]], list[Sample]]
    source: str


def _humandata(name: str) -> Callable[[Path, str, Any, dict[str, Any]], list[Sample]]:
    def read(root: Path, split: str, body_model: Any, options: dict[str, Any]) -> list[Sample]:
        from hmr_ros.datasets.humandata import (
            ARCTIC_EGOCENTRIC_VIEW,
            ARCTIC_TEST_SAMPLE_INTERVAL,
            HUMANDATA_FILES,
            convert_humandata,
        )

        npz = options.get('annotation') or (
            root / 'preprocessed_datasets' / HUMANDATA_FILES[name][split]
        )
        interval = options.get('sample_interval') or (
            ARCTIC_TEST_SAMPLE_INTERVAL if (name, split) == ('ARCTIC', 'test') else 1
        )
        views = (ARCTIC_EGOCENTRIC_VIEW,) if name == 'ARCTIC' and split == 'test' else ()
        if name == 'ARCTIC' and options.get('keep_egocentric'):
            views = ()
        return convert_humandata(
            npz, root / name, body_model, name, sample_interval=interval, exclude_views=views
        )

    return read


def _interhand(root: Path, split: str, means: Any, options: dict[str, Any]) -> list[Sample]:
    from hmr_ros.datasets.interhand import convert_interhand

    return convert_interhand(root, means, split, options.get('annotation_subset', ''))


def _human36m(root: Path, split: str, body_model: Any, options: dict[str, Any]) -> list[Sample]:
    from hmr_ros.datasets.human36m import convert_human36m

    return convert_human36m(root, body_model, split, frame_step=options.get('sample_interval'))


def _threedpw(root: Path, split: str, models: Any, options: dict[str, Any]) -> list[Sample]:
    from hmr_ros.datasets.threedpw import convert_3dpw

    return convert_3dpw(root, split)


def _agora(root: Path, split: str, models: Any, options: dict[str, Any]) -> list[Sample]:
    from hmr_ros.datasets.agora import convert_agora

    return convert_agora(
        root,
        split,
        resolution=options.get('resolution') or '3840x2160',
        include_kids=bool(options.get('include_kids')),
        annotation=options.get('annotation', ''),
        sample_interval=options.get('sample_interval') or 1,
    )


def _freihand(root: Path, split: str, means: Any, options: dict[str, Any]) -> list[Sample]:
    from hmr_ros.datasets.freihand import convert_freihand

    return convert_freihand(root, means['right'], 'training' if split == 'train' else split)


def _ehf(root: Path, split: str, models: Any, options: dict[str, Any]) -> list[Sample]:
    from hmr_ros.datasets.ehf import convert_ehf

    return convert_ehf(root)


CONVERTERS: dict[str, ConverterSpec] = {
    'ARCTIC': ConverterSpec(
        ('test', 'train'),
        'smplx',
        _humandata('ARCTIC'),
        "SMPLer-X's preprocessed HumanData (p1_val.npz / p1_train.npz)",
    ),
    'BEDLAM': ConverterSpec(
        ('train',),
        'smplx',
        _humandata('BEDLAM'),
        "SMPLer-X's preprocessed HumanData (bedlam_train.npz)",
    ),
    'RICH': ConverterSpec(
        ('train',),
        'smplx',
        _humandata('RICH'),
        "SMPLer-X's preprocessed HumanData (rich_train.npz)",
    ),
    'Human3.6M': ConverterSpec(
        ('train', 'test'), 'smplx', _human36m, 'Human3.6M images + SMPL-X NeuralAnnot annotations'
    ),
    'InterHand2.6M': ConverterSpec(
        ('train', 'val', 'test'),
        'mano',
        _interhand,
        'InterHand2.6M release (images/, annotations/)',
    ),
    '3DPW': ConverterSpec(
        ('test', 'train', 'validation'),
        '',
        _threedpw,
        '3DPW release (imageFiles/, sequenceFiles/)',
    ),
    'AGORA': ConverterSpec(
        ('validation', 'train'),
        '',
        _agora,
        'AGORA camera dataframes with SMPL-X joints and vertices (<split>_SMPLX/SMPLX/*.pkl)',
    ),
    'FreiHAND': ConverterSpec(('train', 'evaluation'), 'mano', _freihand, 'FreiHAND release'),
    'EHF': ConverterSpec(('test',), '', _ehf, 'EHF release (the SMPL-X website)'),
}
"""Converter of each data set, by the name the paper's tables use."""


def convert(
    name: str,
    root: str | Path,
    split: str = '',
    body_model_dir: str | Path = '',
    **options: Any,
) -> list[Sample]:
    """Convert one split of a named data set.

    Args:
        name: a key of CONVERTERS.
        root: the data set's folder in its published layout.
        split: one of the converter's splits ('' = its first).
        body_model_dir: folder of SMPLX_NEUTRAL.npz / MANO_{RIGHT,LEFT}.pkl when needed.
        options: converter options (annotation, sample_interval, keep_egocentric,
            annotation_subset; AGORA: resolution, include_kids).

    Raises:
        KeyError: unknown name.
        ValueError: unknown split, or a body model is needed and not given.
    """
    if name not in CONVERTERS:
        raise KeyError(f'unknown data set {name!r}; known: {", ".join(CONVERTERS)}')
    spec = CONVERTERS[name]
    split = split or spec.splits[0]
    if split not in spec.splits:
        raise ValueError(f'{name} splits are {spec.splits}; got {split!r}')
    models: Any = None
    if spec.needs:
        if not body_model_dir:
            raise ValueError(f'{name} needs the body models: give body_model_dir')
        if spec.needs == 'smplx':
            models = SMPLXBodyModel.from_folder(body_model_dir)
        else:
            models = {
                side: MANOHandModel.from_folder(body_model_dir, side)
                .hands_mean.detach()
                .cpu()
                .numpy()
                for side in SIDES
            }
    return spec.read(Path(root), split, models, options)


@dataclass
class IndexSummary:
    """What one converted index holds (see the module docstring)."""

    path: Path
    samples: int
    datasets: dict[str, int]
    fields: dict[str, int]
    person_crops: int
    hand_crops: int
    hand_crops_with_body_pose: int
    persons_with_mcp_keypoints: int
    ground_truth: dict[str, int]
    missing_images: int
    checked_images: int
    layouts: dict[str, int] = field(default_factory=dict)

    def lines(self) -> list[str]:
        """Human-readable report."""
        datasets = ', '.join(f'{name} {count}' for name, count in self.datasets.items())
        fields = ', '.join(f'{name} {count}' for name, count in sorted(self.fields.items()))
        truth = ', '.join(f'{k} {v}' for k, v in self.ground_truth.items()) or 'none'
        layouts = ', '.join(f'{k} {v}' for k, v in self.layouts.items()) or 'none'
        return [
            f'{self.path}: {self.samples} samples ({datasets})',
            f'  fields: {fields}',
            f'  body keypoint layouts: {layouts}',
            f'  body adapter: {self.person_crops} person crops, '
            f'{self.persons_with_mcp_keypoints} with 2D MCP keypoints of both hands',
            f'  hand adapter: {self.hand_crops} hand crops, {self.hand_crops_with_body_pose} '
            'with a body pose (guidance); the rest train with zero guidance',
            f'  evaluation ground truth: {truth}',
            f'  images: {self.missing_images} of {self.checked_images} checked are missing',
        ]


def _has_mcp(sample: Sample) -> bool:
    for side in SIDES:
        keypoints = getattr(sample, f'{side}_hand_keypoints_2d_px')
        if keypoints is None or not (np.asarray(keypoints)[_MCP_ROWS, 2] > 0).all():
            return False
    return True


def summarize_index(
    path: str | Path, image_root: str | Path | None = None, check_images: int = 100
) -> IndexSummary:
    """Summarize a converted index.

    Args:
        path: the `.npz` index.
        image_root: where the images are now (None = the stored root).
        check_images: how many image paths to test for existence, spread over the index
            (0 = none, -1 = all).
    """
    samples = load_index(path, image_root)
    fields: Counter[str] = Counter()
    for sample in samples:
        fields.update(sample.present - {'image_path'})
    hand_crops = sum(
        getattr(s, f'{side}_hand_box_xyxy') is not None for s in samples for side in SIDES
    )
    guided = sum(
        getattr(s, f'{side}_hand_box_xyxy') is not None and s.smplx is not None
        for s in samples
        for side in SIDES
    )
    truth: Counter[str] = Counter()
    for sample in samples:
        if sample.smplx is not None or sample.vertices_model == 'smplx':
            truth['SMPL-X mesh (whole-body metrics)'] += 1
        elif (
            sample.body_keypoint_layout == SMPL_LAYOUT
            and sample.body_keypoints_3d_cam_m is not None
        ):
            truth['SMPL joints (3DPW body metrics)'] += 1
        if sample.left_mano is not None or sample.right_mano is not None:
            truth['MANO hands (hand metrics)'] += 1
    count = len(samples)
    if check_images < 0 or check_images >= count:
        picked: Sequence[Sample] = samples
    elif check_images == 0:
        picked = []
    else:
        picked = [samples[i] for i in np.linspace(0, count - 1, check_images).astype(int)]
    missing = sum(not Path(str(s.image_path)).is_file() for s in picked)
    return IndexSummary(
        path=Path(path),
        samples=count,
        datasets=dict(Counter(s.dataset for s in samples)),
        fields=dict(fields),
        person_crops=sum(s.person_box_xyxy is not None for s in samples),
        hand_crops=hand_crops,
        hand_crops_with_body_pose=guided,
        persons_with_mcp_keypoints=sum(
            s.person_box_xyxy is not None and _has_mcp(s) for s in samples
        ),
        ground_truth=dict(truth),
        missing_images=missing,
        checked_images=len(picked),
        layouts=dict(Counter(s.body_keypoint_layout for s in samples if s.body_keypoint_layout)),
    )
