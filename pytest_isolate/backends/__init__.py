"""One module per backend behind the ``Backend`` protocol, and the templates they share.

``forked`` makes targets by forking the broker; the spawned backends start an
agent in a container, a guest or a jail on a foreign root.
"""
