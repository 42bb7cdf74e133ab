"""Other pytest plugins beside ours, installed from the pinned environment, run for real."""
