"""Versions: para-joblib's own release, and the joblib API it implements."""

# The release of the para-joblib distribution (read by hatch at build time).
__version__ = "0.1.0"

# joblib's release whose public behaviour para_joblib implements. Clients
# compare ``joblib.__version__`` with joblib releases to choose code paths;
# para_joblib must send them down the paths of this one.
JOBLIB_API_VERSION = "1.6.0"
