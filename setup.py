import re
from pathlib import Path

from setuptools import find_packages, setup

# Read the version without importing the package (its dependencies may not be installed yet).
version = re.search(r'__version__ = "([^"]+)"', Path("lynx/__init__.py").read_text())

setup(
    name="lynx-pipeline",
    version=version.group(1),
    description="Chain the scripts of a research pipeline and run them once or on a cron schedule",
    long_description=Path("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.9",
    packages=find_packages(include=["lynx", "lynx.*"]),
    # Spelled out so that `pip install -e .` puts this directory on sys.path with a plain .pth
    # file, as `setup.py develop` did, instead of an import hook that every Python process in
    # the environment then loads (pathlib, urllib, ipaddress: ~10 ms per start, each step's too).
    package_dir={"": "."},
    install_requires=[
        "croniter>=2.0",
        "pyyaml>=5.4",
        "psutil>=5.8",
        "docopt-ng>=0.9",
        "python-daemon>=3.0; sys_platform != 'win32'",
        # Not used by Lynx itself: users' step scripts rely on it (the seed promises it),
        # and .py steps run in Lynx's own interpreter.
        "fire>=0.5",
        # zoneinfo needs a tz database; Windows has none of its own.
        "tzdata; sys_platform == 'win32'",
    ],
    extras_require={
        "test": ["pytest>=7", "pexpect>=4.8", "ruff"],
        "bench": ["apscheduler>=3.10,<4"],
    },
    entry_points={"console_scripts": ["lynx=lynx.cli:entry"]},
    classifiers=[
        "License :: OSI Approved :: MIT License",
        "Programming Language :: Python :: 3",
        "Environment :: Console",
    ],
)
