import sys

from speechvq.cli import main

sys.exit(main())
