"""forkpoint: keep one frozen pretrained backbone and keep adding classification tasks to it.

The repository root is this package (see pyproject's ``package-dir``): ``cli.py`` is
``forkpoint.cli`` and each design-card folder is a subpackage (``forkpoint.learner``,
``forkpoint.registry``, ...). Nothing is imported here so light commands stay light.
"""

__version__ = "0.1.0"
