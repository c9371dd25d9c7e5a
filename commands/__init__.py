"""forkpoint's command groups, registered on the root group in :mod:`forkpoint.cli`.

* :mod:`.task_cmds`: the home and its tasks: ``init``, ``info``, ``add-task``, ``predict``, ``demo``, ``samples``;
* :mod:`.registry_cmds`: reading and moving the registry: ``tasks``, ``show``, ``history``, ``diff``,
  ``events``, ``promote``, ``rollback``, ``audit``, ``gc``;
* :mod:`._shared`: ``State``, ``--json`` and the other helpers every command uses.

Each module lists its commands in ``COMMANDS``. Heavy imports stay inside the commands.
"""
