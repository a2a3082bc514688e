"""Layer 3, the data sets: generating, splitting and writing a coverage data set in chunks
(``dataset``), the replicates' subsets (``replicates``) and the data set's figures
(``distributions``)."""
