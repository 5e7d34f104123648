"""Runs several training configs one after another in each process of ONE torchrun launch (a process start costs
seconds on the CI's two cores). ``python -m torch.distributed.run --nproc_per_node 2 tests/dist_worker.py runs.json``
where runs.json is a list of flat config mappings. Each run is exactly ``tuneforge train`` on those settings."""

import json
import os
import sys


def main(path: str) -> None:
    from accelerate.state import AcceleratorState, GradientState

    from tuneforge.config import build_config
    from tuneforge.recipes import run
    from tuneforge.utils import log

    log.setup()
    env = dict(os.environ)
    for values in json.loads(open(path).read()):
        run(build_config(values))
        # the next run builds its own Accelerator (another engine); the process group stays. Accelerate marks the
        # engine it was given in the environment (ACCELERATE_USE_FSDP, …), as a launcher would: undo that.
        AcceleratorState._reset_state(True)
        GradientState._reset_state()
        for k in [k for k in os.environ if k.startswith(("ACCELERATE_", "FSDP_")) and k not in env]:
            del os.environ[k]


if __name__ == "__main__":
    main(sys.argv[1])
