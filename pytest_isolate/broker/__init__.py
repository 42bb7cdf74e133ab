"""The session layer, the only one that knows pytest's session: marks, items, reports.

It resolves each item's marks to a spec, runs isolated items through their
backends, and logs what came back through pytest's own hooks.
"""
