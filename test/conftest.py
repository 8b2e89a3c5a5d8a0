"""Shared pytest fixtures: generated body-model files, body-model layers, per-test seeding.

The SMPL-X and MANO files are synthetic stand-ins (hmr_ros.body_models.synthetic), written once
per test session; nothing is downloaded. This file must not import rclpy.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from hmr_ros.body_models.smplx_layers import MANOHandModel, SMPLXBodyModel
from hmr_ros.body_models.synthetic import write_body_model_files

TEST_SEED = 0


@pytest.fixture(scope='session')
def body_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder with SMPLX_NEUTRAL.npz, MANO_RIGHT.pkl, MANO_LEFT.pkl and mano_mean_params.npz."""
    return write_body_model_files(tmp_path_factory.mktemp('body_models'), seed=TEST_SEED)


@pytest.fixture(scope='session')
def smplx_body_model(body_model_dir: Path) -> SMPLXBodyModel:
    """SMPL-X layer on the synthetic SMPLX_NEUTRAL.npz (CPU, eval). Shared: do not modify it."""
    return SMPLXBodyModel.from_folder(body_model_dir).eval()


@pytest.fixture(scope='session')
def mano_hand_model(body_model_dir: Path) -> MANOHandModel:
    """Right-hand MANO layer on the synthetic MANO_RIGHT.pkl (CPU, eval). Shared: do not modify."""
    return MANOHandModel.from_folder(body_model_dir, side='right').eval()


@pytest.fixture(autouse=True)
def torch_seed() -> int:
    """Seed torch, numpy and random before every test, so each test is reproducible alone."""
    torch.manual_seed(TEST_SEED)
    np.random.seed(TEST_SEED)
    random.seed(TEST_SEED)
    return TEST_SEED
