"""Peak memory of preparing one raw data set: ``python scripts/measure_prepare_memory.py LOADER ROOT OUT [PARAMS_JSON]``.

Prints the process's peak resident set size (VmHWM from /proc/self/status, which counts the
file pages mapped while the prepared arrays are written) after the imports and after preparing,
and the prepared arrays' size on disk.
"""
import json
import resource
import sys
import time
from pathlib import Path


def hwm_mib() -> float:
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    loader, root, out = sys.argv[1:4]
    params = json.loads(sys.argv[4]) if len(sys.argv) > 4 else {}
    if loader == "deap":
        from cmkd.data.deap import prepare_deap as prepare
    elif loader == "mahnob_hci":
        from cmkd.data.mahnob import prepare_mahnob as prepare
    else:
        raise SystemExit(f"unknown loader {loader}")
    import cv2  # noqa: F401  (imported here so that the baseline includes it)
    import numpy  # noqa: F401

    before = hwm_mib()
    t0 = time.perf_counter()
    prepare(root, out, params)
    wall = time.perf_counter() - t0
    size = sum(p.stat().st_size for p in Path(out).glob("*.npy")) / 2 ** 20
    print(f"peak RSS after imports {before:.0f} MiB; after preparing {hwm_mib():.0f} MiB; "
          f"prepared arrays {size:.0f} MiB on disk; {wall:.0f} s")


if __name__ == "__main__":
    main()
