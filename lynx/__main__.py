import sys

from lynx.cli import main

sys.exit(main())
