"""Child process of the SIGKILL test (not a test module).

    python _killed_writer.py URL DATA_DIR PREDICTION_IDS_JSON COMMITS MODE

Prints ``committed C R`` after each committed (correction, rating) pair. MODE ``hold``: after
COMMITS pairs, opens a write transaction, inserts many ratings marked ``UNCOMMITTED``, prints
``in-transaction`` and waits to be killed. MODE ``run``: keeps committing until killed.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from storage import open_store
from storage.bench import write_loop
from storage.models import Rating


def main() -> None:
    url, data_dir, ids_json, commits, mode = sys.argv[1:]
    store = open_store(url, Path(data_dir))
    ids = json.loads(ids_json)
    done = 0
    while mode == "run" or done < int(commits):
        ((correction_id, rating_id),) = write_loop(
            store, ids, until=float("inf"), seed=done, tag="committed", max_pairs=1
        )
        print(f"committed {correction_id} {rating_id}", flush=True)
        done += 1
    with store.write() as session:
        for index in range(500):
            session.add(
                Rating(
                    correction_id=correction_id,
                    observer_kind="llm",
                    llm_model="killed-writer",
                    llm_prompt_version="v1",
                    score=3,
                    verdict="accept",
                    rubric={"padding": "x" * 2000, "index": index},
                    comment="UNCOMMITTED",
                )
            )
        session.flush()
        print("in-transaction", flush=True)
        time.sleep(120)


if __name__ == "__main__":
    main()
