"""The harness of the TurboQuant patch series: one module per step, run as

    python3 scripts/harness STEP [options]     (see 'python3 scripts/harness -h')

and a shared core (core.py) with the paths, the series, the refs and the git
helpers. Standard library only; Python 3.9 or later, as macOS's command line
tools have it."""
