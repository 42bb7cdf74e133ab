"""What crosses between a target and the broker: frames, reports, coverage, the agent protocol.

Everything here checks hostile input with bounds, and runs on both sides.
"""
