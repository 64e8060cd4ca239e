import sys

from napari_vsr.cli import main

sys.exit(main())
