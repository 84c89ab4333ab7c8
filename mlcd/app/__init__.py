"""The application layer: what the commands do, on top of the task graph and the library.

``run`` (``mlcd run``), ``report`` (its summary), ``status``, ``reproduce`` with ``comparison``
and ``subjects``, and ``scoring``/``serving`` (``mlcd predict``, ``mlcd serve``). It is the only
code that imports ``tasks``. Its modules are imported by the command that needs them, so that
``mlcd --help`` does not import Luigi.
"""
