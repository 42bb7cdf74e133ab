"""The broker's companion of one forked target: extra frame handlers, and a last word.

Its own module so that a layer adding a watch (seccomp's, used by spawned
targets' policies too) does not import the fork machinery with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pytest_isolate.supervision.result import TargetResult
    from pytest_isolate.supervision.supervisor import Supervision
    from pytest_isolate.wire.test_frames import Handler


@dataclass
class TargetWatch:
    """Broker-side companion of one target: extra frame handlers and a final say."""

    handlers: dict[str, Handler] = field(default_factory=dict)

    def finish(self, result: TargetResult, state: Supervision) -> None:
        """Add sections or a failure to the result once the target has ended.

        With ``state.lingering`` the target said ``done`` and still exits:
        what needs it gone waits for :meth:`settle`.
        """

    def settle(self) -> None:
        """The target of a lingering result is gone now: free what the watch holds."""
