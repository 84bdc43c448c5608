"""`python -m moqmls` is the `moqmls` command."""

import sys

from moqmls.cli import main

sys.exit(main())
