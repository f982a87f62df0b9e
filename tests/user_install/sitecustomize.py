"""Loaded at start-up by the commands the tests run as processes (`PYTHONPATH`, set in
`tests/conftest.py`): they run as in a user's install, which has no test extras. hypothesis and
trio are installed here only for the tests (trio comes with selenium), yet pandera imports
hypothesis and httpcore imports trio whenever they can, for features the tool never uses:
about 0.3 s of CPU per command, over a hundred commands a run. Made unimportable here, they
cost nothing, as for a user."""

import sys

for _name in ("hypothesis", "trio"):
    sys.modules.setdefault(_name, None)  # type: ignore[arg-type]  # None: `import` fails
