"""Watching production: the prediction log that ``mlcd serve`` and ``mlcd predict`` write
(``predlog.py``), the reference profile each published version keeps of its training data
(``profile.py``), and drift of logged inputs against that profile (``drift.py``).

It sits between the tasks and the registry: the monitor task and the commands use it, and it
reads versions through ``mlcd.registry``."""
