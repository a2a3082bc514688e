"""Layer 8, the pipeline: the profiles, the stages and their parameter rules (gathered from
their owners), content-hash stamps, locks, executing notebooks with papermill, replicate
chains (locally or on Dask), provenance, publishing a run into the book, and the command line
(``python -m coverage_lib``)."""
