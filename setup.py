"""Build hook: a wheel carries the Snakemake workflow and the experiment presets with the package.

pyproject.toml holds the project's metadata; this file only adds, at build time, the repository's
`workflow/` and `config/` folders as `pipeline/bundled/workflow` and `pipeline/bundled/config`, so that
an installed package can run its workflow and `ddlstm init` can copy its presets without a checkout
(`pipeline.deploy` finds them there, or in the checkout of an editable install).
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

BUNDLED = ("workflow", "config")


class BuildWithWorkflow(build_py):
    def run(self):
        super().run()
        if self.editable_mode:  # an editable install reads the checkout's own folders
            return
        for folder in BUNDLED:
            for source in sorted(Path(folder).rglob("*")):
                if source.is_file() and "__pycache__" not in source.parts and not source.name.startswith("."):
                    target = Path(self.build_lib, "pipeline", "bundled", source)
                    self.mkpath(str(target.parent))
                    self.copy_file(str(source), str(target))


setup(cmdclass={"build_py": BuildWithWorkflow})
