"""Small utilities every stage shares, written once:

  atomic.py  atomic file writes (temporary name, fsync, rename, fsync the folder)
  lock.py    the directory lock of a run's output folder (fcntl.flock on `<dir>/.lock`, exit 4)
  git.py     running git as a subprocess
  quoting.py paths and free text made safe for one output line (quoted as git quotes paths)
  buglog.py  the log file of an exception labtax did not expect (exit 3 names it)
  pipes.py   standard output whose reader left (`| head -1`) ends quietly

The ledger's transaction and schema version live with the ledger (`sdg/ledger.py`), its only user.
"""
