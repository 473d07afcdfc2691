"""A fix for one Snakemake bug that the workflow's own users hit, applied when the Snakefile is loaded.

`snakemake --list-changes params` lists every output whose job recorded params, changed or not (Snakemake 9.27.1:
`ParamsChange` yields the files of a comparison that found no difference). The DAG's rerun decision is not
affected (it asks whether a change is empty); only the listing is. Applied only where the bug is present.
"""

from __future__ import annotations


def fix_list_params_changes() -> bool:
    """Make an empty params change list no files. Returns whether the installed Snakemake needed it."""
    try:
        from snakemake.persistence import ParamsChange
    except ImportError:  # another Snakemake layout: nothing to fix here
        return False
    if not list(ParamsChange(files={"probe"})):
        return False
    listed = ParamsChange.__iter__

    def changed_files(self):
        return listed(self) if self else iter(())

    ParamsChange.__iter__ = changed_files
    return True
