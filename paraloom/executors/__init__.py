"""Where action invocations run besides the default in-process executor.

Importing this package does not import Ray; constructing a :class:`RayExecutor` does
(and raises an ImportError naming ``pip install "paraloom[ray]"`` when Ray is missing).
"""

from paraloom.executors.ray import INSTALL_HINT, RayExecutor, import_ray, ships_to_ray

__all__ = ["INSTALL_HINT", "RayExecutor", "import_ray", "ships_to_ray"]
