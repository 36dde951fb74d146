"""Package discovery for the one installed name, ``sharpeye``.

The stage folders stay at the top of the repository (the product brief fixes them); each is installed as a
subpackage of ``sharpeye``. Everything else is declared in pyproject.toml.
"""

from setuptools import find_packages, setup

STAGES = ("config", "ingest", "alarms", "governance", "api", "simulators")

packages = find_packages(include=["sharpeye", "sharpeye.*"])
package_dir = {"sharpeye": "sharpeye"}
for stage in STAGES:
    package_dir[f"sharpeye.{stage}"] = stage
    packages += [f"sharpeye.{stage}"] + [f"sharpeye.{stage}.{name}" for name in find_packages(stage)]

setup(packages=packages, package_dir=package_dir)
