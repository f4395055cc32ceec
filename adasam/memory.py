"""Peak resident memory of this process, as the bench's ``--memory`` probe reports it.

No heavy imports here, so a probe process measures what it loads itself.
"""

from __future__ import annotations

import resource


def peak_rss_mib() -> float:
    """This process's peak resident memory in MiB.

    ``VmHWM`` of ``/proc/self/status``: the high-water mark of this program's own address space.
    Not ``getrusage``'s ``ru_maxrss`` where ``/proc`` exists: Linux carries that across
    ``exec``, so a probe started by a process holding models reports its parent's size (the
    first bench's "5830 MiB" was the bench process itself, not the probe).
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
