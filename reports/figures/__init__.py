"""The report's figures: matplotlib on Agg, no pyplot state, each figure saved as PNG and SVG.

One module per figure (`curves`, `mc`, `cost`, `forest`), margins from measured text
(`layout.fit`), saving (`save`) and the worker pool that draws them while the report computes
its tables (`pool`). Importing the package fixes the two settings every saved file depends on.
"""

import matplotlib

matplotlib.use("Agg")
matplotlib.rcParams["svg.fonttype"] = "none"  # text as text: smaller, searchable, 2x faster
matplotlib.rcParams["svg.hashsalt"] = "reports"  # stable element ids: same data, same file
