"""pip installation of the ROS-free core (models, geometry, training, command line).

A colcon build uses package.xml and CMakeLists.txt instead; this file is for `pip install -e .`.
torch is not pinned here: the bootstrap (tools/bootstrap.sh) pins the CPU build where there is no
GPU, and Jetson/desktop users keep the torch build that matches their CUDA.
"""

from setuptools import find_packages, setup

setup(
    name='hmr_ros',
    version='0.1.0',
    description='Real-time SMPL-X human mesh recovery (HMR-Adapter: SMPLer-X + HaMeR) for ROS 2',
    license='Apache-2.0',
    python_requires='>=3.10',
    packages=find_packages(include=['hmr_ros', 'hmr_ros.*']),
    package_data={'hmr_ros': ['py.typed']},
    install_requires=[
        'numpy>=1.24',
        'torch>=2.1',
        'smplx>=0.1.28',
        'safetensors>=0.4',
        'pyyaml>=6.0',
        'opencv-python-headless>=4.8',
        'tqdm>=4.60',
    ],
    extras_require={
        'dev': ['pytest>=7', 'ruff>=0.6', 'mypy>=1.10', 'types-PyYAML'],
        'onnx': ['onnx', 'onnxruntime'],
        'train': ['tensorboard>=2.14'],
    },
    entry_points={'console_scripts': ['hmr-ros = hmr_ros.cli.main:main']},
)
