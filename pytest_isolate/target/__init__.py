"""Code that runs inside a target: the restriction steps and their one sequence, running the item.

Imported by forked targets and by the agent in a spawned target; it imports
nothing of the broker's layers (``tests/structure/test_layers.py``).
"""
