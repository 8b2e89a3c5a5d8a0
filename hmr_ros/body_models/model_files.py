"""Find the licensed SMPL-X and MANO model files in the user's body-model folder.

hmr_ros never downloads these files: users register on the SMPL-X and MANO websites, accept the
licences and put the files in one folder (README, section 'Body models'). This module maps that
folder to file paths and, when something is missing, raises an error that names the expected
file, every place searched and where to get it.

Accepted layouts (the first match wins):

    folder/SMPLX_NEUTRAL.npz         folder/MANO_RIGHT.pkl      folder/MANO_LEFT.pkl
    folder/smplx/SMPLX_NEUTRAL.npz   folder/mano/MANO_RIGHT.pkl  (the `smplx.create` layout)

SMPL-X files may be `.npz` (preferred) or `.pkl`. MANO files are pickles: only use files from
the MANO website (see `hmr_ros.body_models.synthetic` for why).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from hmr_ros.body_models.joint_names import Side

README_SECTION = 'Body models'
SMPLX_WEBSITE = 'https://smpl-x.is.tue.mpg.de'
MANO_WEBSITE = 'https://mano.is.tue.mpg.de'
SMPLX_GENDERS = ('neutral', 'male', 'female')
SMPLX_EXTENSIONS = ('npz', 'pkl')  # in order of preference
SMPLX_SUBFOLDER = 'smplx'
MANO_SUBFOLDER = 'mano'


class BodyModelFileNotFoundError(FileNotFoundError):
    """A body-model file is missing; the message says which, where we looked and how to get it.

    Attributes:
        expected: the missing file names (alternatives for one file, or several files).
        searched: the folders searched, in order.
    """

    def __init__(self, expected: Sequence[str], searched: Sequence[Path], message: str) -> None:
        super().__init__(message)
        self.expected = tuple(expected)
        self.searched = tuple(searched)

    @classmethod
    def for_file(
        cls, names: Sequence[str], searched: Sequence[Path], website: str
    ) -> BodyModelFileNotFoundError:
        """Error for one file that may have any of `names` (e.g. SMPLX_NEUTRAL.npz or .pkl)."""
        alternatives = ' or '.join(names)
        folders = ', '.join(str(folder) for folder in searched)
        return cls(
            names,
            searched,
            f'Body model file {alternatives} not found (searched: {folders}). hmr_ros cannot '
            f'download it: register at {website}, accept the licence, download the model and '
            f'copy {names[0]} into the body-model folder. See the README, section '
            f"'{README_SECTION}'.",
        )

    @classmethod
    def combine(cls, errors: Sequence[BodyModelFileNotFoundError]) -> BodyModelFileNotFoundError:
        """One error listing several missing files, each with its own instructions."""
        expected = [name for error in errors for name in error.expected]
        searched = list(dict.fromkeys(folder for error in errors for folder in error.searched))
        lines = '\n'.join(f'- {error}' for error in errors)
        return cls(expected, searched, f'{len(errors)} body model files are missing:\n{lines}')


def _search_folders(folder: str | Path, subfolder: str) -> tuple[Path, ...]:
    root = Path(folder).expanduser()
    return (root, root / subfolder)


def _find(file_names: Sequence[str], folders: Sequence[Path], website: str) -> Path:
    for candidate_folder in folders:
        for name in file_names:
            path = candidate_folder / name
            if path.is_file():
                return path
    raise BodyModelFileNotFoundError.for_file(file_names, folders, website)


def smplx_file_names(gender: str = 'neutral') -> tuple[str, ...]:
    """Accepted SMPL-X file names for a gender, preferred first: SMPLX_NEUTRAL.npz, ...pkl."""
    if gender.lower() not in SMPLX_GENDERS:
        raise ValueError(f'gender must be one of {", ".join(SMPLX_GENDERS)}; got {gender!r}')
    return tuple(f'SMPLX_{gender.upper()}.{ext}' for ext in SMPLX_EXTENSIONS)


def mano_file_name(side: Side) -> str:
    """MANO file name of one hand: MANO_RIGHT.pkl or MANO_LEFT.pkl."""
    if side not in ('left', 'right'):
        raise ValueError(f"side must be 'left' or 'right', got {side!r}")
    return f'MANO_{side.upper()}.pkl'


def find_smplx_file(folder: str | Path, gender: str = 'neutral') -> Path:
    """Return the SMPL-X model file of `gender` in the body-model folder.

    Args:
        folder: the configured body-model folder (`~` is expanded).
        gender: 'neutral' (what SMPLer-X and hmr_ros use), 'male' or 'female'.

    Returns:
        Path of SMPLX_{GENDER}.npz, or SMPLX_{GENDER}.pkl when there is no .npz.

    Raises:
        BodyModelFileNotFoundError: no such file in `folder` or `folder/smplx`.
        ValueError: unknown gender.
    """
    names = smplx_file_names(gender)
    return _find(names, _search_folders(folder, SMPLX_SUBFOLDER), SMPLX_WEBSITE)


def find_mano_file(folder: str | Path, side: Side = 'right') -> Path:
    """Return MANO_RIGHT.pkl or MANO_LEFT.pkl in the body-model folder.

    Args:
        folder: the configured body-model folder (`~` is expanded).
        side: 'right' (what HaMeR uses) or 'left'.

    Returns:
        Path of the file.

    Raises:
        BodyModelFileNotFoundError: no such file in `folder` or `folder/mano`.
        ValueError: unknown side.
    """
    name = mano_file_name(side)
    return _find((name,), _search_folders(folder, MANO_SUBFOLDER), MANO_WEBSITE)


@dataclass(frozen=True)
class BodyModelFiles:
    """Paths of the model files hmr_ros needs.

    Attributes:
        smplx: SMPL-X model (SMPLX_NEUTRAL.npz by default).
        mano_right: MANO_RIGHT.pkl.
        mano_left: MANO_LEFT.pkl.
    """

    smplx: Path
    mano_right: Path
    mano_left: Path

    @classmethod
    def from_folder(cls, folder: str | Path, gender: str = 'neutral') -> BodyModelFiles:
        """Find all files in one folder.

        Raises:
            BodyModelFileNotFoundError: one or more files are missing; the message lists all of
                them, so one look at the error is enough to fix the folder.
        """
        found: dict[str, Path] = {}
        missing: list[BodyModelFileNotFoundError] = []
        lookups = (
            ('smplx', lambda: find_smplx_file(folder, gender)),
            ('mano_right', lambda: find_mano_file(folder, 'right')),
            ('mano_left', lambda: find_mano_file(folder, 'left')),
        )
        for key, lookup in lookups:
            try:
                found[key] = lookup()
            except BodyModelFileNotFoundError as error:
                missing.append(error)
        if len(missing) == 1:
            raise missing[0]
        if missing:
            raise BodyModelFileNotFoundError.combine(missing)
        return cls(**found)
