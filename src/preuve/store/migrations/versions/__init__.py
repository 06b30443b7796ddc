"""Schema revisions of the results store (a package so that non-editable installs ship them)."""
