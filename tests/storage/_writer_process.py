"""Child process of the reliability tests (not a test module).

    python _writer_process.py URL DATA_DIR PREDICTION_IDS_JSON DEADLINE_EPOCH SEED

Writes corrections and ratings until the wall-clock deadline, then prints the committed
``[[correction_id, rating_id], ...]`` as JSON on stdout. Any error exits non-zero.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from storage import open_store
from storage.bench import write_loop


def main() -> None:
    url, data_dir, ids_json, deadline, seed = sys.argv[1:]
    store = open_store(url, Path(data_dir))
    until = time.monotonic() + (float(deadline) - time.time())
    committed = write_loop(
        store, json.loads(ids_json), until=until, seed=int(seed), tag=f"process-{seed}"
    )
    store.close()
    print(json.dumps(committed))


if __name__ == "__main__":
    main()
