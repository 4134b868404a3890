"""Imported first by every recipe. Run as a script, a recipe's folder comes first on `sys.path`, where
`recipes/distil.py` would shadow the `distil` package: this takes the folder off again."""

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]
