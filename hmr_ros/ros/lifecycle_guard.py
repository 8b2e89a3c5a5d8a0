"""Invalid lifecycle transition requests answered with failure, on every supported rclpy.

rclpy's LifecycleNode (7.1.x, Jazzy) runs a requested transition with
``trigger_transition_by_id``, which raises ``RCLError`` when the transition is not valid in the
current state (``configure`` while active): the exception leaves the ``~/change_state`` service
callback, the executor re-raises it and the node exits (ros2/rclpy#1209; later rclpy releases
catch it). :class:`InvalidTransitionGuard` checks the request against the state machine's
available transitions first and answers FAILURE with a warning, so one bad request from a
lifecycle manager or ``ros2 lifecycle set`` never stops the node; where rclpy already handles it,
the guard only adds the warning. ``trigger_configure()`` and the other ``trigger_*`` methods go
through the same path and return FAILURE instead of raising.
"""

from __future__ import annotations

from typing import Any

from lifecycle_msgs.msg import Transition
from rclpy.lifecycle import TransitionCallbackReturn

_TRANSITION_NAMES = {
    getattr(Transition, name): name.removeprefix('TRANSITION_').lower()
    for name in dir(Transition)
    if name.startswith('TRANSITION_') and isinstance(getattr(Transition, name), int)
}


class InvalidTransitionGuard:
    """Mixin placed before ``rclpy.lifecycle.Node`` in a node's bases (see the module docstring).

    It overrides the lifecycle mixin's private ``__change_state`` (name-mangled as
    ``_LifecycleNodeMixin__change_state``), the one method both the ``change_state`` service and
    the ``trigger_*`` methods call. An rclpy without that method never calls the override; those
    releases handle invalid requests themselves.
    """

    _state_machine: Any

    def _LifecycleNodeMixin__change_state(self, transition_id: int) -> TransitionCallbackReturn:  # noqa: N802
        available = {entry[0]: entry for entry in self._state_machine.available_transitions}
        if transition_id not in available:
            state = self._state_machine.current_state[1]
            valid = ', '.join(entry[1] for entry in available.values()) or 'none'
            name = _TRANSITION_NAMES.get(transition_id, 'unknown')
            self.get_logger().warning(  # type: ignore[attr-defined]
                f"lifecycle transition '{name}' ({transition_id}) is not valid in state "
                f"'{state}'; request refused (valid here: {valid})"
            )
            return TransitionCallbackReturn.FAILURE
        change_state = super()._LifecycleNodeMixin__change_state  # type: ignore[misc]
        return change_state(transition_id)
