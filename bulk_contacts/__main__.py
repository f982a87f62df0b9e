import sys

try:
    from .cli import run
except KeyboardInterrupt:  # Ctrl-C while Python loads the program: nothing was done yet
    sys.stderr.write("interrupted: nothing was written\n")
    raise SystemExit(130) from None

run()
