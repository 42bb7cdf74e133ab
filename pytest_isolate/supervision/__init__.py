"""Supervision: the broker's hold on a running target, below every backend.

The process tree a target's processes live in (``tree``, the cgroup
modules), the clock and the frames of one forked target (``supervisor``),
the client of a spawned target's agent (``agent_client``, ``agent_target``),
the end of a target in words (``outcome``) and the run-wide state a backend
is handed (``context``). Backends build on this layer; it knows nothing of
backends, of pytest's session or of the plugins around it, and code that
runs inside a target never imports it.
"""
