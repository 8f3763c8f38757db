"""The program of the report kernels: ipykernel's own launcher, without ipykernel's debugger.

ipykernel imports debugpy when a kernel starts, to serve a debugging client: 0.14 s of every start, a tenth of
a cold ``kofukin report``'s wait for its kernel. A kernel that executes report notebooks has no such client.
With ``debugpy`` marked unimportable, ipykernel runs as it does where debugpy is not installed (its
``ipykernel.debugger._is_debugpy_available`` is then False): the same kernel, minus debugging.
"""

import sys


def main() -> None:
    if "debugpy" not in sys.modules:
        sys.modules["debugpy"] = None  # type: ignore[assignment]  # an import of it now raises ImportError
    from ipykernel.kernelapp import launch_new_instance

    launch_new_instance()


if __name__ == "__main__":
    main()
