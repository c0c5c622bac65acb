"""The version is written once, in lrfused/__init__.py; the packaging metadata reads it from there."""
import os

from setuptools.config.pyprojecttoml import read_configuration

import lrfused

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_pyproject_version_is_lrfused_version():
    config = read_configuration(os.path.join(ROOT, "pyproject.toml"))
    assert "version" in config["project"]["dynamic"]
    assert config["project"]["version"] == lrfused.__version__
