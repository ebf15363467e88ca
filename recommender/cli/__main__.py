"""``python -m recommender.cli ...``: how background searches and trial workers are started."""

import sys

from recommender.cli import main

sys.exit(main())
