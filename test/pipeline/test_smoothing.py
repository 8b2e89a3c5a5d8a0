"""Tests for hmr_ros.pipeline.smoothing: One-Euro on arrays and quaternions, per-track bank."""

import math

import numpy as np
import pytest

from hmr_ros.pipeline.smoothing import (
    BODY_SMOOTHING,
    HAND_SMOOTHING,
    OneEuroConfig,
    OneEuroFilter,
    PersonSmoother,
    QuaternionOneEuroFilter,
    ReferencePersonSmoother,
    TrackFilterBank,
    smoothing_factor,
)
from hmr_ros.pipeline.tracking import Track, TrackState

RATE_HZ = 30.0
FRAME_S = 1.0 / RATE_HZ


class ScalarOneEuro:
    """Reference scalar One-Euro filter written straight from the paper's four equations."""

    def __init__(self, min_cutoff_hz: float, beta: float, d_cutoff_hz: float) -> None:
        self.params = (min_cutoff_hz, beta, d_cutoff_hz)
        self.x_hat: float | None = None
        self.dx_hat = 0.0
        self.t_prev = 0.0

    @staticmethod
    def alpha(te: float, fc: float) -> float:
        tau = 1.0 / (2.0 * math.pi * fc)
        return 1.0 / (1.0 + tau / te)

    def __call__(self, x: float, t: float) -> float:
        if self.x_hat is None:
            self.x_hat, self.t_prev = x, t
            return x
        min_cutoff, beta, d_cutoff = self.params
        te = t - self.t_prev
        a_d = self.alpha(te, d_cutoff)
        self.dx_hat = a_d * (x - self.x_hat) / te + (1 - a_d) * self.dx_hat
        a = self.alpha(te, min_cutoff + beta * abs(self.dx_hat))
        self.x_hat = a * x + (1 - a) * self.x_hat
        self.t_prev = t
        return self.x_hat


def quaternion_about_z(angle_rad: float) -> np.ndarray:
    return np.array([0.0, 0.0, math.sin(angle_rad / 2), math.cos(angle_rad / 2)])


def random_quaternions(rng: np.random.Generator, count: int) -> np.ndarray:
    q = rng.normal(size=(count, 4))
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def rotation_angle_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle, radians, of the rotation taking a to b (sign-insensitive).

    For unit quaternions at angle phi as 4-vectors, |a - b| = 2 sin(phi / 2) and
    |a + b| = 2 cos(phi / 2); the rotation angle is 2 phi. atan2 stays accurate near 0, where
    arccos of the dot product loses half the digits.
    """
    b = np.where(np.sum(a * b, axis=-1, keepdims=True) < 0.0, -b, b)
    return 4.0 * np.arctan2(np.linalg.norm(a - b, axis=-1), np.linalg.norm(a + b, axis=-1))


def test_presets_follow_ros_interface_5_6() -> None:
    assert BODY_SMOOTHING == OneEuroConfig(1.0, 0.05, 1.0) == OneEuroConfig()
    assert HAND_SMOOTHING == OneEuroConfig(2.0, 0.3, 1.0)


@pytest.mark.parametrize(
    'changes', [{'min_cutoff_hz': 0.0}, {'d_cutoff_hz': -1.0}, {'beta': -0.1}, {'beta': math.inf}]
)
def test_config_rejects_bad_values(changes: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(changes))):
        OneEuroConfig(**changes)


def test_smoothing_factor_matches_the_formula() -> None:
    """fc = 1 Hz, Te = 1/30 s: tau = 1/(2 pi) = 0.159 s, alpha = 1/(1 + 4.775) = 0.1732."""
    assert smoothing_factor(FRAME_S, 1.0) == pytest.approx(1.0 / (1.0 + RATE_HZ / (2 * math.pi)))
    assert smoothing_factor(FRAME_S, 1.0) == pytest.approx(0.1732, abs=1e-4)


def test_constant_signal_stays_constant() -> None:
    value = np.array([[1.5, -2.0, 3.25], [0.0, 7.0, -1.0]])
    one_euro = OneEuroFilter(HAND_SMOOTHING)
    for frame in range(50):
        np.testing.assert_array_equal(one_euro.filter(value, frame * FRAME_S), value)


def test_vectorised_filter_matches_the_scalar_reference_with_irregular_stamps() -> None:
    rng = np.random.default_rng(0)
    samples = rng.normal(size=(60, 3)).cumsum(axis=0)
    stamps = np.cumsum(rng.uniform(0.01, 0.08, size=60))
    config = OneEuroConfig(1.5, 0.4, 2.0)
    one_euro = OneEuroFilter(config)
    references = [ScalarOneEuro(1.5, 0.4, 2.0) for _ in range(3)]
    for sample, stamp in zip(samples, stamps, strict=True):
        out = one_euro.filter(sample, float(stamp))
        expected = [ref(float(x), float(stamp)) for ref, x in zip(references, sample, strict=True)]
        np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)


def steps_to_reach(beta: float, fraction: float = 0.9) -> int:
    """Samples after a unit step until the output reaches `fraction` of it."""
    one_euro = OneEuroFilter(OneEuroConfig(min_cutoff_hz=1.0, beta=beta, d_cutoff_hz=1.0))
    one_euro.filter(np.zeros(1), 0.0)
    for frame in range(1, 300):
        if one_euro.filter(np.ones(1), frame * FRAME_S)[0] >= fraction:
            return frame
    return 300


def test_higher_beta_lags_a_step_less() -> None:
    """With beta = 0 it is a 1 Hz low pass: alpha = 0.173, 1 - 0.827^n >= 0.9 from n = 13.

    (log(0.1) / log(0.827) = 12.1.) A higher beta raises the cutoff while the step is moving.
    """
    lags = [steps_to_reach(beta) for beta in (0.0, 0.05, 0.5, 5.0)]
    assert lags[0] == 13
    assert lags[0] == math.ceil(math.log(0.1) / math.log(1 - smoothing_factor(FRAME_S, 1.0)))
    assert lags == sorted(lags, reverse=True)
    assert lags[-1] < lags[0] / 2


def test_slow_sinusoid_passes_and_fast_noise_is_attenuated() -> None:
    """0.1 Hz sine (amplitude 1) plus white noise (sigma 0.05), sampled at 30 Hz, body preset.

    At 1 Hz cutoff a first-order low pass keeps a 0.1 Hz sine within about 10 % of its
    amplitude (gain 0.995, phase lag 5.7 deg). White noise variance is scaled by
    alpha / (2 - alpha) = 0.095 for alpha = 0.173; the speed term raises the cutoff a little.
    """
    rng = np.random.default_rng(1)
    stamps = np.arange(600) * FRAME_S
    clean = np.sin(2 * math.pi * 0.1 * stamps)
    noise = rng.normal(scale=0.05, size=stamps.shape)
    one_euro = OneEuroFilter(BODY_SMOOTHING)
    clean_out = np.array([one_euro.filter(x, t) for x, t in zip(clean, stamps, strict=True)])
    settled = slice(60, None)
    assert np.max(np.abs(clean_out[settled] - clean[settled])) < 0.12

    one_euro.reset()
    noisy_out = np.array(
        [one_euro.filter(x, t) for x, t in zip(clean + noise, stamps, strict=True)]
    )
    residual = noisy_out[settled] - clean_out[settled]
    variance_ratio = np.var(residual) / np.var(noise[settled])
    assert variance_ratio < 0.15


def test_config_change_takes_effect_on_the_next_sample_and_keeps_state() -> None:
    """Compare with the scalar reference switched to the new parameters at the same sample."""
    rng = np.random.default_rng(2)
    samples = rng.normal(size=30).cumsum()
    one_euro = OneEuroFilter(OneEuroConfig(1.0, 0.0, 1.0))
    reference = ScalarOneEuro(1.0, 0.0, 1.0)
    for frame, x in enumerate(samples):
        if frame == 15:
            one_euro.set_config(OneEuroConfig(5.0, 2.0, 3.0))
            reference.params = (5.0, 2.0, 3.0)
        out = one_euro.filter(np.array([x]), frame * FRAME_S)
        assert out[0] == pytest.approx(reference(float(x), frame * FRAME_S), abs=1e-12)
        if frame == 15:
            assert out[0] != pytest.approx(float(x))  # state kept: not a restart


def test_stamps_repeated_or_going_back() -> None:
    one_euro = OneEuroFilter()
    one_euro.filter(np.array([0.0]), 1.0)
    first = one_euro.filter(np.array([1.0]), 1.1)
    np.testing.assert_array_equal(one_euro.filter(np.array([5.0]), 1.1), first)
    np.testing.assert_array_equal(one_euro.filter(np.array([9.0]), 0.5), [9.0])  # restart


def test_filter_rejects_bad_samples() -> None:
    one_euro = OneEuroFilter()
    with pytest.raises(ValueError, match='finite'):
        one_euro.filter(np.array([np.nan]), 0.0)
    one_euro.filter(np.zeros(3), 0.0)
    with pytest.raises(ValueError, match='reset'):
        one_euro.filter(np.zeros(4), FRAME_S)
    with pytest.raises(ValueError, match='stamp_s'):
        one_euro.filter(np.zeros(3), math.nan)
    output = one_euro.filter(np.zeros(3), FRAME_S)
    output[:] = 99.0  # the caller owns the returned array
    assert one_euro.filter(np.zeros(3), 2 * FRAME_S)[0] == 0.0


def test_quaternion_filter_about_a_fixed_axis_equals_the_scalar_filter_on_the_angle() -> None:
    rng = np.random.default_rng(3)
    angles = 0.3 * rng.normal(size=40).cumsum()
    config = OneEuroConfig(1.0, 0.7, 1.5)
    quaternion_filter = QuaternionOneEuroFilter(config)
    reference = ScalarOneEuro(1.0, 0.7, 1.5)
    for frame, angle in enumerate(angles):
        out = quaternion_filter.filter(quaternion_about_z(angle), frame * FRAME_S)
        expected = quaternion_about_z(reference(float(angle), frame * FRAME_S))
        assert rotation_angle_between(out, expected) < 1e-7


def test_quaternion_filter_keeps_unit_norm_and_converges_to_a_constant_rotation() -> None:
    rng = np.random.default_rng(4)
    start = random_quaternions(rng, 5)
    target = random_quaternions(rng, 5)
    quaternion_filter = QuaternionOneEuroFilter(HAND_SMOOTHING)
    quaternion_filter.filter(start, 0.0)
    errors = []
    for frame in range(1, 120):
        out = quaternion_filter.filter(target * 3.0, frame * FRAME_S)  # non-unit input
        np.testing.assert_allclose(np.linalg.norm(out, axis=-1), 1.0, atol=1e-12)
        errors.append(rotation_angle_between(out, target).max())
    assert errors[0] > 0.1
    assert errors[-1] < 1e-4
    assert np.all(np.diff(errors) <= 1e-12)


def test_quaternion_sign_flips_change_nothing() -> None:
    """q and -q are one rotation: flipping every other sample's sign must not change the output.

    Checked on a smooth random path of 3 rotations, then on a constant rotation, which must
    produce no motion at all.
    """
    rng = np.random.default_rng(5)
    start_q = random_quaternions(rng, 3)
    direction = rng.normal(size=(3, 4))
    plain = QuaternionOneEuroFilter(HAND_SMOOTHING)
    flipped = QuaternionOneEuroFilter(HAND_SMOOTHING)
    for frame in range(30):
        q = start_q + 0.03 * frame * direction
        q /= np.linalg.norm(q, axis=-1, keepdims=True)
        sign = -1.0 if frame % 2 else 1.0
        a = plain.filter(q, frame * FRAME_S)
        b = flipped.filter(sign * q, frame * FRAME_S)
        assert rotation_angle_between(a, b).max() < 1e-9
    constant = QuaternionOneEuroFilter()
    for frame in range(10):
        out = constant.filter((-1.0) ** frame * start_q, frame * FRAME_S)
        assert rotation_angle_between(out, start_q).max() < 1e-12


def test_quaternion_filter_takes_the_short_way_round() -> None:
    """From 170 deg to -170 deg about z is a 20 deg step, not 340 deg."""
    quaternion_filter = QuaternionOneEuroFilter(OneEuroConfig(1.0, 0.0, 1.0))
    quaternion_filter.filter(quaternion_about_z(math.radians(170)), 0.0)
    out = quaternion_filter.filter(quaternion_about_z(math.radians(-170)), FRAME_S)
    moved = rotation_angle_between(out, quaternion_about_z(math.radians(170)))
    assert moved == pytest.approx(smoothing_factor(FRAME_S, 1.0) * math.radians(20), rel=1e-6)


def test_quaternion_filter_rejects_bad_input() -> None:
    quaternion_filter = QuaternionOneEuroFilter()
    with pytest.raises(ValueError, match=r'\(\.\.\., 4\)'):
        quaternion_filter.filter(np.zeros(3), 0.0)
    with pytest.raises(ValueError, match='zero quaternion'):
        quaternion_filter.filter(np.zeros(4), 0.0)


def make_track(track_id: str, state: TrackState) -> Track:
    return Track(track_id, state, (0.0, 0.0, 1.0, 1.0), 0.9, 1, 1, 0.0, (0.0,) * 4, None)


def test_bank_keeps_tracks_independent() -> None:
    bank = TrackFilterBank(OneEuroConfig(1.0, 0.0, 1.0))
    bank.filter('1', 'joints', np.zeros(3), 0.0)
    bank.filter('2', 'joints', np.full(3, 10.0), 0.0)
    alpha = smoothing_factor(FRAME_S, 1.0)
    np.testing.assert_allclose(bank.filter('1', 'joints', np.ones(3), FRAME_S), alpha)
    np.testing.assert_allclose(bank.filter('2', 'joints', np.full(3, 10.0), FRAME_S), 10.0)
    assert bank.track_ids == ('1', '2')


def test_bank_drops_lost_and_vanished_tracks() -> None:
    bank = TrackFilterBank()
    for track_id in ('1', '2', '3'):
        bank.filter(track_id, 'root', np.zeros(3), 0.0)
        bank.filter_rotation(track_id, 'root', quaternion_about_z(0.0), 0.0)
    bank.sync_tracks([make_track('1', TrackState.TRACKED), make_track('2', TrackState.LOST)])
    assert bank.track_ids == ('1',)
    # A dropped id starts fresh: its first sample passes unchanged.
    np.testing.assert_array_equal(bank.filter('3', 'root', np.full(3, 4.0), FRAME_S), 4.0)


def test_bank_resets_a_track_reacquired_after_coasting() -> None:
    bank = TrackFilterBank(OneEuroConfig(1.0, 0.0, 1.0))
    bank.sync_tracks([make_track('1', TrackState.TRACKED)])
    bank.filter('1', 'root', np.zeros(3), 0.0)
    bank.filter_rotation('1', 'orient', quaternion_about_z(0.0), 0.0)
    bank.sync_tracks([make_track('1', TrackState.PREDICTED)])
    bank.sync_tracks([make_track('1', TrackState.PREDICTED)])
    bank.sync_tracks([make_track('1', TrackState.TRACKED)])
    np.testing.assert_array_equal(bank.filter('1', 'root', np.ones(3), 0.2), 1.0)
    reacquired = bank.filter_rotation('1', 'orient', quaternion_about_z(1.0), 0.2)
    assert rotation_angle_between(reacquired, quaternion_about_z(1.0)) < 1e-12
    # Without coasting in between, the state is kept (the output lags).
    bank.sync_tracks([make_track('1', TrackState.TRACKED)])
    assert bank.filter('1', 'root', np.full(3, 2.0), 0.2 + FRAME_S)[0] < 2.0


def test_bank_set_config_reaches_existing_filters_without_losing_state() -> None:
    bank = TrackFilterBank(OneEuroConfig(1.0, 0.0, 1.0))
    bank.filter('1', 'root', np.zeros(1), 0.0)
    bank.filter_rotation('1', 'orient', quaternion_about_z(0.0), 0.0)
    bank.set_config(OneEuroConfig(10.0, 0.0, 1.0))
    alpha = smoothing_factor(FRAME_S, 10.0)
    np.testing.assert_allclose(bank.filter('1', 'root', np.ones(1), FRAME_S), alpha)
    out = bank.filter_rotation('1', 'orient', quaternion_about_z(1.0), FRAME_S)
    assert rotation_angle_between(out, quaternion_about_z(0.0)) == pytest.approx(alpha, rel=1e-9)
    assert bank.config.min_cutoff_hz == 10.0


def test_bank_reset_forgets_everything() -> None:
    bank = TrackFilterBank()
    bank.filter('1', 'root', np.zeros(1), 0.0)
    bank.reset()
    assert bank.track_ids == ()
    np.testing.assert_array_equal(bank.filter('1', 'root', np.ones(1), FRAME_S), 1.0)


# ---------------------------------------------------------------- vectorised person smoother

NUM_JOINTS = 65
NUM_VERTICES = 40
HAND_ROWS = {'left': list(range(25, 46)), 'right': list(range(44, 65))}  # overlap on purpose


def person_values(rng: np.random.Generator, t: float, offset: float, vertices: bool) -> dict:
    """One person's host arrays at time t: a slow sway plus 5 mm / 2 px / 0.02 rad noise."""
    sway = np.array([0.3 * math.sin(1.3 * t), 0.1 * math.cos(0.7 * t), 2.0 + offset])

    def noisy(shape: tuple[int, ...], scale: float) -> np.ndarray:
        return rng.normal(scale=scale, size=shape)

    def rotation(angle: float, axis: int) -> np.ndarray:
        c, s = math.cos(angle), math.sin(angle)
        i, j = [a for a in range(3) if a != axis]
        matrix = np.eye(3)
        matrix[i, i], matrix[i, j], matrix[j, i], matrix[j, j] = c, -s, s, c
        return matrix

    joints = sway + np.linspace(-0.5, 0.5, NUM_JOINTS)[:, None] + noisy((NUM_JOINTS, 3), 0.005)
    hand_keypoints = np.stack([joints[HAND_ROWS[side]] for side in ('left', 'right')])
    return {
        'joints': joints.astype(np.float32),
        'keypoints_2d_px': (
            600 * joints[:, :2] / joints[:, 2:] + 320 + noisy((65, 2), 2.0)
        ).astype(np.float32),
        'transl': (sway + noisy((3,), 0.005)).astype(np.float32),
        'root_position': (sway + noisy((3,), 0.005)).astype(np.float32),
        'vertices': (
            sway + noisy((NUM_VERTICES, 3), 0.005) if vertices else np.zeros((0, 3))
        ).astype(np.float32),
        'root_rotation': (
            rotation(0.8 * math.sin(t) + noisy((), 0.02), 1) @ rotation(3.0, 0)
        ).astype(np.float32),
        'hand_wrist_position': hand_keypoints[:, 0].astype(np.float32),
        'hand_keypoints': hand_keypoints.astype(np.float32),
        'hand_wrist_rotation': np.stack(
            [rotation(2.0 * t + noisy((), 0.02), 2), rotation(-1.5 * t + 3.1, 0)]
        ).astype(np.float32),
        'betas': np.arange(10, dtype=np.float32),  # passed through
    }


def recorded_sequence(vertices: bool) -> list[tuple[float, list[Track], dict[str, dict]]]:
    """45 frames at about 30 Hz with every track event the runner produces.

    Stamps are jittered; frame 20 repeats frame 19's stamp; frame 35 goes back 1 s (a bag
    restart). Track '1' is present throughout, '2' from frame 3 to 30 and LOST at 31, '3' coasts
    (PREDICTED, same values) in frames 10-13 and is re-acquired at 14, '4' appears at frame 25
    and is absent (not even LOST) from frame 40. Order of the tracks changes at frame 17.
    """
    rng = np.random.default_rng(7)
    frames = []
    stamp_s = 100.0
    coasting_values: dict = {}
    for frame in range(45):
        if frame == 20:
            pass  # same stamp as frame 19
        elif frame == 35:
            stamp_s -= 1.0
        else:
            stamp_s += FRAME_S + rng.uniform(-0.004, 0.004)
        tracks = [make_track('1', TrackState.TRACKED)]
        if 3 <= frame <= 30:
            tracks.append(make_track('2', TrackState.TRACKED))
        if frame == 31:
            tracks.append(make_track('2', TrackState.LOST))
        tracks.append(
            make_track('3', TrackState.PREDICTED if 10 <= frame <= 13 else TrackState.TRACKED)
        )
        if 25 <= frame < 40:
            tracks.append(
                make_track('4', TrackState.TENTATIVE if frame < 27 else TrackState.TRACKED)
            )
        if frame >= 17:
            tracks.reverse()
        values = {}
        for track in tracks:
            if track.state == TrackState.LOST:
                continue
            if track.state == TrackState.PREDICTED:
                values[track.id] = coasting_values[track.id]
            else:
                values[track.id] = person_values(rng, stamp_s, float(track.id), vertices)
                coasting_values[track.id] = values[track.id]
        frames.append((stamp_s, tracks, values))
    return frames


def run_smoother(smoother, frames) -> list[dict[str, dict]]:
    """What the runner does per frame: sync with all tracks, filter the non-LOST ones."""
    outputs = []
    for stamp_s, tracks, values in frames:
        smoother.sync_tracks(tracks)
        ids = list(values)
        results = smoother.smooth(ids, [values[i] for i in ids], stamp_s)
        outputs.append(dict(zip(ids, results, strict=True)))
    return outputs


@pytest.mark.parametrize('vertices', [True, False])
def test_person_smoother_equals_the_per_channel_reference_on_a_recorded_sequence(
    vertices: bool,
) -> None:
    """The vectorised update reproduces the readable per-track filters within 1e-6.

    The fixture is the reference's output on the recorded sequence (per-channel
    OneEuroFilter / QuaternionOneEuroFilter objects, themselves checked against the paper's
    scalar equations above).
    """
    frames = recorded_sequence(vertices)
    reference = run_smoother(
        ReferencePersonSmoother(BODY_SMOOTHING, HAND_SMOOTHING, HAND_ROWS), frames
    )
    fast = run_smoother(PersonSmoother(BODY_SMOOTHING, HAND_SMOOTHING, HAND_ROWS), frames)
    worst = 0.0
    for expected_frame, actual_frame in zip(reference, fast, strict=True):
        assert expected_frame.keys() == actual_frame.keys()
        for track_id, expected in expected_frame.items():
            actual = actual_frame[track_id]
            assert expected.keys() == actual.keys()
            for name, value in expected.items():
                assert actual[name].shape == value.shape, name
                assert actual[name].dtype == value.dtype, name
                if value.size:
                    worst = max(worst, float(np.max(np.abs(actual[name] - value))))
    assert worst <= 1e-6
    # The filter did something: outputs differ from the raw samples.
    stamp_s, _, values = frames[-1]
    assert np.max(np.abs(fast[-1]['1']['joints'] - values['1']['joints'])) > 1e-4


def test_person_smoother_settings_change_and_reset_like_the_reference() -> None:
    frames = recorded_sequence(vertices=False)
    reference = ReferencePersonSmoother(BODY_SMOOTHING, HAND_SMOOTHING, HAND_ROWS)
    fast = PersonSmoother(BODY_SMOOTHING, HAND_SMOOTHING, HAND_ROWS)
    changed = OneEuroConfig(3.0, 0.5, 2.0)
    for smoother in (reference, fast):
        run_smoother(smoother, frames[:8])
        smoother.set_configs(changed, BODY_SMOOTHING)
    expected, actual = run_smoother(reference, frames[8:12]), run_smoother(fast, frames[8:12])
    for name in ('joints', 'hand_keypoints', 'root_rotation', 'hand_wrist_rotation'):
        np.testing.assert_allclose(actual[-1]['1'][name], expected[-1]['1'][name], atol=1e-6)
    fast.reset()
    stamp_s, tracks, values = frames[12]
    fast.sync_tracks(tracks)
    first = fast.smooth(['1'], [values['1']], stamp_s)[0]
    np.testing.assert_allclose(first['joints'], values['1']['joints'], atol=1e-6)  # unchanged
    assert not first['joints'].flags.writeable
