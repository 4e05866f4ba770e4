"""``python -m matconcept.service.cli``: the same as the ``matconcept`` console script."""

import sys

from matconcept.service.cli import main

sys.exit(main())
