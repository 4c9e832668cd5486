"""torchrun, with the run's own exit code (torchrun itself exits 1 whenever any process fails).

    python -m stylegan_anime.launch --nproc_per_node 2 -m stylegan_anime.cli train --data faces --size 128 ...

takes exactly torchrun's arguments and runs torchrun. It exits 0 when every process did; otherwise with the exit
code of the first process that failed: 130 when the run was interrupted (Ctrl-C or SIGTERM on any process: all
stop at the same iteration, rank 0 saves, each exits 130), 3 when it diverged, 2 for a user error, 128 + N for
a process killed by signal N. A signal to the launcher itself (Ctrl-C in the terminal) exits 128 + N.
"""
from __future__ import annotations

import sys

QUIET = (3, 130)  # the run said why itself (diverged, interrupted): torchrun's table of failures is not shown


def exit_code(error) -> int:
    """A ChildFailedError's exit code: the first failed process's, 128 + N for a death by signal N."""
    _, first = error.get_first_failure()
    code = int(first.exitcode)
    return code if code > 0 else 128 - code if code < 0 else 1


def main(argv: list[str] | None = None) -> int:
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import main as torchrun

    try:
        torchrun(argv)
    except ChildFailedError as e:
        code = exit_code(e)
        if code not in QUIET:
            print(str(e), file=sys.stderr)
        return code
    except SignalException as e:
        return 128 + int(e.sigval)
    return 0


if __name__ == "__main__":
    sys.exit(main())
