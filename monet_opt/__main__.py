import sys

from monet_opt.cli import main

sys.exit(main())
