from pathlib import Path

from setuptools import find_packages, setup

setup(
    name="docker-covenant",
    version="1.0.0",
    description="Stop Docker containers that break the host's policy, as they start",
    long_description=Path("README.adoc").read_text(encoding="utf-8"),
    long_description_content_type="text/plain",
    license="MIT",
    packages=find_packages(include=["covenant", "covenant.*"]),
    # The units' Documentation= points here: the manual travels with the install.
    data_files=[("share/doc/docker-covenant", ["README.adoc"])],
    python_requires=">=3.9",
    install_requires=["docker>=6.0", "PyYAML>=5.4", "systemd-python>=234", "prometheus_client>=0.16"],
    extras_require={
        # jsonschema: the SARIF report is checked against the OASIS schema (tests/data).
        "test": ["pytest>=7", "pytest-timeout", "ruff", "mypy", "types-PyYAML", "types-requests",
                 "jsonschema"],
    },
    entry_points={"console_scripts": ["docker-covenant=covenant.cli:main"]},
)
