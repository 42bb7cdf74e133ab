"""``--isolate-untrusted=TARGET``: run a project the broker must never import.

Collection happens in a target; the broker builds its items from the
agent's validated data (``item_data``), runs each test in the target
(``session``), and prints what untrusted code sent only after neutralising
it (``text``). Project settings that would load code in the broker are
ignored and named (``settings``); marks can only tighten limits (``limits``).
"""
